# Copyright 2026 spatialvla_ros authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""
How chunks are executed on a robot that keeps moving while the policy thinks (no ROS).

A chunk of H actions, dt apart, is published as a trajectory; the controller replaces the rest
of the old trajectory with it from the moment it arrives (`sim.trajectory`, like ros2_control's
joint_trajectory_controller). Three execution modes (Black, Galliker, Levine 2025, "Real-Time
Execution of Action Chunking Flow Policies"):

- `sync`: the arm stops while the policy thinks. A chunk's first `execution_horizon` actions
  are sent stamped at the time the chunk is ready, so they all execute; the next observation is
  taken once they are done (the arm holds the last one meanwhile).
- `async` (the node's behaviour before execution modes existed, and its default): the next
  inference starts while the current chunk executes; a chunk is stamped at its observation, so
  the actions that fell due during inference are skipped and the new chunk replaces the rest of
  the old one from the time it is ready. Nothing makes the two agree at the seam.
- `rtc`: async, with the actions that execute before the new chunk is ready (d, the estimated
  delay in control periods) held to the previous chunk, and the rest of the overlap with it
  inpainted by guided flow sampling under a soft mask (`models.flow_matching.prefix_weights`,
  `guided_euler_sample`) with the guidance-weight clip beta. The d committed actions are copied
  from the previous chunk exactly.

Times are integer nanoseconds of the clock the stamps use (simulated or system time); latencies
are seconds.
"""

from dataclasses import dataclass
import math
import threading
import time

import numpy as np

from spatialvla_ros.models.flow_matching import prefix_weights

EXECUTION_MODES = ('sync', 'async', 'rtc')


@dataclass(frozen=True)
class ChunkPrefix:
    """What `rtc` holds a new chunk to: the previous chunk aligned to the new chunk's steps.

    actions: (H, A) robot units; row i is the previous chunk's action due at the new chunk's
        step i (rows past the previous chunk repeat its last action, at weight 0).
    weights: (H,) soft mask, 1 on the committed steps, decaying over the rest of the overlap.
    committed: d, the steps [0, d) copied exactly from `actions` into the new chunk.
    max_guidance_weight: the guidance-weight clip beta.
    """

    actions: np.ndarray
    weights: np.ndarray
    committed: int
    max_guidance_weight: float


class DelayEstimator:
    """
    Inference delay in control periods, estimated online from measured latencies.

    The estimate is ceil(q / dt) where q is the second-largest latency of the last `window`
    ones, excluding the first one after `reset` (activation). Why this statistic: the delay is
    what `rtc` commits, and committing too few steps lets the arm run past the held prefix into
    actions that were never made to agree with it, so the estimate leans high (with a window of
    20 the second-largest is about the 95th percentile); a median would be under the true delay
    half of the time. Dropping only the largest keeps one slow inference (a page fault, a
    garbage collection) from setting the estimate, while two slow ones in a window raise it.
    The first inference after activation is the cold-start outlier (caches, allocator, first
    DDS matches): it is never counted. Warm-up runs before activation never reach here. Until a
    counted latency exists the estimate is `initial_steps`.
    """

    def __init__(self, dt, window=20, initial_steps=0):
        if dt <= 0:
            raise ValueError(f'dt: got {dt}, expected > 0 (control period [s])')
        if window < 2:
            raise ValueError(f'window: got {window}, expected >= 2')
        self.dt, self.window, self.initial_steps = float(dt), int(window), int(initial_steps)
        self._lock = threading.Lock()
        self.reset()

    def reset(self):
        with self._lock:
            self._seen = 0
            self._latencies = []

    def add(self, latency_s):
        """Record one measured latency [s] (observation stamp to chunk ready)."""
        with self._lock:
            self._seen += 1
            if self._seen == 1:
                return                                # the cold start: never counted
            self._latencies = (self._latencies + [max(float(latency_s), 0.0)])[-self.window:]

    def latency_s(self):
        """Return the latency the estimate is built from [s] (None before a counted one)."""
        with self._lock:
            values = sorted(self._latencies)
        if not values:
            return None
        return values[-2] if len(values) >= 2 else values[-1]

    def steps(self):
        """Return the delay d in control periods (an int >= 0)."""
        q = self.latency_s()
        if q is None:
            return self.initial_steps
        return int(math.ceil(q / self.dt - 1e-9))


class LatencyInjector:
    """
    Adds `fixed_s` plus a uniform random [0, jitter_s) delay to every inference (seeded).

    For experiments: a CPU run of a small checkpoint then stands in for a big model on a slow
    GPU. The draw is from its own generator, so the injected delays repeat with the seed and
    do not touch the policy's noise.
    """

    def __init__(self, fixed_s=0.0, jitter_s=0.0, seed=0, sleep=time.sleep):
        if fixed_s < 0 or jitter_s < 0:
            raise ValueError(f'injected latency: got fixed {fixed_s} s, jitter {jitter_s} s, '
                             'expected both >= 0')
        self.fixed_s, self.jitter_s = float(fixed_s), float(jitter_s)
        self._rng = np.random.default_rng(seed if seed is not None and seed >= 0 else None)
        self._sleep = sleep

    def draw(self):
        """Draw the next delay [s]."""
        jitter = self._rng.uniform(0.0, self.jitter_s) if self.jitter_s > 0 else 0.0
        return self.fixed_s + jitter

    def wait(self):
        """Sleep the next delay; return it [s]."""
        delay = self.draw()
        if delay > 0:
            self._sleep(delay)
        return delay


class CadenceMeter:
    """
    Cadence of the published chunks: chunks per second, latency percentiles, starved periods.

    A control period is starved when no published action is due in it: the newest trajectory
    has run out (the arm holds its last point) or none has arrived yet. `published(ready_ns,
    end_ns)` says a trajectory arrived at ready_ns whose last point is due at end_ns; a new
    trajectory replaces the old one, so coverage runs to the newest one's end. The starved
    fraction is the starved time over the time since `reset`, which is the fraction of control
    periods for a fixed period. The evaluation computes the same figures from recorded
    trajectories with this class, so node and report agree.
    """

    def __init__(self, window=200):
        self.window = int(window)
        self._lock = threading.Lock()
        self.reset(None)

    def reset(self, now_ns):
        with self._lock:
            self._start = self._covered = now_ns
            self._starved_ns = 0
            self._chunks = 0
            self._latencies = []

    def published(self, ready_ns, end_ns, latency_s=None):
        with self._lock:
            if self._start is None:
                self._start = self._covered = ready_ns
            self._starved_ns += max(0, ready_ns - self._covered)
            self._covered = max(end_ns, ready_ns)
            self._chunks += 1
            if latency_s is not None:
                self._latencies = (self._latencies + [float(latency_s)])[-self.window:]

    def starved_fraction(self, now_ns):
        with self._lock:
            if self._start is None or now_ns <= self._start:
                return float('nan')
            starved = self._starved_ns + max(0, now_ns - self._covered)
            return min(starved / (now_ns - self._start), 1.0)

    def latencies(self):
        """Return the last `window` latencies [s] (for their percentiles)."""
        with self._lock:
            return list(self._latencies)

    def chunks_per_s(self, now_ns):
        """Chunks published per second since `reset` (NaN before any time has passed)."""
        with self._lock:
            start, chunks = self._start, self._chunks
        if start is None or now_ns <= start:
            return float('nan')
        return chunks / ((now_ns - start) * 1e-9)


class ExecutionScheduler:
    """
    When to start an inference, what to hold the new chunk to, and how to stamp it.

    One per activation (reset on activate). The node asks `may_start` before it queues an
    observation, `prefix` when an inference starts, `output` when its chunk is ready, and calls
    `published` once it is sent. Thread-safe (camera callbacks and the worker thread).

    Arguments, by name:
        mode: one of EXECUTION_MODES.
        dt: control period [s] (the checkpoint's action.dt).
        execution_horizon: sync: actions of a chunk executed before the next observation
            (0: all of them).
        max_guidance_weight: rtc's guidance-weight clip beta.
        delay: the DelayEstimator (default: one on `dt`).
    """

    def __init__(self, mode, dt, execution_horizon=0, max_guidance_weight=5.0, delay=None):
        if mode not in EXECUTION_MODES:
            raise ValueError(f'execution: got {mode!r}, expected one of '
                             + ', '.join(repr(m) for m in EXECUTION_MODES))
        self.mode, self.dt = mode, float(dt)
        self.dt_ns = int(round(self.dt * 1e9))
        self.execution_horizon = int(execution_horizon)
        self.max_guidance_weight = float(max_guidance_weight)
        self.delay = delay or DelayEstimator(self.dt)
        self._lock = threading.Lock()
        self.reset()

    def reset(self):
        with self._lock:
            self._last = None          # (actions (n, A), stamp of its step 0 - dt [ns])
            self._resume_ns = None     # sync: the arm holds from here on
        self.delay.reset()

    def may_start(self, now_ns, busy):
        """sync: only once the last chunk has executed and nothing is in flight."""
        if self.mode != 'sync':
            return True
        with self._lock:
            resume = self._resume_ns
        return not busy and (resume is None or now_ns >= resume)

    def prefix(self, stamp_ns, horizon):
        """
        rtc: the previous chunk aligned to a new chunk observed at `stamp_ns` (else None).

        The new chunk's step i is due at stamp_ns + (i + 1) dt, the previous chunk's step j at
        its stamp + (j + 1) dt, so j = i + offset with offset the whole control periods between
        the two observations. The overlap ends at H - offset (the paper's H - s); the committed
        d steps are the delay estimate, at most the overlap.
        """
        if self.mode != 'rtc':
            return None
        with self._lock:
            last = self._last
        if last is None:
            return None
        actions, last_stamp = last
        offset = max(int(round((stamp_ns - last_stamp) / self.dt_ns)), 0)
        overlap = min(max(len(actions) - offset, 0), horizon)
        if overlap == 0:
            return None
        index = np.minimum(np.arange(horizon) + offset, len(actions) - 1)
        committed = min(self.delay.steps(), overlap)
        weights = prefix_weights(committed, overlap, horizon).numpy()
        return ChunkPrefix(actions=actions[index].copy(), weights=weights, committed=committed,
                           max_guidance_weight=self.max_guidance_weight)

    def output(self, chunk, stamp_ns, ready_ns):
        """(actions to send, trajectory stamp [ns]) of a chunk observed at stamp_ns."""
        if self.mode == 'sync':
            n = self.execution_horizon or len(chunk)
            return chunk[:n], ready_ns
        return chunk, stamp_ns

    def published(self, actions, trajectory_stamp_ns, observation_stamp_ns, ready_ns):
        """Remember what was sent; count its delay (observation to ready) for the estimate."""
        self.delay.add((ready_ns - observation_stamp_ns) * 1e-9)
        with self._lock:
            self._last = (np.array(actions, copy=True), int(trajectory_stamp_ns))
            if self.mode == 'sync':
                self._resume_ns = trajectory_stamp_ns + len(actions) * self.dt_ns


__all__ = ['CadenceMeter', 'ChunkPrefix', 'DelayEstimator', 'EXECUTION_MODES',
           'ExecutionScheduler', 'LatencyInjector']

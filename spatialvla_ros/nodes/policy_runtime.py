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
ROS-free run-time machinery of the policy node: session, worker, watchdog, rejection counts.

The node only wires ROS callbacks to these objects (a Session per configure), so their
behaviour (latest-wins dropping, staleness, per-reason counters, throttling) is the same in a
notebook, a bag evaluator or a test without DDS. Times are seconds from `time.monotonic()`
unless a name says `_ns`.
"""

import collections
import ctypes
import ctypes.util
import gc
import sys
import threading
import time

import numpy as np
from spatialvla_ros.core_types import NS_PER_S
from spatialvla_ros.core_types import stamp_to_ns
from spatialvla_ros.evaluation.replay import distribution
from spatialvla_ros.perception.conversions import MessageError
from spatialvla_ros.perception.conversions import REJECTION_REASONS
from spatialvla_ros.perception.observation_builder import ObservationBuilder
from spatialvla_ros.perception.observation_builder import sync_keys
from spatialvla_ros.perception.sync import StampSynchronizer
from spatialvla_ros.policies.execution import CadenceMeter
from spatialvla_ros.policies.execution import ExecutionScheduler
from spatialvla_ros.policies.execution import LatencyInjector
from spatialvla_ros.policies.safety import SAFETY_REASONS


class Throttle:
    """Says whether a warning under a key may be logged again (once per `period_s` per key)."""

    def __init__(self, period_s=2.0, clock=time.monotonic):
        self.period_s = period_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last = {}

    def ready(self, key):
        """Return True (and start a new period for `key`) when its last warning is old enough."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period_s:
                return False
            self._last[key] = now
            return True

    def reset(self):
        with self._lock:
            self._last.clear()


class RejectionLog:
    """
    Counts rejected messages per reason and decides when a warning may be logged again.

    Warnings are throttled per (topic, reason), so a flood of one bad stream cannot hide the
    first warning of another one.
    """

    def __init__(self, throttle_s=2.0, clock=time.monotonic):
        self._lock = threading.Lock()
        self._throttle = Throttle(throttle_s, clock)
        self.reset()

    def reset(self):
        with self._lock:
            self.total = 0
            self.by_reason = collections.OrderedDict((r, 0) for r in REJECTION_REASONS)
            self.last_reason = ''
        self._throttle.reset()

    def record(self, topic, error):
        """Count one rejected message; return (message, should_log).

        error: the exception that rejected it; a MessageError carries its reason, anything
        else counts as 'invalid'.
        """
        reason = error.reason if isinstance(error, MessageError) else 'invalid'
        message = f'{topic}: dropped ({reason}): {error}'
        with self._lock:
            self.total += 1
            self.by_reason[reason] += 1
            self.last_reason = message
        return message, self._throttle.ready((topic, reason))

    def snapshot(self):
        with self._lock:
            return self.total, dict(self.by_reason), self.last_reason


class StampChecker:
    """
    Rejects stamps in the future (beyond a tolerance) and stamps going back in time per topic.

    Equal stamps on one topic are accepted (some drivers repeat a stamp); the synchroniser decides
    what to do with duplicates.
    """

    def __init__(self, future_tolerance_s):
        self.future_tolerance_ns = int(future_tolerance_s * 1e9)
        self._last = {}

    def reset(self):
        self._last.clear()

    def check(self, topic, stamp_ns, now_ns):
        """Raise MessageError when `stamp_ns` (header stamp) cannot be accepted on `topic`."""
        if stamp_ns <= 0:
            raise MessageError('invalid', 'header stamp is zero (the publisher did not stamp '
                               'it)')
        if stamp_ns > now_ns + self.future_tolerance_ns:
            raise MessageError('future_stamp', f'header stamp is {(stamp_ns - now_ns) * 1e-9:.3f} '
                               f's in the future (tolerance '
                               f'{self.future_tolerance_ns * 1e-9:.3f} s)')
        last = self._last.get(topic)
        if last is not None and stamp_ns < last:
            raise MessageError('out_of_order', f'header stamp is {(last - stamp_ns) * 1e-9:.3f} '
                               's older than the previous message on this topic')

    def commit(self, topic, stamp_ns):
        """Remember the stamp of an accepted message (only accepted ones set the order)."""
        self._last[topic] = max(stamp_ns, self._last.get(topic, stamp_ns))


class InputWatchdog:
    """
    Tracks when each required input last delivered an accepted message.

    An input that never arrived since `reset()` or whose last message is older than the timeout
    is stale; the node publishes nothing while any input is stale and says which one.
    """

    def __init__(self, timeout_s, clock=time.monotonic):
        self.timeout_s = timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._required = []
        self._last = {}
        self._since = clock()

    def reset(self, required):
        with self._lock:
            self._required = list(required)
            self._last = {}
            self._since = self._clock()

    def feed(self, name, now=None):
        with self._lock:
            self._last[name] = self._clock() if now is None else now

    def stale(self, now=None):
        """Return [(name, age_s or None when never received)] of the stale inputs."""
        now = self._clock() if now is None else now
        out = []
        with self._lock:
            for name in self._required:
                last = self._last.get(name)
                if last is None:
                    out.append((name, None))
                elif now - last > self.timeout_s:
                    out.append((name, now - last))
        return out

    def reason(self, now=None):
        """Return a sentence naming the stale inputs ('' when all are fresh)."""
        parts = []
        for name, age in self.stale(now):
            if age is None:
                parts.append(f'no message yet on {name}')
            else:
                parts.append(f'no message on {name} for {age:.2f} s')
        if not parts:
            return ''
        return 'waiting for input: ' + '; '.join(parts) + f' (timeout {self.timeout_s:.2f} s)'


class LastingChange:
    """
    Says when a yes/no state (waiting for input or not) has changed for long enough to log.

    A camera slower than the watchdog's timeout leaves its input stale for a moment before each
    of its frames: logging every change would print 'waiting' and 'resuming' once per frame. A
    new state is reported once it has held for `hold_s`, and only when it differs from the last
    one reported, so the log tells the lasting state and changes at most once per `hold_s`.
    """

    def __init__(self, hold_s, clock=time.monotonic):
        self.hold_s = hold_s
        self._clock = clock
        self.reported = self._state = False
        self._since = clock()

    def update(self, state):
        """Feed the current state; return True when it is to be reported now."""
        now, state = self._clock(), bool(state)
        if state != self._state:
            self._state, self._since = state, now
        if state != self.reported and now - self._since >= self.hold_s:
            self.reported = state
            return True
        return False


class RateMeter:
    """Events per second over a sliding window."""

    def __init__(self, window_s=5.0, clock=time.monotonic):
        self._window_s = window_s
        self._clock = clock
        self._times = collections.deque()
        self._lock = threading.Lock()

    def tick(self):
        with self._lock:
            self._times.append(self._clock())

    def rate(self):
        now = self._clock()
        with self._lock:
            while self._times and now - self._times[0] > self._window_s:
                self._times.popleft()
            if len(self._times) < 2:
                return 0.0
            span = max(now - self._times[0], 1e-6)
            return (len(self._times) - 1) / span


class NodeStats:
    """
    What the node reports besides its state: chunks, rate, latency, drops, rejections.

    `suppressed` counts chunks computed but not published, by why (stale_input, late_result,
    refused_action, inactive, inference_error, unsafe); `safety` counts the safety filter's
    clamped and rejected chunks, in all and by reason.
    """

    def __init__(self, throttle_s=2.0):
        self.rate = RateMeter()
        self.cadence = CadenceMeter()
        self.published_chunks = 0
        self.last_latency = 0.0
        self.dropped_before = 0  # latest-wins drops of the workers of earlier activations
        self.reset(throttle_s)

    def reset(self, throttle_s, now_ns=None):
        """Start the rejection, suppression and cadence counts afresh (on activate)."""
        self.cadence.reset(now_ns)
        self.rejections = RejectionLog(throttle_s)
        self.suppressed = collections.Counter()
        self._suppress_throttle = Throttle(throttle_s)
        self.safety = collections.Counter({f'{outcome}{suffix}': 0
                                           for outcome in ('clamped', 'rejected')
                                           for suffix in ('_chunks',) + tuple(
                                               f'.{r}' for r in SAFETY_REASONS)})

    def suppress(self, reason):
        """Count a chunk not published; return True when a warning about it may be logged."""
        self.suppressed[reason] += 1
        return self._suppress_throttle.ready(reason)

    def safety_verdict(self, verdict):
        """Count a clamped or rejected chunk by its reasons; True when it may be logged."""
        if verdict.outcome == 'passed':
            return False
        if verdict.outcome == 'rejected':
            self.suppressed['unsafe'] += 1
        self.safety[f'{verdict.outcome}_chunks'] += 1
        self.safety.update(f'{verdict.outcome}.{r}' for r in verdict.reasons)
        return self._suppress_throttle.ready(f'safety_{verdict.outcome}')

    def published(self, latency):
        self.published_chunks += 1
        self.last_latency = float(latency)
        self.rate.tick()

    def cadence_values(self, now_ns):
        """Cadence for the DiagnosticArray: chunks/s, latency p50/p90/p99, starved fraction."""
        lat = distribution(self.cadence.latencies())
        values = {'chunks_per_s': f'{self.cadence.chunks_per_s(now_ns):.3f}',
                  'starved_fraction': f'{self.cadence.starved_fraction(now_ns):.4f}'}
        values.update({f'latency_{q}_s': f'{lat[q]:.4f}' for q in ('p50', 'p90', 'p99')})
        return values

    def values(self, worker_dropped=0):
        """Counters as {key: value} for the DiagnosticArray (and the PolicyStatus fields)."""
        total, by_reason, last = self.rejections.snapshot()
        values = {'published_chunks': self.published_chunks,
                  'rate_hz': f'{self.rate.rate():.2f}',
                  'last_latency_s': f'{self.last_latency:.4f}',
                  'dropped_frames': self.dropped_before + worker_dropped,
                  'rejected_messages': total, 'last_rejection_reason': last}
        values.update({f'rejected.{r}': n for r, n in by_reason.items()})
        values.update({f'suppressed.{r}': n for r, n in sorted(self.suppressed.items())})
        values.update({f'safety.{k}': n for k, n in self.safety.items()})
        return values


SYNC_INPUT = 'synchronised camera set'  # the watchdog's name for "a set was completed"
Job = collections.namedtuple('Job', 'stamp_ns arrays state instruction received mounts')


class LiveInputs:
    """
    The node's input side without ROS: stamp order, decode once, synchronise, watchdog.

    `camera`, `joint_state`, `camera_pose` and `set_instruction` each take one message and
    either raise MessageError (the caller counts it by its reason) or accept it. `camera`
    returns the Job to run when its message completes a set and every input is fresh at that
    moment; the Job carries the camera mounts in force then (`builder.mounts`). With
    `require_mounts` no Job is made before every camera with a frame has had a valid mount
    message; with `max_mount_age_s` > 0 a set whose mount is older than that relative to its
    stamp is rejected ('stale_mount'). `received` times are `clock()` seconds; `now_ns` is
    the ROS clock of the stamp checks.
    """

    def __init__(self, builder, sync, topics, default_instruction='',
                 max_instruction_chars=1000, clock=time.monotonic, require_mounts=False,
                 max_mount_age_s=0.0):
        self.builder, self.sync, self.topics = builder, sync, list(topics)
        self.default_instruction = default_instruction
        self.max_instruction_chars = max_instruction_chars
        self.clock = clock
        self.require_mounts, self.max_mount_age_s = bool(require_mounts), float(max_mount_age_s)
        self.state = self.instruction = None
        self.reset(1.0, 0.1)

    @classmethod
    def for_policy(cls, config, data, topics, sync_slop_s=-1.0, sync_queue_size=10,
                   default_instruction='', max_instruction_chars=1000, require_mounts=False,
                   max_mount_age_s=0.0):
        """
        Build the inputs of a policy with `config` served on `data` (DataConfig + overrides).

        topics: the required input topics, as the watchdog names them; sync_slop_s < 0 takes
        data.sync_slop.
        """
        act = config.action
        builder = ObservationBuilder(data, config.encoder3d, act.names, act.state_dim)
        slop = data.sync_slop if sync_slop_s < 0 else sync_slop_s
        sync = StampSynchronizer(sync_keys(data), slop, sync_queue_size)
        return cls(builder, sync, topics, default_instruction, max_instruction_chars,
                   require_mounts=require_mounts, max_mount_age_s=max_mount_age_s)

    def reset(self, timeout_s, future_tolerance_s):
        """Start afresh (activate): stamps, sets, watchdog; keep state, instruction, mounts."""
        self.stamps = StampChecker(future_tolerance_s)
        self.watchdog = InputWatchdog(timeout_s, clock=self.clock)
        self.watchdog.reset(self.topics + [SYNC_INPUT])
        self.sync.reset()

    def camera(self, key, topic, msg, stamp_ns, now_ns, received):
        self.stamps.check(topic, stamp_ns, now_ns)
        matched = self.sync.add(key, stamp_ns,
                                self.builder.decode(key, msg, key.rsplit('/', 1)[-1]))
        self.stamps.commit(topic, stamp_ns)
        self.watchdog.feed(topic, received)
        if matched is None:
            return None
        self.watchdog.feed(SYNC_INPUT, received)
        instruction = self.instruction or self.default_instruction
        # Judged on this set's own freshness now, never on an earlier "waiting" verdict: that
        # would drop the first set after every gap longer than the timeout (a slow camera).
        if self.state is None or not instruction or self.watchdog.stale(received):
            return None
        mounts = self.builder.mounts
        if self.require_mounts and mounts.missing():
            return None
        return Job(matched.stamp_ns, matched.messages, self.state, instruction, received,
                   mounts.snapshot(matched.stamp_ns, self.max_mount_age_s))

    def camera_pose(self, topic, msg):
        """Take a camera mount message; return the name of the camera it mounts.

        Its stamp is not judged by the clock (a latched mount can come before the first
        /clock message), only against the mount in force: an older one is out of order.
        """
        camera, mount = self.builder.mounts.parse(msg, topic)
        current = self.builder.mounts.latest.get(camera)
        if current is not None and mount.stamp_ns < current.stamp_ns:
            raise MessageError('out_of_order', (
                f'{topic}.header.stamp: the mount of camera {camera!r} is '
                f'{(current.stamp_ns - mount.stamp_ns) / NS_PER_S:.3f} s older than the one in '
                'force'))
        self.builder.mounts.latest[camera] = mount
        return camera

    def joint_state(self, topic, msg, stamp_ns, now_ns):
        self.stamps.check(topic, stamp_ns, now_ns)
        state = self.builder.state(msg, 'joint_state')
        self.stamps.commit(topic, stamp_ns)
        self.state = state
        self.watchdog.feed(topic)

    def set_instruction(self, text):
        """Take a new instruction (rejected, not truncated, when too long); True if it changed."""
        text, limit = text.strip(), self.max_instruction_chars
        if not text or len(text) > limit:
            raise MessageError('too_long' if text else 'invalid', f'got {len(text)} characters, '
                               f'expected 1 to {limit} (max_instruction_chars); the previous '
                               'instruction stays')
        changed, self.instruction = text != self.instruction, text
        return changed

    def waiting_reason(self, instruction_topic):
        """Return a sentence naming what is missing or stale ('' when all is there)."""
        reason = self.watchdog.reason()
        missing = []
        if not (self.instruction or self.default_instruction):
            missing.append(f'no instruction yet on {instruction_topic}')
        cameras = self.builder.mounts.missing() if self.require_mounts else []
        if cameras:
            missing.append(f'no camera mount yet on {self.builder.mounts.topic} for '
                           f'{", ".join(cameras)}')
        for text in missing:
            reason = (reason + '; ' if reason else 'waiting for input: ') + text
        return reason


class LatestWinsWorker:
    """
    One background thread that runs `fn(job)` on the newest submitted job only.

    A job submitted while another is pending replaces it (the old one is counted in `dropped`,
    never queued), so the model always sees the newest observation and latency stays bounded by
    one inference. `min_period_s` caps the rate at which jobs are started.
    """

    def __init__(self, fn, name='spatialvla-policy-worker', min_period_s=0.0, on_error=None,
                 clock=time.monotonic):
        self._fn = fn
        self._name = name
        self._on_error = on_error
        self._clock = clock
        self.min_period_s = min_period_s
        self._cond = threading.Condition()
        self._pending = None
        self._running = False
        self._busy = False
        self._thread = None
        self._last_start = None
        self.dropped = 0
        self.processed = 0

    def start(self):
        with self._cond:
            if self._running:
                return
            self._running = True
            self._pending = None
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout=10.0):
        """Stop taking jobs, discard the pending one and wait for the running one to finish."""
        with self._cond:
            self._running = False
            self._pending = None
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def clear(self):
        """Drop the pending job (e.g. its inputs went stale); not counted as a newer-frame drop."""
        with self._cond:
            self._pending = None

    def submit(self, job):
        """Offer a job; return True when it replaced a pending, older one."""
        with self._cond:
            if not self._running:
                return False
            replaced = self._pending is not None
            if replaced:
                self.dropped += 1
            self._pending = job
            self._cond.notify_all()
            return replaced

    @property
    def busy(self):
        with self._cond:
            return self._busy or self._pending is not None

    def _take(self):
        with self._cond:
            while self._running:
                if self._pending is not None:
                    wait = 0.0
                    if self.min_period_s > 0 and self._last_start is not None:
                        wait = self._last_start + self.min_period_s - self._clock()
                    if wait <= 0:
                        job, self._pending = self._pending, None
                        self._busy = True
                        self._last_start = self._clock()
                        return job
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def _loop(self):
        while True:
            job = self._take()
            if job is None:
                return
            try:
                self._fn(job)
            except Exception as exc:  # noqa: BLE001 - the worker must survive any job
                if self._on_error is not None:
                    self._on_error(exc)
            finally:
                with self._cond:
                    self._busy = False
                    self.processed += 1


class Session:
    """
    One configured policy served on live inputs, without ROS: inputs, worker, waiting state.

    The node makes one at configure and drops it at cleanup; `start` and `stop` follow activate
    and deactivate. A camera set that completes while every input is fresh becomes a job on a
    latest-wins worker, whose chunk is published (below) unless it may no longer be.
    `settings(name)` reads a node parameter when it is needed (seed and max_observation_age_s
    apply to the next chunk); `logger` has warning() and info(), as
    rclpy's and logging's loggers have; `on_error(exc)` hears a job that raised. The execution
    mode (`policies.execution`) decides when a job may start, what an `rtc` chunk is held to
    and how a chunk is stamped: `publish(job, actions, latency, start_ns)` sends `actions`
    as a trajectory starting at `start_ns`; `ros_now()` is the clock of the stamps [ns].
    `safety` (a SafetyFilter) judges every trajectory before it is published, from the joint
    state of its observation: it goes out as is or clamped, or not at all.
    """

    def __init__(self, policy, live, stats, settings, publish, logger, on_error=None,
                 ros_now=time.time_ns, safety=None):
        self.policy, self.live, self.stats = policy, live, stats
        self._settings, self._publish, self._logger = settings, publish, logger
        self._on_error, self._ros_now = on_error, ros_now
        self.safety = safety
        self.worker, self.active, self.waiting = None, False, ''
        self.execution = self.injector = None
        self._waiting_log = LastingChange(0.0)

    def start(self, input_timeout_s, future_tolerance_s, warn_throttle_s, max_rate_hz):
        """Activate: inputs, counts and waiting state afresh; start the worker."""
        self.live.reset(input_timeout_s, future_tolerance_s)
        self.stats.reset(warn_throttle_s, self._ros_now())
        self._start_execution()
        self._waiting_log = LastingChange(warn_throttle_s)
        self.worker = LatestWinsWorker(
            self._infer, min_period_s=1.0 / max_rate_hz if max_rate_hz > 0 else 0.0,
            on_error=self._on_error)
        self.worker.start()
        self.waiting, self.active = '', True

    def _start_execution(self):
        # Per activation: the delay estimate starts afresh, so the warm-up chunk of configure
        # never counts, and the first chunk after activation is its cold start.
        get = self._settings
        self.execution = ExecutionScheduler(
            get('execution'), self.policy.config.action.dt, get('execution_horizon'),
            get('rtc_max_guidance_weight'))
        self.injector = LatencyInjector(get('inject_latency_ms') * 1e-3,
                                        get('inject_latency_jitter_ms') * 1e-3, get('seed'))

    def stop(self, timeout_s=30.0):
        """Deactivate: stop the worker (a chunk in flight is not published); False if it hung."""
        self.active = False
        if self.worker is None:
            return True
        self.stats.dropped_before += self.worker.dropped
        stopped, self.worker = self.worker.stop(timeout_s), None
        return stopped

    def reject(self, topic, error):
        """Count a rejected message by its reason; log it unless throttled."""
        message, should_log = self.stats.rejections.record(topic, error)
        if should_log:
            self._logger.warning(message)

    def camera(self, key, topic, msg, now_ns):
        """Take one camera message (ignored while inactive); a job goes to the worker."""
        if not self.active:
            return
        try:
            job = self.live.camera(key, topic, msg, stamp_to_ns(msg.header.stamp), now_ns,
                                   self.live.clock())
        except Exception as exc:  # noqa: BLE001 - no input may kill the node
            self.reject(topic, exc)
            return
        if job is not None and self.execution.may_start(now_ns, self.worker.busy):
            self.worker.submit(job)

    def joint_state(self, topic, msg, now_ns):
        try:
            self.live.joint_state(topic, msg, stamp_to_ns(msg.header.stamp), now_ns)
        except Exception as exc:  # noqa: BLE001 - no input may kill the node
            self.reject(topic, exc)

    def camera_pose(self, topic, msg):
        """Take a camera mount (also while inactive: it is latched and comes once)."""
        try:
            camera = self.live.camera_pose(topic, msg)
        except Exception as exc:  # noqa: BLE001 - no input may kill the node
            self.reject(topic, exc)
            return
        mount = self.live.builder.mounts.latest[camera].base_from_camera
        self._logger.info(f'camera {camera!r} mount from {topic}: xyz '
                          f'{[round(float(v), 4) for v in mount[:3, 3]]}')

    def instruction(self, topic, text):
        """Take an instruction; log an excerpt of it when it changed."""
        try:
            changed = self.live.set_instruction(text)
        except MessageError as exc:
            self.reject(topic, exc)
            return
        if changed:
            text = self.live.instruction
            excerpt = text if len(text) <= 80 else text[:80] + '...'
            self._logger.info(f'instruction ({len(text)} chars): {excerpt!r}')

    def check_inputs(self, instruction_topic):
        """Watchdog tick: state and pending job follow the inputs, the log lasting changes."""
        if not self.active:
            return
        reason = self.live.waiting_reason(instruction_topic)
        if reason and not self.waiting:
            self.worker.clear()
        self.waiting = reason
        if self._waiting_log.update(reason):
            if reason:
                self._logger.warning(reason)
            else:
                self._logger.info('all inputs fresh again: resuming')

    def _suppress(self, reason, warning=''):
        if self.stats.suppress(reason) and warning:
            self._logger.warning(warning)

    def _infer(self, job):
        """Worker thread: observation -> chunk -> publish, unless anything went stale."""
        try:
            obs = self.live.builder.assemble(job.arrays, job.state, job.instruction,
                                             job.stamp_ns, job.mounts)
        except MessageError as exc:
            self.reject(SYNC_INPUT, exc)
            return
        seed = self._settings('seed')
        prefix = self.execution.prefix(job.stamp_ns, self.policy.config.action.chunk_size)
        try:  # (H, A) float32; the processor refuses non-finite actions with a ValueError
            chunk = self.policy.predict_chunk(obs, seed=seed if seed >= 0 else None,
                                              prefix=prefix)
        except ValueError as exc:
            self._suppress('refused_action', f'not published: {exc}')
            return
        self.injector.wait()
        latency = self.live.clock() - job.received
        max_age = self._settings('max_observation_age_s')
        if not self.active:
            self._suppress('inactive')
        elif self.live.watchdog.stale():
            self._suppress('stale_input')
        elif latency > max_age:
            self._suppress('late_result', f'chunk ready {latency:.3f} s after its observation '
                           f'(max_observation_age_s {max_age}): not published')
        else:
            self._send(job, chunk, latency)

    def _send(self, job, chunk, latency):
        """Publish a chunk as its execution mode says, through the safety filter; count it."""
        ready_ns = self._ros_now()
        actions, start_ns = self.execution.output(chunk, job.stamp_ns, ready_ns)
        actions = self._safe(job, actions, (start_ns - job.stamp_ns) / NS_PER_S)
        if actions is None:
            return
        self._publish(job, actions, latency, start_ns)
        # rtc holds the next chunk to what was sent (the filtered actions).
        self.execution.published(actions, start_ns, job.stamp_ns, ready_ns)
        self.stats.cadence.published(
            ready_ns, start_ns + len(actions) * self.execution.dt_ns, latency)

    def _safe(self, job, chunk, offset_s):
        """Give the chunk the safety filter lets through (maybe clamped); None when rejected.

        Point k of the trajectory is at offset_s + (k + 1) dt after the observation, at which
        the job's joint state was current.
        """
        if self.safety is None:
            return chunk
        times = offset_s + (np.arange(len(chunk)) + 1) * self.policy.config.action.dt
        verdict = self.safety(chunk, times, job.state[:self.safety.dim])
        if self.stats.safety_verdict(verdict):
            message = f'safety filter: chunk {verdict.outcome} ({verdict.detail})'
            # Two call sites: rclpy's logger refuses two severities from one line.
            if verdict.chunk is None:
                self._logger.warning(message)
            else:
                self._logger.info(message)
        return verdict.chunk


def load_policy(checkpoint_dir, device='auto', dtype='auto', num_steps=0, plan='',
                num_threads=0, compile=False):  # noqa: A002 - the node parameter's name
    """
    Load a checkpoint for serving; return (SpatialVLAPolicy, device, torch threads).

    device 'auto' is cuda when available; dtype 'auto' is the checkpoint's; num_steps 0 keeps
    the checkpoint's; a non-empty `plan` must match the checkpoint's; num_threads > 0 sets
    torch's intra-op threads (process-wide; 0 leaves torch's default); compile: torch.compile
    the denoising step (run the policy's `warmup` before serving). Imports torch (slow).
    """
    if not checkpoint_dir:
        raise ValueError("parameter 'checkpoint_dir' is empty: set it to a checkpoint "
                         'directory written by save_checkpoint (--ros-args -p '
                         'checkpoint_dir:=/path/to/checkpoint)')
    # Deferred: torch and the model take seconds to import; `policy_node --help`, the launch
    # tools and the ROS-free runtime pieces above must not pay for them.
    import torch

    from spatialvla_ros.policies.policy_spatialvla import SpatialVLAPolicy

    if num_threads > 0:
        torch.set_num_threads(num_threads)
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    elif device.startswith('cuda') and not torch.cuda.is_available():
        raise ValueError(f"parameter 'device': got {device!r}, but CUDA is not available")
    policy = SpatialVLAPolicy.from_pretrained(
        checkpoint_dir, device=device, dtype=None if dtype == 'auto' else getattr(torch, dtype),
        num_steps=num_steps or None, compile=compile)
    if plan and plan != policy.config.plan:
        raise ValueError(f"parameter 'plan': got {plan!r}, but the checkpoint {checkpoint_dir} "
                         f'is a {policy.config.plan!r} policy')
    return policy, device, torch.get_num_threads()


def free_memory():
    """Collect the dropped policy and hand cached GPU memory back (cleanup, shutdown)."""
    gc.collect()
    torch = sys.modules.get('torch')  # only load_policy imports it; nothing to free without
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


# glibc mallopt() parameters (malloc.h) and the largest mmap threshold it accepts on 64 bits.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX = -1, -3, 32 << 20


def reuse_freed_memory():
    """
    Keep freed frame-sized buffers in the heap for the next frame; return False if not glibc.

    Every live frame allocates a few MB of arrays (decoded images, xyz maps, tensors). By
    default glibc serves each with a fresh mmap and unmaps it when freed, so every frame pays
    the page faults of touching new memory: about half of the preprocessing time of a 640x480
    RGB-D frame (bench/preprocess_latency.py). Process-wide; costs up to a few frames of RSS.
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library('c')).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(
        mallopt(_M_TRIM_THRESHOLD, 8 * _MMAP_THRESHOLD_MAX))

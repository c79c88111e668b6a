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
The safety filter of commanded trajectories: position, velocity, acceleration, first step.

A chunk (H, A) of joint positions q_1..q_H at times t_1 < ... < t_H (seconds after the current
joint state q_0 was measured, i.e. the points' `time_from_start` after the trajectory's stamp)
is judged as the path q_0, q_1, ..., q_H:

- position: lower <= q_k <= upper for every point;
- first step: |q_1 - q_0| <= max_first_step (the jump a controller would have to make first);
- velocity: |v_k| <= max_velocity, v_k = (q_k - q_{k-1}) / (t_k - t_{k-1}) for k = 1..H, so the
  step from the current state to the first point counts;
- acceleration: |v_{k+1} - v_k| / ((t_{k+1} - t_{k-1}) / 2) <= max_acceleration for
  k = 1..H-1 (nothing is assumed about the velocity before q_0: the state carries none);
- non-finite positions (in the chunk or the current state) always reject the chunk.

Every limit is per joint; a joint without one has +-inf. `SafetyFilter(config)(chunk, times,
current)` gives a `SafetyVerdict`: the chunk itself when it passes, a clamped copy or None.
Pure numpy and no rclpy: the policy node and any ROS-free runner apply the same rules.
"""

from dataclasses import dataclass
from typing import Literal

import numpy as np

SAFETY_MODES = ('clamp', 'reject')
# Why a chunk was clamped or rejected; 'unclampable': clamp mode found no path within every
# limit (the current state is outside the position limits, or uneven point spacing).
SAFETY_REASONS = ('nonfinite', 'position', 'first_step', 'velocity', 'acceleration',
                  'unclampable')
# Default first-step bound, as time at the velocity limit: two 10 Hz periods (0.435 rad for
# Panda joints 1-4). The scripted expert's commands start at most 0.13 rad (0.06 s at the
# limit) from the measured state, over 9 demos of the three tasks.
FIRST_STEP_S = 0.2
# Round-off of the clamp (and of a float32 copy of its result) is not a violation.
_RELATIVE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class SafetyConfig:
    """
    Per-joint limits of the safety filter and what it does with a violating chunk.

    Tuples hold one value per action dimension, or nothing (that limit is not checked);
    float('inf') leaves one joint unchecked.

    mode 'clamp' (the default) publishes the nearest chunk that keeps every limit: a policy's
    chunk that overshoots a limit a little (a fast reach, a first point a step ahead of a
    lagging measured state) is still the best action there is, while a rejected one leaves the
    controller on the rest of an older trajectory or holding still, which stalls the task; the
    next chunk, a period later, starts from where the clamped one led. 'reject' publishes
    nothing instead, for validating a new policy against the limits (with the node's dry_run).
    Non-finite values are rejected in either mode: there is nothing to clamp them towards.
    """

    lower: tuple = ()                # position limits
    upper: tuple = ()
    max_velocity: tuple = ()         # [unit/s]
    max_acceleration: tuple = ()     # [unit/s^2]
    max_first_step: tuple = ()       # largest |first point - current state| [unit]
    mode: Literal[SAFETY_MODES] = 'clamp'

    @classmethod
    def for_action(cls, action, robot_limits=((), ()), mode='clamp', velocity_scale=1.0,
                   acceleration_scale=1.0, first_step_s=FIRST_STEP_S):
        """
        Build the limits of a checkpoint's ActionConfig.

        Position limits are action.lower_limits / upper_limits; velocity and acceleration
        limits are action.velocity_limits / acceleration_limits, else `robot_limits`
        (velocity, acceleration) such as the robot's published ones, each times its scale;
        the first point may be first_step_s at the velocity limit from the current state (0:
        no bound beyond the velocity limit).
        """
        velocity = tuple(v * velocity_scale for v in action.velocity_limits or robot_limits[0])
        acceleration = tuple(a * acceleration_scale
                             for a in action.acceleration_limits or robot_limits[1])
        first_step = tuple(v * first_step_s for v in velocity) if first_step_s > 0 else ()
        return cls(lower=tuple(action.lower_limits), upper=tuple(action.upper_limits),
                   max_velocity=velocity, max_acceleration=acceleration,
                   max_first_step=first_step, mode=mode)

    def validate(self, dim, names=None):
        """
        Raise ValueError naming the field when a limit does not fit `dim` joints; give self.

        names: {field: name to show in errors} (e.g. the node parameter a field came from).
        """
        names = names or {}
        if self.mode not in SAFETY_MODES:
            raise ValueError(f"{names.get('mode', 'mode')}: got {self.mode!r}, expected one of "
                             + ', '.join(repr(m) for m in SAFETY_MODES))
        for field in ('lower', 'upper', 'max_velocity', 'max_acceleration', 'max_first_step'):
            value = getattr(self, field)
            label = names.get(field, field)
            if len(value) not in (0, dim):
                raise ValueError(f'{label}: got {len(value)} values, expected {dim} (one per '
                                 'action dimension) or none')
            array = np.asarray(value, dtype=np.float64)
            if field not in ('lower', 'upper') and not np.all(array > 0):
                raise ValueError(f'{label}: got {list(value)}, expected values > 0 '
                                 '(inf: unlimited)')
        if len(self.lower) != len(self.upper):
            raise ValueError(f"{names.get('upper', 'upper')}: got {len(self.upper)} values, "
                             f"expected as many as {names.get('lower', 'lower')} "
                             f'({len(self.lower)})')
        for i, (lo, hi) in enumerate(zip(self.lower, self.upper)):
            if not lo < hi:
                raise ValueError(f"{names.get('lower', 'lower')}[{i}]: got {lo}, expected < "
                                 f"{names.get('upper', 'upper')}[{i}] = {hi}")
        return self


@dataclass(frozen=True)
class SafetyVerdict:
    """What the filter made of one chunk."""

    chunk: object                    # (H, A) array to publish; None when rejected
    outcome: str                     # 'passed', 'clamped' or 'rejected'
    reasons: tuple = ()              # SAFETY_REASONS found, in that order (empty: passed)
    detail: str = ''                 # the first violation of each reason, for a log line

    @property
    def publishable(self):
        return self.chunk is not None


def _limit(values, dim, fill):
    return np.asarray(values, np.float64) if len(values) else np.full(dim, fill, np.float64)


def _tol(limit):
    return _RELATIVE_TOLERANCE * np.maximum(np.abs(limit), 1.0)


def _over(value, limit):
    """Tell, elementwise, whether `value` exceeds `limit` by more than round-off."""
    with np.errstate(invalid='ignore'):
        return value > limit + _tol(limit)


def _first(mask, what):
    """'point k, joint j: what' of the first True of a (steps, joints) mask."""
    k, j = np.argwhere(mask)[0]
    return f'point {k}, joint {j}: {what(k, j)}'


class SafetyFilter:
    """
    Checks, clamps or rejects chunks against a SafetyConfig (see the module docstring).

    `times` and `current` come from the caller: the node passes the points' time_from_start
    and the joint state of the chunk's observation (the trajectory's stamp is that
    observation's, so both share one time origin).
    """

    def __init__(self, config, dim):
        self.config = config.validate(dim)
        self.dim = dim
        self.lower = _limit(config.lower, dim, -np.inf)
        self.upper = _limit(config.upper, dim, np.inf)
        self.max_velocity = _limit(config.max_velocity, dim, np.inf)
        self.max_acceleration = _limit(config.max_acceleration, dim, np.inf)
        self.max_first_step = _limit(config.max_first_step, dim, np.inf)

    def __call__(self, chunk, times, current):
        """
        Judge one chunk; give a SafetyVerdict.

        Arguments:
            chunk: (H, A) joint positions (any float dtype; returned as is when it passes).
            times: (H,) seconds of each point after `current` was measured, increasing, > 0.
            current: (A,) the current joint positions.
        """
        path, steps = self._inputs(chunk, times, current)
        if not np.all(np.isfinite(path)):
            k, j = np.argwhere(~np.isfinite(path))[0]
            where = 'current state' if k == 0 else f'point {k - 1}'
            return SafetyVerdict(None, 'rejected', ('nonfinite',),
                                 f'nonfinite: {where}, joint {j}: {path[k, j]}')
        found = self.violations(path, steps)
        if not found:
            return SafetyVerdict(chunk, 'passed')
        reasons = tuple(found)
        detail = '; '.join(f'{r}: {found[r]}' for r in reasons)
        if self.config.mode == 'reject':
            return SafetyVerdict(None, 'rejected', reasons, detail)
        clamped = self._clamp(path, steps)
        if clamped is None or self.violations(clamped, steps):
            return SafetyVerdict(None, 'rejected', reasons + ('unclampable',),
                                 detail + '; unclampable: no path within every limit from '
                                 'the current state')
        return SafetyVerdict(clamped[1:], 'clamped', reasons, detail)

    def _inputs(self, chunk, times, current):
        chunk = np.asarray(chunk, np.float64)
        times = np.asarray(times, np.float64)
        current = np.asarray(current, np.float64)
        if chunk.ndim != 2 or chunk.shape[1] != self.dim or len(chunk) == 0:
            raise ValueError(f'chunk: got shape {chunk.shape}, expected (H, {self.dim})')
        if times.shape != (len(chunk),):
            raise ValueError(f'times: got shape {times.shape}, expected ({len(chunk)},)')
        if current.shape != (self.dim,):
            raise ValueError(f'current: got shape {current.shape}, expected ({self.dim},)')
        steps = np.diff(times, prepend=0.0)
        if not (np.all(np.isfinite(times)) and np.all(steps > 0)):
            raise ValueError(f'times: got {times.tolist()}, expected finite times after the '
                             'current state (> 0), strictly increasing')
        return np.vstack([current, chunk]), steps

    def violations(self, path, steps):
        """
        {reason: first violation} of a finite path (current state + chunk) and its steps.

        steps: (H,) time from each point of the path to the next [s].
        """
        found = {}
        points = path[1:]
        low, high = _over(-points, -self.lower), _over(points, self.upper)
        if np.any(low | high):
            found['position'] = _first(low | high, lambda k, j: (
                f'{points[k, j]:.6g} outside [{self.lower[j]}, {self.upper[j]}]'))
        jump = np.abs(path[1] - path[0])
        if np.any(_over(jump, self.max_first_step)):
            found['first_step'] = _first(_over(jump, self.max_first_step)[None], lambda k, j: (
                f'{jump[j]:.4f} from the current state > {self.max_first_step[j]}'))
        velocity = np.diff(path, axis=0) / steps[:, None]
        if np.any(_over(np.abs(velocity), self.max_velocity)):
            found['velocity'] = _first(_over(np.abs(velocity), self.max_velocity),
                                       lambda k, j: f'|v| {abs(velocity[k, j]):.4f} > '
                                       f'{self.max_velocity[j]}')
        if len(steps) > 1:
            accel = np.diff(velocity, axis=0) / ((steps[1:] + steps[:-1]) / 2)[:, None]
            if np.any(_over(np.abs(accel), self.max_acceleration)):
                found['acceleration'] = _first(
                    _over(np.abs(accel), self.max_acceleration), lambda k, j: (
                        f'|a| {abs(accel[k, j]):.4f} > {self.max_acceleration[j]}'))
        return found

    def _clamp(self, path, steps):
        """
        Give the path nearest to `path`, point by point, that keeps every limit (None: none).

        Each step takes the velocity closest to the wanted one among those allowed by the
        velocity limit, the acceleration limit (from the previous step), the first-step bound
        and the position limits with room to brake: from q with velocity v the joint must be
        able to stop before a position limit at max_acceleration. Keeping that room is what
        makes the next step always feasible (with evenly spaced points), so the clamp never
        runs a joint into a limit it can no longer stop before.
        """
        q, v_prev, step_prev = path[0], None, None
        out = [q]
        for k, step in enumerate(steps):
            low, high = -self.max_velocity, self.max_velocity.copy()
            if k == 0:
                low = np.maximum(low, -self.max_first_step / step)
                high = np.minimum(high, self.max_first_step / step)
            else:
                change = self.max_acceleration * (step + step_prev) / 2
                low, high = np.maximum(low, v_prev - change), np.minimum(high, v_prev + change)
            high = np.minimum(high, _braking_speed(self.upper - q, step, self.max_acceleration))
            low = np.maximum(low, -_braking_speed(q - self.lower, step, self.max_acceleration))
            if np.any(low > high):
                return None
            v_prev = np.clip((path[k + 1] - q) / step, low, high)
            q, step_prev = q + v_prev * step, step
            out.append(q)
        return np.array(out)


def _braking_speed(room, step, max_acceleration):
    """
    Largest speed towards a limit `room` away that can still stop before it.

    Moving at v for one step and then braking at a takes v * step + v^2 / (2 a) <= room; the
    root is written as 2 room / (step + sqrt(step^2 + 2 room / a)) so that a = inf (no
    acceleration limit) gives room / step and room = inf (no position limit) gives inf. A
    negative room (outside the limit) asks for a step back inside: room / step.
    """
    with np.errstate(invalid='ignore', divide='ignore'):
        inside = 2 * room / (step + np.sqrt(step ** 2 + 2 * np.maximum(room, 0) /
                                            max_acceleration))
    return np.where(np.isinf(room), np.inf, np.where(room < 0, room / step, inside))


__all__ = ['FIRST_STEP_S', 'SAFETY_MODES', 'SAFETY_REASONS', 'SafetyConfig', 'SafetyFilter',
           'SafetyVerdict']

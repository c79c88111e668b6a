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

"""Joint trajectory execution with the semantics of ros2_control's joint_trajectory_controller.

A trajectory is a list of knots (absolute time [ns], joint positions) interpolated linearly in
joint space (JTC does the same when points carry positions only; velocities and accelerations in
incoming points are ignored here). A new trajectory replaces the rest of the old one from its
start time on: until then the old one keeps running, then the command moves from where the old
one was to the new first point. Points already in the past are dropped; the last point is held.
"""

import numpy as np


class TrajectoryExecutor:
    """Holds the commanded trajectory of `n` joints and evaluates it at any time [ns]."""

    def __init__(self, joint_names, positions, now_ns=0):
        self.joint_names = tuple(joint_names)
        self._index = {name: i for i, name in enumerate(self.joint_names)}
        self.hold(positions, now_ns)

    def hold(self, positions, now_ns):
        """Forget any trajectory and hold `positions` from `now_ns` on."""
        positions = np.asarray(positions, dtype=np.float64)
        if positions.shape != (len(self.joint_names),):
            raise ValueError(f'hold positions: got shape {positions.shape}, expected '
                             f'({len(self.joint_names)},)')
        self._times = np.array([int(now_ns)], dtype=np.int64)
        self._knots = positions[None].copy()          # (K, n)

    @property
    def end_ns(self):
        """Time of the last knot: after it the command is constant."""
        return int(self._times[-1])

    def evaluate(self, t_ns):
        """Commanded positions (n,) at time `t_ns` (linear between knots, clamped at the ends)."""
        times, knots = self._times, self._knots
        if t_ns <= times[0]:
            return knots[0].copy()
        if t_ns >= times[-1]:
            return knots[-1].copy()
        k = int(np.searchsorted(times, t_ns, side='right'))  # times[k-1] <= t < times[k]
        alpha = (t_ns - times[k - 1]) / float(times[k] - times[k - 1])
        return (1.0 - alpha) * knots[k - 1] + alpha * knots[k]

    def velocity(self, t_ns):
        """Slope (n,) of the segment containing `t_ns` [unit/s]; zero outside the trajectory.

        Fed forward to the position controller, so a joint follows a ramp without lag.
        """
        times, knots = self._times, self._knots
        if t_ns < times[0] or t_ns >= times[-1]:
            return np.zeros(knots.shape[1])
        k = int(np.searchsorted(times, t_ns, side='right'))
        return (knots[k] - knots[k - 1]) * (1e9 / float(times[k] - times[k - 1]))

    def set_trajectory(self, joint_names, start_ns, offsets_ns, positions, now_ns):
        """Replace the command from max(start_ns, now_ns) on with the given points.

        joint_names: names of the columns of `positions` (any subset of the executor's joints,
            any order; joints not named keep their current command).
        start_ns: the trajectory's header stamp resolved to an absolute time (0 already replaced
            by "now" by the caller).
        offsets_ns: (N,) time_from_start of each point [ns], strictly increasing.
        positions: (N, len(joint_names)) target positions.
        Returns the number of points that were in the past and dropped.
        """
        names = list(joint_names)
        unknown = [n for n in names if n not in self._index]
        if not names or unknown or len(set(names)) != len(names):
            raise ValueError(f'joint_names: got {names}, expected distinct names among '
                             f'{list(self.joint_names)}')
        positions = np.asarray(positions, dtype=np.float64).reshape(len(offsets_ns), len(names))
        offsets = np.asarray(offsets_ns, dtype=np.int64)
        if len(offsets) == 0:
            raise ValueError('points: got an empty trajectory, expected at least one point')
        if np.any(offsets < 0) or np.any(np.diff(offsets) <= 0):
            raise ValueError(f'points.time_from_start: got {offsets.tolist()} ns, expected '
                             'non-negative and strictly increasing')
        if not np.all(np.isfinite(positions)):
            raise ValueError('points.positions: contains NaN or inf')
        anchor_ns = max(int(start_ns), int(now_ns))
        anchor = self.evaluate(anchor_ns)
        cols = [self._index[n] for n in names]
        times = int(start_ns) + offsets
        future = times > anchor_ns
        dropped = int(np.count_nonzero(~future))
        if not np.any(future):
            # Every point is in the past: hold the last one (reached as fast as the joints can).
            times, positions = np.array([anchor_ns + 1]), positions[-1:]
        else:
            times, positions = times[future], positions[future]
        new_knots = np.repeat(anchor[None], len(times), axis=0)
        new_knots[:, cols] = positions
        keep = self._times < anchor_ns                 # old knots before the new start
        self._times = np.concatenate([self._times[keep], [anchor_ns], times]).astype(np.int64)
        self._knots = np.concatenate([self._knots[keep], anchor[None], new_knots])
        self._prune(now_ns)
        return dropped

    def _prune(self, now_ns):
        # Keep one knot at or before `now` (needed for interpolation), drop older ones.
        k = int(np.searchsorted(self._times, now_ns, side='right')) - 1
        if k > 0:
            self._times, self._knots = self._times[k:], self._knots[k:]

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


"""Align a policy's predicted trajectories with a bag's recorded actions and score them.

ROS-free: inputs are plain arrays, so the evaluator node, the tests and notebooks share it.

Time convention (the one the policy node and the simulator use): a trajectory stamped t0 whose
point k has time_from_start d_k commands the position for the absolute time t0 + d_k. A
recorded command (e.g. the expert's /spatialvla/expert_trajectory, one point at t + dt) is the
target for its stamp + its first point's time_from_start. A predicted point is paired with the
recorded target nearest in absolute time, if that is within `tolerance_ns` (default half the
recorded period); points with no recorded target that close (past the end of the recording)
are not scored. Joints are paired by name.
"""

from dataclasses import dataclass
from dataclasses import field

import numpy as np

from spatialvla_ros.core_types import stamp_to_ns


@dataclass
class RecordedActions:
    """Recorded joint targets: values[i] is the target for absolute time times_ns[i]."""

    names: tuple
    times_ns: np.ndarray      # (N,) int64, sorted
    values: np.ndarray        # (N, A) float64

    def __post_init__(self):
        order = np.argsort(self.times_ns, kind='stable')
        self.times_ns = np.asarray(self.times_ns, dtype=np.int64)[order]
        self.values = np.asarray(self.values, dtype=np.float64).reshape(
            len(self.times_ns), len(self.names))[order]

    def __len__(self):
        return int(self.times_ns.shape[0])

    def period_ns(self):
        """Median spacing of the recorded targets (0 with fewer than two)."""
        if len(self) < 2:
            return 0
        return int(np.median(np.diff(self.times_ns)))


def recorded_actions_from_messages(entries, topic='<action topic>'):
    """Build RecordedActions from (log_time_ns, message) pairs of one topic.

    JointTrajectory: the first point of each message, for stamp + its time_from_start (a zero
    stamp means "when received": the log time). JointState: the positions at the stamp.
    """
    names, times, values = None, [], []
    for log_time, msg in entries:
        if hasattr(msg, 'points'):
            if len(msg.points) == 0:
                continue
            msg_names = tuple(msg.joint_names)
            positions = msg.points[0].positions
            offset = stamp_to_ns(msg.points[0].time_from_start)
        elif hasattr(msg, 'position'):
            msg_names, positions, offset = tuple(msg.name), msg.position, 0
        else:
            raise TypeError(f'{topic}: got {type(msg).__name__}, expected trajectory_msgs/'
                            'JointTrajectory or sensor_msgs/JointState')
        positions = np.asarray(positions, dtype=np.float64)
        if positions.shape != (len(msg_names),):
            raise ValueError(f'{topic}: a message has {positions.shape[0]} positions for '
                             f'{len(msg_names)} joint names')
        if names is None:
            names = msg_names
        if msg_names != names:
            lookup = dict(zip(msg_names, positions))
            if not all(n in lookup for n in names):
                raise ValueError(f'{topic}: joint names changed from {list(names)} to '
                                 f'{list(msg_names)}')
            positions = np.array([lookup[n] for n in names])
        stamp = stamp_to_ns(msg.header.stamp) or int(log_time)
        times.append(stamp + offset)
        values.append(positions)
    if names is None:
        raise ValueError(f'{topic}: no usable recorded action in the bag')
    return RecordedActions(names, np.asarray(times, dtype=np.int64),
                           np.asarray(values, dtype=np.float64))


@dataclass
class PredictedChunk:
    """One trajectory of the policy: values[k] is meant for stamp_ns + offsets_ns[k]."""

    stamp_ns: int             # observation stamp (the trajectory's header stamp)
    names: tuple
    offsets_ns: np.ndarray    # (H,) int64 time_from_start of each point
    values: np.ndarray        # (H, A) float64
    received_s: float = 0.0   # monotonic time the evaluator received it


def chunk_from_trajectory(msg, received_s=0.0):
    """Build a PredictedChunk from a JointTrajectory message (rclpy or rosbags)."""
    names = tuple(msg.joint_names)
    values = np.array([np.asarray(pt.positions, dtype=np.float64) for pt in msg.points])
    values = values.reshape(len(msg.points), len(names))
    offsets = np.array([stamp_to_ns(pt.time_from_start) for pt in msg.points], dtype=np.int64)
    return PredictedChunk(stamp_to_ns(msg.header.stamp), names, offsets, values, received_s)


def _name_columns(pred_names, rec_names):
    """(pred columns, rec columns, names) of the joints both sides have, in predicted order."""
    common = [n for n in pred_names if n in rec_names]
    if common:
        return ([pred_names.index(n) for n in common], [rec_names.index(n) for n in common],
                tuple(common))
    if len(pred_names) == len(rec_names):  # unnamed actions (action_0, ...): by position
        return list(range(len(pred_names))), list(range(len(rec_names))), tuple(rec_names)
    raise ValueError(f'predicted joints {list(pred_names)} share no name with the recorded '
                     f'{list(rec_names)}')


@dataclass
class Alignment:
    """Matched (chunk, step) pairs: error = predicted - recorded, per joint."""

    names: tuple
    horizon: int
    chunk_index: np.ndarray   # (M,) which prediction
    step: np.ndarray          # (M,) horizon step k
    time_ns: np.ndarray       # (M,) absolute target time
    predicted: np.ndarray     # (M, A)
    recorded: np.ndarray      # (M, A)
    unmatched: int = 0        # predicted points with no recorded target within tolerance

    @property
    def error(self):
        return self.predicted - self.recorded


def align(predictions, recorded, tolerance_ns=None):
    """Pair every predicted point with the recorded target nearest in absolute time."""
    if tolerance_ns is None:
        tolerance_ns = max(recorded.period_ns() // 2, 1)
    horizon = max((len(p.offsets_ns) for p in predictions), default=0)
    rows = {'chunk': [], 'step': [], 'time': [], 'pred': [], 'rec': []}
    names, unmatched = None, 0
    times = recorded.times_ns
    for i, pred in enumerate(predictions):
        pcols, rcols, common = _name_columns(list(pred.names), list(recorded.names))
        if names is None:
            names = common
        elif common != names:
            raise ValueError(f'prediction {i}: joints {list(common)} differ from the earlier '
                             f'{list(names)}')
        target = pred.stamp_ns + np.asarray(pred.offsets_ns, dtype=np.int64)       # (H,)
        right = np.clip(np.searchsorted(times, target), 0, len(times) - 1)
        left = np.clip(right - 1, 0, len(times) - 1)
        nearest = np.where(np.abs(times[left] - target) <= np.abs(times[right] - target),
                           left, right)
        ok = np.abs(times[nearest] - target) <= tolerance_ns
        unmatched += int((~ok).sum())
        for k in np.flatnonzero(ok):
            rows['chunk'].append(i)
            rows['step'].append(int(k))
            rows['time'].append(int(target[k]))
            rows['pred'].append(pred.values[k, pcols])
            rows['rec'].append(recorded.values[nearest[k], rcols])
    width = len(names or recorded.names)
    return Alignment(
        names=names or tuple(recorded.names), horizon=horizon,
        chunk_index=np.asarray(rows['chunk'], dtype=np.int64),
        step=np.asarray(rows['step'], dtype=np.int64),
        time_ns=np.asarray(rows['time'], dtype=np.int64),
        predicted=np.asarray(rows['pred'], dtype=np.float64).reshape(-1, width),
        recorded=np.asarray(rows['rec'], dtype=np.float64).reshape(-1, width),
        unmatched=unmatched)


def distribution(values):
    """Summary of a sample (latencies): count, mean, p50, p90, p99, max (NaN when empty)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {'count': 0, 'mean': float('nan'), 'p50': float('nan'), 'p90': float('nan'),
                'p99': float('nan'), 'max': float('nan')}
    return {'count': int(v.size), 'mean': float(v.mean()), 'p50': float(np.percentile(v, 50)),
            'p90': float(np.percentile(v, 90)), 'p99': float(np.percentile(v, 99)),
            'max': float(v.max())}


@dataclass
class ReplayMetrics:
    """Errors per action dimension and per horizon step (robot units, e.g. rad)."""

    names: tuple
    matched: int                       # scored (chunk, step) pairs
    unmatched: int
    mae: float
    rmse: float
    mae_per_dim: list = field(default_factory=list)
    rmse_per_dim: list = field(default_factory=list)
    mae_per_step: list = field(default_factory=list)     # mean over dims of |error| at step k
    rmse_per_step: list = field(default_factory=list)
    count_per_step: list = field(default_factory=list)

    def to_dict(self):
        return dict(self.__dict__, names=list(self.names))


def replay_metrics(alignment):
    """Compute the ReplayMetrics of an Alignment (NaN where nothing was matched)."""
    err = alignment.error                                              # (M, A)
    a = len(alignment.names)
    nan = float('nan')
    if err.shape[0] == 0:
        return ReplayMetrics(alignment.names, 0, alignment.unmatched, nan, nan, [nan] * a,
                             [nan] * a, [nan] * alignment.horizon, [nan] * alignment.horizon,
                             [0] * alignment.horizon)
    mae_step, rmse_step, count = [], [], []
    for k in range(alignment.horizon):
        e = err[alignment.step == k]
        count.append(int(e.shape[0]))
        mae_step.append(float(np.abs(e).mean()) if e.size else nan)
        rmse_step.append(float(np.sqrt((e ** 2).mean())) if e.size else nan)
    return ReplayMetrics(
        names=alignment.names, matched=int(err.shape[0]), unmatched=alignment.unmatched,
        mae=float(np.abs(err).mean()), rmse=float(np.sqrt((err ** 2).mean())),
        mae_per_dim=np.abs(err).mean(0).tolist(),
        rmse_per_dim=np.sqrt((err ** 2).mean(0)).tolist(),
        mae_per_step=mae_step, rmse_per_step=rmse_step, count_per_step=count)


__all__ = ['Alignment', 'PredictedChunk', 'RecordedActions', 'ReplayMetrics', 'align',
           'chunk_from_trajectory', 'distribution', 'recorded_actions_from_messages',
           'replay_metrics']

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

"""How smoothly an episode's chunks were executed: seams, jerk and cadence (no ROS).

Inputs are what the closed-loop client records: the executed joint trajectory (the simulator's
joint states, one per control tick, times in seconds from the episode's start) and the
trajectories the policy sent (`Trajectory`: when each arrived, when its first point was due,
how many points, dt apart).

- Seam discontinuity: the per-step motion of the executed trajectory at a chunk boundary
  relative to its nominal per-step motion. The step of tick k is d_k = max over the arm
  joints of |q_{k+1} - q_k| (rad per control period). A boundary is the arrival of a
  trajectory; its seam step is the step from the last tick before the arrival to the first
  tick after it, where the arm turns from the old trajectory to the new one. The nominal
  per-step motion is the median of d_k over the other steps while the arm moves
  (d_k > `moving_rad`). The episode's seam jump is the largest seam step over the nominal one:
  1 means the seams are as smooth as the motion between them, 2 a seam moves the arm twice as
  far in one period as the policy's motion does.
- Jerk RMS: the third finite difference of the executed joint positions over dt^3, root mean
  square over the arm joints and ticks (rad/s^3).
- Cadence: chunks per second, and the fraction of control periods in which no action was due
  (the newest trajectory had run out or none had arrived: `policies.execution.CadenceMeter`,
  the node's own meter).
"""

from dataclasses import dataclass

import numpy as np

from spatialvla_ros.policies.execution import CadenceMeter

ARM_JOINTS = 7            # the Panda's arm joints come first in the joint state (then fingers)
MOVING_RAD = 1e-3         # per-step motion below this is the arm standing still


@dataclass(frozen=True)
class Trajectory:
    """One trajectory the policy sent, in seconds from the episode's start."""

    arrival_s: float         # when the controller got it (it replaces the old one from then)
    start_s: float           # its header stamp: point k is due at start_s + (k + 1) dt
    points: int
    dt: float


def _steps(positions, joints=ARM_JOINTS):
    q = np.asarray(positions, dtype=np.float64)
    if q.ndim != 2 or len(q) < 2:
        return np.zeros(0)
    q = q[:, :joints]
    return np.abs(np.diff(q, axis=0)).max(axis=1)            # (T - 1,)


def seam_jump(times_s, positions, trajectories, moving_rad=MOVING_RAD):
    """
    (largest seam step [rad], nominal step [rad], their ratio) of one episode (NaN if none).

    The first trajectory is no seam (nothing was executing before it).
    """
    times = np.asarray(times_s, dtype=np.float64)
    steps = _steps(positions)
    if steps.size == 0:
        return float('nan'), float('nan'), float('nan')
    seam = np.zeros(steps.size, dtype=bool)
    for traj in trajectories[1:]:
        k = int(np.searchsorted(times, traj.arrival_s, side='right')) - 1   # last tick before
        if 0 <= k < steps.size:
            seam[k] = True
    others = steps[~seam & (steps > moving_rad)]
    nominal = float(np.median(others)) if others.size else float('nan')
    largest = float(steps[seam].max()) if seam.any() else float('nan')
    return largest, nominal, largest / nominal if nominal > 0 else float('nan')


def jerk_rms(times_s, positions, joints=ARM_JOINTS):
    """RMS of the third finite difference of the arm joints over dt^3 [rad/s^3] (NaN if short)."""
    q = np.asarray(positions, dtype=np.float64)
    times = np.asarray(times_s, dtype=np.float64)
    if q.ndim != 2 or len(q) < 4:
        return float('nan')
    dt = float(np.median(np.diff(times)))
    jerk = np.diff(q[:, :joints], n=3, axis=0) / dt ** 3
    return float(np.sqrt(np.mean(jerk ** 2)))


def cadence(trajectories, end_s):
    """{chunks_per_s, starved_fraction} of an episode from 0 to end_s, as the node counts."""
    meter = CadenceMeter()
    meter.reset(0)
    for traj in trajectories:
        arrival = int(round(traj.arrival_s * 1e9))
        end = int(round((traj.start_s + traj.points * traj.dt) * 1e9))
        meter.published(arrival, end)
    end_ns = int(round(end_s * 1e9))
    return {'chunks_per_s': meter.chunks_per_s(end_ns),
            'starved_fraction': meter.starved_fraction(end_ns)}


def execution_metrics(times_s, positions, trajectories, end_s):
    """
    Every figure above for one episode, as a dict.

    Keys: seam_jump, seam_step_rad, nominal_step_rad, jerk_rms, chunks_per_s,
    starved_fraction; all but jerk_rms NaN when `trajectories` is None (not recorded).
    """
    if trajectories is None:      # not recorded (the in-process runner has no trajectories)
        nan = float('nan')
        return {'seam_jump': nan, 'seam_step_rad': nan, 'nominal_step_rad': nan,
                'jerk_rms': jerk_rms(times_s, positions), 'chunks_per_s': nan,
                'starved_fraction': nan}
    largest, nominal, ratio = seam_jump(times_s, positions, trajectories)
    out = {'seam_jump': ratio, 'seam_step_rad': largest, 'nominal_step_rad': nominal,
           'jerk_rms': jerk_rms(times_s, positions)}
    out.update(cadence(trajectories, end_s))
    return out


__all__ = ['ARM_JOINTS', 'MOVING_RAD', 'Trajectory', 'cadence', 'execution_metrics',
           'jerk_rms', 'seam_jump']

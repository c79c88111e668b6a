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

"""Shared types of the whole project, below every other module (numpy; torch when asked).

`RawObservation`: one synchronised observation in numpy; perception (live ROS messages), the
bag dataset and the simulator produce it, the processor turns a list of them into tensors.
`NormalizationStats`: the per-dimension statistics that travel with a checkpoint.
`stamp_to_ns` / `ns_to_stamp`: the one conversion between ROS time (builtin_interfaces Time or
Duration of rclpy or rosbags, anything with `.sec` / `.nanosec`) and integer nanoseconds.
"""

from dataclasses import dataclass
from dataclasses import field
from typing import NamedTuple

import numpy as np

NS_PER_S = 1_000_000_000


class Stamp(NamedTuple):
    """A ROS time as (sec, nanosec), 0 <= nanosec < 1e9; `_asdict()` gives message fields."""

    sec: int
    nanosec: int


def stamp_to_ns(stamp):
    """Return integer nanoseconds of a Time / Duration-like object (`.sec`, `.nanosec`) or int."""
    if isinstance(stamp, (int, np.integer)):
        return int(stamp)
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def ns_to_stamp(ns):
    """Return `Stamp(sec, nanosec)` of integer nanoseconds (nanosec always in [0, 1e9))."""
    sec, nanosec = divmod(int(ns), NS_PER_S)
    return Stamp(int(sec), int(nanosec))


@dataclass
class RawObservation:
    """One synchronised observation, in numpy, in the robot's base frame.

    images[v]: (H, W, 3) uint8 RGB of camera v.
    points[v]: (H, W, 3) float32 xyz of each pixel in the base frame [m]; NaN where the depth
        was invalid (0, NaN, inf, out of range) or no point of a cloud projected there.
    state: (state_dim,) float32 proprioceptive state (e.g. joint positions).
    """

    images: list
    points: list
    state: np.ndarray
    instruction: str
    stamp_ns: int = 0
    camera_names: list = field(default_factory=list)

    def validate(self, num_cameras=None, state_dim=None):
        """Raise ValueError naming the field when the observation cannot be fed to a model."""
        if num_cameras is not None and len(self.images) != num_cameras:
            raise ValueError(f'observation.images: got {len(self.images)} cameras, '
                             f'expected {num_cameras}')
        if len(self.images) != len(self.points):
            raise ValueError(f'observation.points: got {len(self.points)} maps for '
                             f'{len(self.images)} images')
        for v, (img, pts) in enumerate(zip(self.images, self.points)):
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise ValueError(f'observation.images[{v}]: got {img.dtype} {img.shape}, '
                                 'expected uint8 (H, W, 3)')
            if pts.shape != img.shape[:2] + (3,):
                raise ValueError(f'observation.points[{v}]: got shape {pts.shape}, '
                                 f'expected {img.shape[:2] + (3,)} (same H, W as the image)')
        state = np.asarray(self.state)
        if state.ndim != 1 or (state_dim is not None and state.shape[0] != state_dim):
            raise ValueError(f'observation.state: got shape {state.shape}, '
                             f'expected ({state_dim},)')
        if not np.all(np.isfinite(state)):
            raise ValueError('observation.state: contains NaN or inf')
        return self


_STAT_KEYS = ('state_mean', 'state_std', 'action_mean', 'action_std')


@dataclass
class NormalizationStats:
    """Per-dimension mean / std of state and action (z-score normalisation)."""

    state_mean: np.ndarray   # (S,) float32
    state_std: np.ndarray    # (S,) float32, >= the floor used when computed
    action_mean: np.ndarray  # (A,) float32
    action_std: np.ndarray   # (A,) float32

    def __post_init__(self):
        for key in _STAT_KEYS:
            value = np.asarray(getattr(self, key), dtype=np.float32)
            if value.ndim != 1 or not np.all(np.isfinite(value)):
                raise ValueError(f'normalization.{key}: got shape {value.shape} '
                                 f'(finite={bool(np.all(np.isfinite(value)))}), '
                                 'expected a finite 1-D vector')
            setattr(self, key, value)
        for kind in ('state', 'action'):
            mean, std = getattr(self, f'{kind}_mean'), getattr(self, f'{kind}_std')
            if mean.shape != std.shape:
                raise ValueError(f'normalization.{kind}_std: got shape {std.shape}, '
                                 f'expected {mean.shape} like {kind}_mean')
            if np.any(std <= 0):
                raise ValueError(f'normalization.{kind}_std: got {std.tolist()}, '
                                 'expected values > 0')

    @property
    def state_dim(self):
        return self.state_mean.shape[0]

    @property
    def action_dim(self):
        return self.action_mean.shape[0]

    @classmethod
    def identity(cls, state_dim, action_dim):
        """Stats that change nothing (tests, or data already in a unit range)."""
        return cls(np.zeros(state_dim), np.ones(state_dim), np.zeros(action_dim),
                   np.ones(action_dim))

    @classmethod
    def from_arrays(cls, states, actions, action_mask=None, std_floor=1e-3):
        """
        Compute stats from training data.

        Arguments, by name:
            states: (N, S) states.
            actions: (N, A) or (N, H, A) actions in robot units.
            action_mask: optional (N,) or (N, H) bool; False marks padded steps to ignore.
            std_floor: lower bound of each std, so a constant dimension (a gripper that never
                moved) does not blow up to inf after normalisation.
        """
        states = np.asarray(states, dtype=np.float64)
        actions = np.asarray(actions, dtype=np.float64)
        if states.ndim != 2 or states.shape[0] == 0:
            raise ValueError(f'states: got shape {states.shape}, expected (N>0, state_dim)')
        if actions.ndim not in (2, 3) or actions.shape[0] == 0:
            raise ValueError(f'actions: got shape {actions.shape}, expected (N>0, action_dim) '
                             'or (N>0, H, action_dim)')
        flat = actions.reshape(-1, actions.shape[-1])
        if action_mask is not None:
            mask = np.asarray(action_mask, dtype=bool).reshape(-1)
            if mask.shape[0] != flat.shape[0]:
                raise ValueError(f'action_mask: got {np.shape(action_mask)}, expected '
                                 f'{actions.shape[:-1]} (the leading dims of actions)')
            flat = flat[mask]
        if flat.shape[0] == 0:
            raise ValueError('actions: no valid (unmasked) step to compute statistics from')
        for name, arr in (('states', states), ('actions', flat)):
            if not np.all(np.isfinite(arr)):
                raise ValueError(f'{name}: contains NaN or inf')
        return cls(states.mean(0), np.maximum(states.std(0), std_floor),
                   flat.mean(0), np.maximum(flat.std(0), std_floor))

    def normalize_state(self, state):
        return (state - self.state_mean) / self.state_std

    def normalize_action(self, action):
        return (action - self.action_mean) / self.action_std

    def unnormalize_action(self, action):
        return action * self.action_std + self.action_mean

    def to_tensors(self):
        """Flat dict of float32 tensors for safetensors."""
        # Deferred: torch takes ~2 s to import, and the ROS nodes and tools that only need the
        # observation type or the time conversion above never call this.
        import torch
        return {key: torch.from_numpy(getattr(self, key).copy()) for key in _STAT_KEYS}

    @classmethod
    def from_tensors(cls, tensors, source='<tensors>'):
        missing = [k for k in _STAT_KEYS if k not in tensors]
        unexpected = sorted(set(tensors) - set(_STAT_KEYS))
        if missing or unexpected:
            raise ValueError(f'{source}: normalization tensors missing {missing}, unexpected '
                             f'{unexpected}; expected exactly {list(_STAT_KEYS)}')
        try:
            return cls(**{k: tensors[k].detach().float().cpu().numpy() for k in _STAT_KEYS})
        except ValueError as exc:
            raise ValueError(f'{source}: {exc}') from None


__all__ = ['NS_PER_S', 'NormalizationStats', 'RawObservation', 'Stamp', 'ns_to_stamp',
           'stamp_to_ns']

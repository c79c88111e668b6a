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

"""The observation every part of the project passes around before it becomes tensors.

Perception (live ROS messages), the bag dataset and the simulator all produce a
`RawObservation`; the processor turns a list of them into model tensors.
"""

from dataclasses import dataclass
from dataclasses import field

import numpy as np


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

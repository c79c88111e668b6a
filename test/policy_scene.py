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

"""A synthetic 64x48 RGB-D camera scene shared by the policy-node tests."""

import time

import numpy as np

W, H = 64, 48
FX = FY = 50.0
CX, CY = 31.5, 23.5
INSTRUCTION = 'pick up the red cube'


def wait_for(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def scene(i):
    """Frame i: a red square moving over a gradient, 0.2 m in front of a 1 m wall."""
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 1] = np.linspace(0, 200, W, dtype=np.uint8)[None, :]
    rgb[..., 2] = np.linspace(0, 200, H, dtype=np.uint8)[:, None]
    depth = np.full((H, W), 1.0, np.float32)
    c = 8 + (2 * i) % (W - 24)
    rgb[16:32, c:c + 16] = (220, 20, 20)
    depth[16:32, c:c + 16] = 0.8
    depth[0, 0] = np.nan  # one invalid pixel, as real drivers give
    return rgb, depth

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


"""Simulator constants needed without pybullet (node --help, configs, parameter files)."""

TASKS = ('reach', 'push', 'pick_place')

# Default camera: in front of the robot, above the table, looking back at the workspace, so the
# arm and every object are in view. It is look_at((0.9, 0, 0.85), (0.45, 0, 0.12)) rounded to
# 6 digits, the values in config/*.yaml data.cameras[0] (policy and simulator agree exactly).
DEFAULT_CAMERA_XYZ = (0.9, 0.0, 0.85)
DEFAULT_CAMERA_QUAT = (-0.680305, -0.680305, 0.192836, 0.192836)

# Optional second camera (`side_camera`), fixed: on the robot's left (+y), above the table,
# looking across the workspace, so heights and the gap under the gripper show. It is
# look_at((0.45, 0.95, 0.6), (0.45, 0, 0.15)) rounded to 6 digits.
SIDE_CAMERA_XYZ = (0.45, 0.95, 0.6)
SIDE_CAMERA_QUAT = (0.0, 0.845011, -0.534749, 0.0)
# The point the default camera looks at; a randomised mount turns about it
# (`sim.camera.CameraSpec.jittered`), so it stays near the image centre.
CAMERA_TARGET = (0.45, 0.0, 0.12)
WORKSPACE_X = (0.35, 0.65)          # where objects are placed on the table (z = 0) [m]
WORKSPACE_Y = (-0.24, 0.24)

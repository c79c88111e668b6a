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

import math

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
# The Franka Panda: joint names and Franka's published joint limits (tighter than the URDF's).
ARM_JOINTS = tuple(f'panda_joint{i}' for i in range(1, 8))
FINGER_JOINTS = ('panda_finger_joint1', 'panda_finger_joint2')
ACTION_NAMES = ARM_JOINTS + FINGER_JOINTS[:1]    # 8-dim action / state (both fingers mirror)
# Position [rad]; last entry = finger opening [m].
LOWER_LIMITS = (-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973, 0.0)
UPPER_LIMITS = (2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973, 0.04)
# Velocity [rad/s] and acceleration [rad/s^2] of the arm joints. The finger is unlimited here:
# the Franka Hand runs a width command at its own speed, so a step in the finger command is not
# a hazard (the scripted expert opens and closes it in one step); its position range holds.
VELOCITY_LIMITS = (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61, math.inf)
ACCELERATION_LIMITS = (15.0, 7.5, 10.0, 12.5, 15.0, 20.0, 20.0, math.inf)


def published_limits(names):
    """(velocity, acceleration) limits of joints `names`: the Panda's for ACTION_NAMES, else ()."""
    if tuple(names) == ACTION_NAMES:
        return VELOCITY_LIMITS, ACCELERATION_LIMITS
    return (), ()

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
ROS sensor messages -> the model's 3D-aware observation, in numpy (no rclpy import).

`conversions` parses Image / CameraInfo / PointCloud2 (and builds them back) and raises
`MessageError` with a stable `reason`; `geometry` is the pinhole maths (unprojection,
transforms, cloud rendering); `sync` pairs streams by header stamp; `observation_builder`
decodes each message once and assembles a `RawObservation`; `mounts` keeps each camera's
mount (the config's, or the newest geometry_msgs/TransformStamped naming its frame).
`messages` and `bag_messages` build and convert message instances of rclpy or rosbags classes.
"""

from .conversions import MessageError
from .conversions import REJECTION_REASONS
from .mounts import CameraMounts
from .observation_builder import joint_state_to_vector
from .observation_builder import ObservationBuilder
from .sync import MatchedSet
from .sync import StampSynchronizer
from .sync import synchronize_streams
from .sync import SyncRejected

__all__ = ['CameraMounts', 'MatchedSet', 'MessageError', 'ObservationBuilder',
           'REJECTION_REASONS', 'StampSynchronizer', 'SyncRejected', 'joint_state_to_vector',
           'synchronize_streams']

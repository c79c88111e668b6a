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

"""Demonstration data: rosbag2 episodes in, training samples out (ROS-free, no rclpy).

Modules in reading order: `bag_reader` opens a bag with rosbags and finds bags in folders;
`bag_episodes` decodes one bag into an `Episode` (observations, states, action chunks) with
the policy node's own synchroniser and observation builder; `dataset` decodes every bag once,
caches it as .npz, splits train / held-out and indexes global batches; `recorder` writes
episodes as rosbag2 (the demo generator's output); `lerobot_dataset` writes and reads LeRobot
v3 datasets (Parquet + MP4, pyarrow + PyAV) and `lerobot_episodes` maps them to and from
decoded episodes and bags (the trainer's second source, `spatialvla_convert`). Exported here:
the bag reading and writing API, which loads no torch (the demo generator's workers use it);
`bag_episodes`, `dataset` and `lerobot_episodes` load torch through core_types and
`lerobot_dataset` loads pyarrow and PyAV, so import them from their modules.
"""

from .bag_reader import BagError
from .bag_reader import BagFile
from .bag_reader import find_bags
from .bag_reader import is_bag_directory
from .recorder import EpisodeRecorder

__all__ = ['BagError', 'BagFile', 'EpisodeRecorder', 'find_bags', 'is_bag_directory']

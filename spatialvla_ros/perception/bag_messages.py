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

"""Convert `rosbags` messages into rclpy messages of the same type, generically by field name.

Any bag, whatever its distro or recorder, is replayed with the rclpy message classes of this
install through the one type walker, `messages.make_message`: each rclpy field takes the bag
message's field of the same name (fields the bag lacks keep their defaults, fields rclpy lacks
are ignored), so small definition differences between distros do not break playback. Numeric
arrays go through `array.array` / numpy in one copy: an image's `data` is ~1 ms at VGA, where
assigning bytes or a list costs 20-400x more. Every `std_msgs/Header` stamp can be shifted on
the way (`stamp_offset_ns`, zero stamps kept: they mean "now").
"""

from spatialvla_ros.perception.messages import ConversionError
from spatialvla_ros.perception.messages import make_message
from spatialvla_ros.perception.messages import rclpy_class


class MessageConverter:
    """Convert rosbags messages into rclpy messages, shifting header stamps by one offset.

    Args:
        stamp_offset_ns: added to every non-zero std_msgs/Header stamp (0: unchanged).
    """

    def __init__(self, stamp_offset_ns=0):
        self.stamp_offset_ns = int(stamp_offset_ns)

    def convert(self, msg, cls):
        """Build an instance of rclpy message class `cls` from the rosbags message `msg`."""
        return make_message(cls, msg, self.stamp_offset_ns)


__all__ = ['ConversionError', 'MessageConverter', 'rclpy_class']

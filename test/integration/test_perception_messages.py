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

"""The one rosidl type walker (both families, both directions) and the stamp conversion."""

from builtin_interfaces.msg import Duration
from builtin_interfaces.msg import Time
import numpy as np
import pytest
from rosbags.typesys import get_typestore
from rosbags.typesys import Stores
from spatialvla_ros.core_types import ns_to_stamp
from spatialvla_ros.core_types import Stamp
from spatialvla_ros.core_types import stamp_to_ns
from spatialvla_ros.perception.messages import ConversionError
from spatialvla_ros.perception.messages import make_message
from spatialvla_ros.perception.messages import rclpy_class
from trajectory_msgs.msg import JointTrajectory

TYPES = get_typestore(Stores.ROS2_KILTED).types


def _trajectory_values():
    return {'header': {'stamp': ns_to_stamp(1_700_000_000_123_456_789)._asdict(),
                       'frame_id': 'base'},
            'joint_names': ['a', 'b'],
            'points': [{'positions': np.array([1.0, 2.0]),
                        'time_from_start': ns_to_stamp(k * 100_000_000)._asdict()}
                       for k in (1, 2)]}


def test_stamps_convert_both_ways_for_every_family():
    for ns in (0, 1, 999_999_999, 1_700_000_000_123_456_789, -1):
        stamp = ns_to_stamp(ns)
        assert 0 <= stamp.nanosec < 1_000_000_000 and stamp_to_ns(stamp) == ns
    assert stamp_to_ns(Time(sec=3, nanosec=5)) == 3_000_000_005
    assert stamp_to_ns(Duration(**ns_to_stamp(2_500_000_000)._asdict())) == 2_500_000_000
    assert stamp_to_ns(TYPES['builtin_interfaces/msg/Time'](sec=1, nanosec=2)) == 1_000_000_002
    assert stamp_to_ns(np.int64(7)) == 7 and ns_to_stamp(-1) == Stamp(-1, 999_999_999)


def test_walker_builds_both_families_and_converts_between_them():
    bag = make_message(TYPES['trajectory_msgs/msg/JointTrajectory'], _trajectory_values())
    live = make_message(JointTrajectory, bag, stamp_offset_ns=5)         # rosbags -> rclpy
    assert stamp_to_ns(live.header.stamp) == stamp_to_ns(bag.header.stamp) + 5
    assert live.joint_names == ['a', 'b'] and live.header.frame_id == 'base'
    assert [stamp_to_ns(p.time_from_start) for p in live.points] == [100_000_000, 200_000_000]
    np.testing.assert_array_equal(live.points[1].positions, [1.0, 2.0])
    back = make_message(TYPES['trajectory_msgs/msg/JointTrajectory'], live)  # rclpy -> rosbags
    assert stamp_to_ns(back.header.stamp) == stamp_to_ns(live.header.stamp)
    assert isinstance(back.points[0].positions, np.ndarray)
    # Zero stamps mean "now": the offset leaves them alone.
    zero = make_message(JointTrajectory, {'header': {'frame_id': 'x'}})
    assert stamp_to_ns(make_message(JointTrajectory, zero, 5).header.stamp) == 0


def test_walker_errors_name_the_field_and_type():
    with pytest.raises(ConversionError, match=r'JointTrajectory\.pionts: unknown field'):
        make_message(JointTrajectory, {'pionts': []})
    with pytest.raises(ConversionError, match=r'Image\.height: cannot take str'):
        make_message(rclpy_class('sensor_msgs/msg/Image'), {'height': 'tall'})
    with pytest.raises(ConversionError, match=r'Image\.height: cannot take str'):
        make_message(TYPES['sensor_msgs/msg/Image'], {'height': 'tall'})
    with pytest.raises(ConversionError, match=r'message type nosuch_msgs/msg/Thing: no rclpy'):
        rclpy_class('nosuch_msgs/msg/Thing')
    with pytest.raises(TypeError, match='msg_cls'):
        make_message(dict, {})

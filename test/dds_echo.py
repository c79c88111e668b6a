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

"""Echo node for the interface tests: republishes what it receives, in its own process."""

import sys

import rclpy
from rclpy.qos import QoSDurabilityPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import QoSReliabilityPolicy
from spatialvla_ros_interfaces.msg import ActionChunk
from spatialvla_ros_interfaces.msg import PolicyStatus
from std_msgs.msg import String


def main():
    rclpy.init()
    node = rclpy.create_node('dds_echo')
    qos = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE,
                     durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
    pubs = {t: node.create_publisher(t, f'echo_out/{t.__name__}', qos)
            for t in (ActionChunk, PolicyStatus)}
    for t in (ActionChunk, PolicyStatus):
        node.create_subscription(t, f'echo_in/{t.__name__}',
                                 lambda msg, t=t: pubs[t].publish(msg), qos)
    ready = node.create_publisher(String, 'echo_ready', qos)
    ready.publish(String(data='ready'))
    print('echo ready', flush=True)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())

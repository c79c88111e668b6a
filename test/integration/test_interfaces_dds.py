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

"""ActionChunk and PolicyStatus cross a process boundary over Fast DDS unchanged."""

import os
import time

import numpy as np
import rclpy
from rclpy.qos import QoSDurabilityPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import QoSReliabilityPolicy
from repo_paths import TEST_DIR
from spatialvla_ros_interfaces.msg import ActionChunk
from spatialvla_ros_interfaces.msg import PolicyStatus
from std_msgs.msg import String

HERE = TEST_DIR


def _f32(x):
    # float32 fields: compare values that float32 can hold exactly.
    return float(np.float32(x))


def _chunk():
    rng = np.random.default_rng(0)
    horizon, dim = 5, 8
    msg = ActionChunk()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1700000000, 123456789
    msg.header.frame_id = 'panda_link0'
    msg.plan = 'deep_fusion'
    msg.names = [f'panda_joint{i}' for i in range(1, 8)] + ['panda_finger_joint1']
    msg.horizon, msg.action_dim, msg.dt = horizon, dim, _f32(0.1)
    msg.actions = rng.standard_normal(horizon * dim).astype(np.float32).tolist()
    msg.observation_stamp.sec, msg.observation_stamp.nanosec = 1699999999, 987654321
    msg.inference_latency = _f32(0.0421)
    return msg


def _status():
    msg = PolicyStatus()
    msg.header.stamp.sec = 42
    msg.state = PolicyStatus.STATE_WAITING_FOR_INPUT
    msg.last_latency, msg.rate = _f32(0.05), 9.75
    msg.dropped_frames, msg.rejected_messages = 2**40 + 3, 17
    msg.last_rejection_reason = '/camera/depth/image_raw: depth is NaN everywhere'
    return msg


def test_action_chunk_and_status_round_trip(spawn, ros_env):
    echo = spawn([os.path.join(HERE, 'dds_echo.py')])
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(ros_env['ROS_DOMAIN_ID']))
    node = rclpy.create_node('dds_test', context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    qos = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE,
                     durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
    received, ready = {}, []
    node.create_subscription(String, 'echo_ready', lambda m: ready.append(m), qos)
    for t in (ActionChunk, PolicyStatus):
        node.create_subscription(t, f'echo_out/{t.__name__}',
                                 lambda m, t=t: received.setdefault(t.__name__, m), qos)
    pubs = {t: node.create_publisher(t, f'echo_in/{t.__name__}', qos)
            for t in (ActionChunk, PolicyStatus)}
    sent = {'ActionChunk': _chunk(), 'PolicyStatus': _status()}
    try:
        deadline = time.monotonic() + 30
        while not ready and time.monotonic() < deadline:
            assert echo.poll() is None, echo.stdout.read()
            executor.spin_once(timeout_sec=0.1)
        assert ready, 'echo process never came up'
        # Wait until the echo's subscriptions are matched before publishing.
        while time.monotonic() < deadline and any(
                p.get_subscription_count() == 0 for p in pubs.values()):
            executor.spin_once(timeout_sec=0.1)
        pubs[ActionChunk].publish(sent['ActionChunk'])
        pubs[PolicyStatus].publish(sent['PolicyStatus'])
        while len(received) < 2 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
    assert set(received) == {'ActionChunk', 'PolicyStatus'}, f'received only {set(received)}'
    for name, msg in sent.items():
        assert received[name] == msg, f'{name} changed on the way: {received[name]} != {msg}'
    # Spot-check exactness where equality could hide float conversions.
    np.testing.assert_array_equal(np.asarray(received['ActionChunk'].actions, np.float32),
                                  np.asarray(sent['ActionChunk'].actions, np.float32))
    assert received['PolicyStatus'].dropped_frames == 2**40 + 3

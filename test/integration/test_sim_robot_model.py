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

"""sim_node's robot model over DDS: latched robot_description, /tf and /tf_static."""

import time

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import JointState
from spatialvla_ros.core_types import stamp_to_ns
from spatialvla_ros.perception.kinematics import RobotKinematics
from spatialvla_ros.sim import messages as sim_msgs
from spatialvla_ros.sim.panda_env import TCP_FRAME
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage

NODE = 'spatialvla_ros.nodes.sim_node'
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


def test_robot_description_and_tf_over_dds(spawn, ros_env):
    proc = spawn(['-m', NODE, '--ros-args', '-p', 'image_width:=32', '-p', 'image_height:=32',
                  '-p', 'max_lag_s:=100.0'])
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(ros_env['ROS_DOMAIN_ID']))
    node = rclpy.create_node('robot_model_probe', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    got = {'urdf': [], 'tf': [], 'static': [], 'js': []}
    try:
        # Subscribed after the node started: latched topics must still deliver.
        time.sleep(2.0)
        node.create_subscription(String, 'robot_description', got['urdf'].append, LATCHED)
        node.create_subscription(TFMessage, '/tf_static', got['static'].append, LATCHED)
        node.create_subscription(TFMessage, '/tf', got['tf'].append, 100)
        node.create_subscription(JointState, '/joint_states', got['js'].append, 100)
        end = time.monotonic() + 60
        while time.monotonic() < end and not (got['urdf'] and got['static']
                                              and len(got['tf']) >= 5):
            executor.spin_once(timeout_sec=0.05)
            assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert got['urdf'] and got['static'] and len(got['tf']) >= 5, {
            k: len(v) for k, v in got.items()}
        for topic in ('/tf', '/tf_static'):
            info = node.get_publishers_info_by_topic(topic)
            assert str(info[0].topic_type_hash) == sim_msgs.typestore().hash_rihs01(
                sim_msgs.TF), 'not the upstream tf2_msgs/msg/TFMessage'
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)

    kinematics = RobotKinematics(got['urdf'][0].data)           # parses with Pinocchio
    assert kinematics.root_link == 'panda_link0'
    static = {(t.header.frame_id, t.child_frame_id) for t in got['static'][-1].transforms}
    assert static == {('panda_link7', 'panda_link8'), ('panda_link8', 'panda_hand'),
                      ('panda_hand', 'panda_grasptarget'),
                      ('panda_link0', 'camera_color_optical_frame')}
    # /tf: every moving joint of the URDF at every joint state, with the joint state's stamp.
    moving = {(parent, child) for parent, child, _, _, fixed in
              kinematics.joint_transforms([], []) if not fixed}
    assert len(moving) == 9
    js_stamps = {stamp_to_ns(m.header.stamp): m for m in got['js']}
    for msg in got['tf']:
        frames = {(t.header.frame_id, t.child_frame_id) for t in msg.transforms}
        assert frames == moving
        assert len({stamp_to_ns(t.header.stamp) for t in msg.transforms}) == 1
    # base -> hand through /tf and /tf_static equals the FK of the joint state it came with.
    msg = next(m for m in reversed(got['tf'])
               if stamp_to_ns(m.transforms[0].header.stamp) in js_stamps)
    state = js_stamps[stamp_to_ns(msg.transforms[0].header.stamp)]
    tree = {t.child_frame_id: t for t in list(msg.transforms) + list(got['static'][-1].transforms)}
    pose, link = np.eye(4), TCP_FRAME
    while link in tree:
        t = tree[link].transform
        pose = _matrix(t.translation, t.rotation) @ pose
        link = tree[link].header.frame_id
    assert link == 'panda_link0'
    xyz, _ = kinematics.link_poses(TCP_FRAME, list(state.name), [list(state.position)])
    np.testing.assert_allclose(pose[:3, 3], xyz[0], atol=1e-6)


def _matrix(v, q):
    x, y, z, w = q.x, q.y, q.z, q.w
    out = np.eye(4)
    out[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                   [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                   [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    out[:3, 3] = v.x, v.y, v.z
    return out

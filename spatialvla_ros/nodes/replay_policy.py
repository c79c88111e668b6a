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


"""A stand-in policy that answers each observation with a bag's recorded actions.

It speaks the policy node's topics (JointTrajectory stamped with the observation, points at
(k + 1) * dt; ActionChunk; PolicyStatus) but its "model" is the recording itself: for an
observation stamped t0 the chunk is the recorded action nearest t0 + (k + shift) * dt, built by
the training data's own `data.episode.action_chunk`. With shift 0 a replay evaluation of the
same bag must score exactly zero error, with shift s it must score the recorded actions'
s-step differences. Steps past the end of the recording are left out of the trajectory.

    python -m spatialvla_ros.nodes.replay_policy --bag BAG [--shift-steps 1]
"""

import argparse
import array
import sys
import time

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import Image
from spatialvla_ros.core_types import NS_PER_S
from spatialvla_ros.core_types import ns_to_stamp
from spatialvla_ros.core_types import stamp_to_ns
from spatialvla_ros.data.bag_episodes import action_chunk
from spatialvla_ros.data.bag_reader import BagFile
from spatialvla_ros.nodes.spin import spin_node
from spatialvla_ros_interfaces.msg import ActionChunk
from spatialvla_ros_interfaces.msg import PolicyStatus
from trajectory_msgs.msg import JointTrajectory
from trajectory_msgs.msg import JointTrajectoryPoint


def recorded_stream(path, topic):
    """Read the first points of `topic`'s trajectories, as the training data reads them.

    Gives (stamps (N,) int64 header stamps, actions (N, A) float64, joint names).
    """
    with BagFile(path) as bag:
        bag.require([topic])
        entries = bag.stamps({topic}, deserialize={topic})[topic]
    stamps, actions, names = [], [], None
    for stamp, _, msg in entries:
        if len(msg.points) == 0:
            continue
        names = names or tuple(msg.joint_names)
        stamps.append(stamp)
        actions.append(np.asarray(msg.points[0].positions, dtype=np.float64))
    order = np.argsort(np.asarray(stamps, dtype=np.int64), kind='stable')
    return (np.asarray(stamps, dtype=np.int64)[order], np.stack(actions)[order], names)


class ReplayPolicyNode(Node):
    """Answers every image on `observation_topic` with the recorded chunk of its stamp."""

    def __init__(self, ns):
        super().__init__('replay_policy')
        self.stamps, self.actions, self.names = recorded_stream(ns.bag, ns.action_topic)
        self.horizon, self.shift = ns.chunk_size, ns.shift_steps
        self.dt_ns = int(round(ns.dt * NS_PER_S))
        self.answered = 0
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(Image, ns.observation_topic, self._on_image, qos)
        self._traj = self.create_publisher(JointTrajectory, ns.trajectory_topic, 10)
        self._chunk = self.create_publisher(ActionChunk, ns.chunk_topic, 10)
        self._status = self.create_publisher(PolicyStatus, ns.status_topic, 10)
        self.create_timer(0.2, self._publish_status)
        self.get_logger().info(f'replaying {len(self.stamps)} recorded actions of {ns.bag} '
                               f'(shift {self.shift} steps)')

    def _on_image(self, msg):
        start = time.monotonic()
        t0 = stamp_to_ns(msg.header.stamp)
        # The training data's chunk rule picks the recorded index of every step (the values
        # themselves are taken in float64 below: action_chunk stores float32).
        index = np.arange(len(self.stamps), dtype=np.float32)[:, None]
        picked, mask = action_chunk(self.stamps, index, t0 + self.shift * self.dt_ns,
                                    self.horizon, self.dt_ns)
        valid = int(np.argmin(mask)) if not mask.all() else len(mask)   # leading valid steps
        if valid == 0:
            return
        chunk = self.actions[picked[:valid, 0].astype(np.int64)]        # (valid, A) float64
        traj = JointTrajectory(joint_names=list(self.names))
        traj.header.stamp = msg.header.stamp
        for k in range(valid):
            point = JointTrajectoryPoint(positions=array.array('d', chunk[k].tobytes()))
            point.time_from_start.sec, point.time_from_start.nanosec = ns_to_stamp(
                (k + 1) * self.dt_ns)
            traj.points.append(point)
        out = ActionChunk(plan='replay', names=list(self.names), horizon=valid,
                          action_dim=len(self.names), dt=self.dt_ns / NS_PER_S,
                          observation_stamp=msg.header.stamp,
                          inference_latency=float(time.monotonic() - start))
        out.header.stamp = self.get_clock().now().to_msg()
        out.actions = array.array('f', chunk.astype(np.float32).tobytes())
        self._traj.publish(traj)
        self._chunk.publish(out)
        self.answered += 1

    def _publish_status(self):
        status = PolicyStatus(state=PolicyStatus.STATE_ACTIVE, dropped_frames=0)
        status.header.stamp = self.get_clock().now().to_msg()
        self._status.publish(status)


def build_parser():
    parser = argparse.ArgumentParser(
        prog='replay_policy',
        description='Stand-in policy: answers each observation with the recorded actions of '
                    'a bag (for testing the replay evaluator).')
    parser.add_argument('--bag', required=True, help='rosbag2 directory with the actions')
    parser.add_argument('--action-topic', default='/spatialvla/expert_trajectory')
    parser.add_argument('--observation-topic', default='/camera/color/image_raw')
    parser.add_argument('--trajectory-topic', default='/joint_trajectory')
    parser.add_argument('--chunk-topic', default='/spatialvla/action_chunk')
    parser.add_argument('--status-topic', default='/spatialvla/status')
    parser.add_argument('--chunk-size', type=int, default=10, help='horizon H')
    parser.add_argument('--dt', type=float, default=0.1, help='time between actions [s]')
    parser.add_argument('--shift-steps', type=int, default=0,
                        help='answer with the actions this many steps later (0: exact)')
    return parser


def main(args=None):
    argv = sys.argv[1:] if args is None else list(args)
    ros_start = argv.index('--ros-args') if '--ros-args' in argv else len(argv)
    ns = build_parser().parse_args(argv[:ros_start])
    return spin_node(lambda: ReplayPolicyNode(ns), [sys.argv[0]] + argv[ros_start:])


if __name__ == '__main__':
    sys.exit(main())

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

"""sim_node over DDS (node in its own process), plus the trajectory semantics it relies on."""

import json
import subprocess
import sys
import time

from geometry_msgs.msg import TransformStamped
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import Image
from sensor_msgs.msg import JointState
from sensor_msgs.msg import PointCloud2
from spatialvla_ros.core_types import NS_PER_S as NS
from spatialvla_ros.core_types import ns_to_stamp
from spatialvla_ros.core_types import stamp_to_ns
from spatialvla_ros.sim import messages as sim_msgs
from spatialvla_ros.sim.panda_env import PandaEnv
from spatialvla_ros.sim.rollout import run_episode
from spatialvla_ros.sim.tasks import sample_episode
from spatialvla_ros.sim.trajectory import TrajectoryExecutor
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory
from trajectory_msgs.msg import JointTrajectoryPoint

NAMES = [f'panda_joint{i}' for i in range(1, 8)] + ['panda_finger_joint1']
NODE = 'spatialvla_ros.nodes.sim_node'


# --- trajectory semantics (no DDS) ------------------------------------------------------------
def test_executor_interpolates_replaces_and_holds():
    ex = TrajectoryExecutor(['a', 'b'], [0.0, 0.0], now_ns=0)
    ex.set_trajectory(['a', 'b'], 1 * NS, [1 * NS, 2 * NS], [[1.0, 2.0], [3.0, 2.0]], now_ns=0)
    np.testing.assert_allclose(ex.evaluate(0), [0, 0])               # before the start: hold
    np.testing.assert_allclose(ex.evaluate(int(1.5 * NS)), [0.5, 1.0])
    np.testing.assert_allclose(ex.evaluate(int(2.5 * NS)), [2.0, 2.0])
    np.testing.assert_allclose(ex.evaluate(9 * NS), [3.0, 2.0])      # after the end: hold
    np.testing.assert_allclose(ex.velocity(int(1.5 * NS)), [1.0, 2.0])
    # A new trajectory starting at 2.5 s keeps the old one until then, continues from there;
    # joints it does not name keep their command.
    ex.set_trajectory(['b'], int(2.5 * NS), [NS], [[0.0]], now_ns=int(1.2 * NS))
    np.testing.assert_allclose(ex.evaluate(2 * NS), [1.0, 2.0])
    np.testing.assert_allclose(ex.evaluate(3 * NS), [2.0, 1.0])
    np.testing.assert_allclose(ex.evaluate(4 * NS), [2.0, 0.0])
    # Points in the past are dropped; all in the past -> hold the last one.
    dropped = ex.set_trajectory(['a'], 0, [NS, 2 * NS], [[5.0], [7.0]], now_ns=5 * NS)
    assert dropped == 2
    np.testing.assert_allclose(ex.evaluate(6 * NS), [7.0, 0.0])
    with pytest.raises(ValueError, match='joint_names'):
        ex.set_trajectory(['c'], 0, [NS], [[1.0]], now_ns=0)
    with pytest.raises(ValueError, match='time_from_start'):
        ex.set_trajectory(['a'], 0, [2 * NS, NS], [[1.0], [2.0]], now_ns=0)


def test_help_exits_before_ros():
    run = subprocess.run([sys.executable, '-m', NODE, '--help'], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0
    assert run.stdout.startswith('usage: sim_node') and 'camera_quat' in run.stdout


# --- DDS ------------------------------------------------------------------------------------
class Probe:
    """A test-side node in its own rclpy context (the test's ROS domain)."""

    def __init__(self, domain_id):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node('sim_node_probe', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.received = {}
        topics = sim_msgs.SimTopics()
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        subs = [(topics.color, Image, 10), (topics.depth, Image, 10),
                (topics.camera_info, CameraInfo, 10), (topics.cloud, PointCloud2, 10),
                (topics.joint_states, JointState, 50), (topics.expert, JointTrajectory, 50),
                (topics.outcome, String, 10), (topics.instruction, String, latched),
                (topics.camera_pose, TransformStamped, latched)]
        for topic, cls, qos in subs:
            self.received[topic] = []
            self.node.create_subscription(cls, topic, self._keep(topic), qos)
        self.command = self.node.create_publisher(JointTrajectory, topics.command, 10)
        self.topics = topics
        self.proc = None                    # the node's process, to fail fast if it dies

    def _keep(self, topic):
        return lambda msg: self.received[topic].append(msg)

    def spin_until(self, predicate, timeout, what):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)
            if predicate():
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f'sim_node exited ({self.proc.returncode}) while waiting '
                                     f'for {what}:\n{self.proc.stdout.read()[-3000:]}')
        raise AssertionError(f'timed out after {timeout} s waiting for {what}')

    def spin_for(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)

    def call(self, srv_type, name, request, timeout=20.0):
        client = self.node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout), name
        future = client.call_async(request)
        self.spin_until(future.done, timeout, name)
        return future.result()

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def _stamp(msg):
    return stamp_to_ns(msg.header.stamp)


def _positions(js):
    index = {n: i for i, n in enumerate(js.name)}
    return np.array([js.position[index[n]] for n in NAMES])


def _trajectory(stamp_ns, offsets_s, positions, names=NAMES):
    msg = JointTrajectory()
    msg.header.stamp.sec, msg.header.stamp.nanosec = ns_to_stamp(stamp_ns)
    msg.joint_names = list(names)
    for off, q in zip(offsets_s, positions):
        point = JointTrajectoryPoint()
        point.positions = [float(v) for v in q]
        point.time_from_start.sec, point.time_from_start.nanosec = ns_to_stamp(int(off * NS))
        msg.points.append(point)
    return msg


@pytest.fixture
def probe(ros_env):
    probe = Probe(int(ros_env['ROS_DOMAIN_ID']))
    yield probe
    probe.close()


def test_camera_topics_and_trajectory_execution_over_dds(spawn, probe):
    proc = spawn(['-m', NODE, '--ros-args', '-p', 'task:=reach', '-p', 'seed:=3',
                  '-p', 'image_width:=64', '-p', 'image_height:=48', '-p', 'max_steps:=1000',
                  '-p', 'max_lag_s:=100.0'])
    probe.proc = proc
    topics, got = probe.topics, probe.received
    probe.spin_until(lambda: len(got[topics.joint_states]) >= 5 and got[topics.instruction]
                     and got[topics.camera_pose] and len(got[topics.cloud]) >= 3, 60,
                     'first messages of sim_node')
    assert proc.poll() is None
    assert got[topics.instruction][-1].data == sample_episode('reach', 3)[1].instruction
    pose = got[topics.camera_pose][-1]
    assert (pose.header.frame_id, pose.child_frame_id) == ('panda_link0',
                                                           'camera_color_optical_frame')
    assert abs(pose.transform.translation.z - 0.85) < 1e-9

    # One stamp per tick on colour, depth, info, cloud and joint state; 0.1 s apart.
    color, depth, info = got[topics.color][-1], got[topics.depth][-1], got[topics.camera_info][-1]
    assert (color.width, color.height, color.encoding) == (64, 48, 'rgb8')
    assert (depth.encoding, depth.step) == ('32FC1', 64 * 4)
    assert tuple(info.k[[2, 5]]) == (32.0, 23.0)          # TinyRenderer's principal point
    assert {color.header.frame_id, depth.header.frame_id, info.header.frame_id,
            got[topics.cloud][-1].header.frame_id} == {'camera_color_optical_frame'}
    js_stamps = [_stamp(m) for m in got[topics.joint_states]]
    assert np.all(np.diff(js_stamps) == NS // 10)
    for topic in (topics.color, topics.depth, topics.camera_info, topics.cloud):
        assert {_stamp(m) for m in got[topic]} <= set(js_stamps), topic
    # Type hashes seen on the wire are the ones written into the bags.
    store = sim_msgs.typestore()
    for topic, msgtype, _ in sim_msgs.topic_table(topics):
        info_ = probe.node.get_publishers_info_by_topic(topic)
        assert info_ and str(info_[0].topic_type_hash) == store.hash_rihs01(msgtype), topic

    # A trajectory starting 0.5 s after the latest state, through qa (1 s) and qb (2 s).
    last = got[topics.joint_states][-1]
    q0, start = _positions(last), _stamp(last) + NS // 2
    qa = q0 + np.array([0.3, 0.2, -0.2, -0.3, 0.3, 0.2, 0.3, -0.03])
    qb = q0 + np.array([-0.2, 0.0, 0.1, 0.2, 0.0, -0.2, 0.0, -0.01])
    probe.command.publish(_trajectory(start, [1.0, 2.0], [qa, qb]))
    probe.spin_until(lambda: _stamp(got[topics.joint_states][-1]) >= start + int(2.6 * NS), 60,
                     'the trajectory to finish')
    by_stamp = {_stamp(m): _positions(m) for m in got[topics.joint_states]}
    expected = {-0.1: q0, 0.0: q0, 0.5: (q0 + qa) / 2, 1.0: qa, 1.5: (qa + qb) / 2,
                2.0: qb, 2.5: qb}
    for t, q in expected.items():
        measured = by_stamp[start + int(round(t * NS))]
        assert np.abs(measured - q).max() < 0.01, (t, measured - q)

    # Stamp 0 = "now"; a bad trajectory is rejected without killing the node.
    probe.command.publish(_trajectory(0, [1.0], [qb], names=NAMES[:7] + ['elbow']))
    probe.command.publish(_trajectory(0, [0.6], [qa]))
    t_sent = _stamp(got[topics.joint_states][-1])
    probe.spin_until(lambda: _stamp(got[topics.joint_states][-1]) >= t_sent + int(1.5 * NS),
                     60, 'the zero-stamp trajectory')
    assert np.abs(_positions(got[topics.joint_states][-1]) - qa).max() < 0.01
    assert proc.poll() is None

    # Services: success of the running episode, and a reset with the seed parameter.
    res = probe.call(Trigger, '/sim_node/success', Trigger.Request())
    assert res.success is False and json.loads(res.message)['seed'] == 3
    n_before = len(got[topics.instruction])
    res = probe.call(Trigger, '/sim_node/reset', Trigger.Request())
    assert res.success
    assert json.loads(res.message)['instruction'] == got[topics.instruction][0].data
    probe.spin_until(lambda: len(got[topics.instruction]) > n_before, 20, 'instruction re-sent')


def test_expert_mode_matches_offline_episode(spawn, probe):
    proc = spawn(['-m', NODE, '--ros-args', '-p', 'task:=reach', '-p', 'seed:=1',
                  '-p', 'expert:=true',
                  '-p', 'image_width:=32', '-p', 'image_height:=32', '-p', 'max_lag_s:=100.0',
                  '-p', "cloud_topic:=''", '-p', 'autostart:=false'])
    probe.proc = proc
    topics, got = probe.topics, probe.received
    # Start the episode only once both sides are connected, so no command is missed.
    probe.spin_until(lambda: all(probe.node.count_publishers(t) for t in
                                 (topics.expert, topics.outcome, topics.joint_states)), 60,
                     'sim_node publishers')
    probe.spin_for(0.5)                      # the node side matches the probe too
    assert probe.call(Trigger, '/sim_node/reset', Trigger.Request()).success
    probe.spin_until(lambda: got[topics.outcome], 90, 'the episode outcome')
    outcome = json.loads(got[topics.outcome][0].data)
    live = [(_stamp(m), np.array(m.points[0].positions)) for m in got[topics.expert]]
    # The same episode offline, as generate_demos runs it.
    offline = []
    env = PandaEnv(None)
    try:
        task, success, steps = run_episode(
            env, 'reach', 1, 10**18, sink=lambda stamp, msgs: offline.extend(
                (stamp, np.array(m.msg.points[0].positions)) for m in msgs
                if m.topic == topics.expert))
    finally:
        env.close()
    assert outcome == {'task': 'reach', 'seed': 1, 'success': True, 'steps': steps,
                       'instruction': task.instruction}
    assert success and len(live) == len(offline) == steps
    assert [s - live[0][0] for s, _ in live] == [s - offline[0][0] for s, _ in offline]
    np.testing.assert_allclose(np.array([q for _, q in live]),
                               np.array([q for _, q in offline]), atol=1e-9)
    js_stamps = {_stamp(m) for m in got[topics.joint_states]}
    assert {s for s, _ in live} <= js_stamps


def test_lockstep_waits_for_the_answer_of_each_observation(spawn, probe):
    """Time moves only on the trajectory of the current observation; silence is an error."""
    proc = spawn(['-m', NODE, '--ros-args', '-p', 'task:=reach', '-p', 'seed:=2',
                  '-p', 'lockstep:=true', '-p', 'execute_steps:=3', '-p', 'max_steps:=20',
                  '-p', 'lockstep_timeout_s:=2.0', '-p', 'lockstep_peer:=/sim_node_probe',
                  '-p', 'image_width:=32', '-p', 'image_height:=32', '-p', "cloud_topic:=''",
                  '-p', 'autostart:=false'])
    probe.proc = proc
    topics, got = probe.topics, probe.received
    got['/clock'] = []
    probe.node.create_subscription(Clock, '/clock', got['/clock'].append,
                                   QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT))
    probe.spin_until(lambda: all(probe.node.count_publishers(t) for t in
                                 (topics.color, topics.outcome, topics.joint_states)), 60,
                     'sim_node publishers')
    probe.spin_for(0.5)
    res = probe.call(Trigger, '/sim_node/reset', Trigger.Request())
    t0 = json.loads(res.message)['stamp_ns']
    probe.spin_until(lambda: got[topics.joint_states], 20, 'the joint state of the reset')
    probe.spin_for(0.5)
    assert not got[topics.color]                      # no frame asks for an answer yet
    assert probe.call(Trigger, '/sim_node/start', Trigger.Request()).success
    probe.spin_until(lambda: got[topics.color], 20, 'the first observation')
    assert _stamp(got[topics.color][0]) == t0
    # Unanswered, or answered for another observation: the simulated time stands still.
    q0 = _positions(got[topics.joint_states][-1])
    probe.command.publish(_trajectory(t0 - NS, [0.1], [q0]))
    probe.spin_for(0.8)
    assert {_stamp(m) for m in got[topics.joint_states]} == {t0} and not got[topics.outcome]
    # The answer: three ticks of it, then the next observation, 0.3 s later.
    probe.command.publish(_trajectory(t0, [0.1 * k for k in range(1, 11)], [q0] * 10))
    probe.spin_until(lambda: len(got[topics.color]) >= 2, 20, 'the second observation')
    t1 = t0 + 3 * NS // 10
    assert _stamp(got[topics.color][1]) == t1
    assert sorted({_stamp(m) for m in got[topics.joint_states]}) == \
        [t0 + k * NS // 10 for k in range(4)]
    assert max(stamp_to_ns(c.clock) for c in got['/clock']) == t1
    # No answer within lockstep_timeout_s: the episode ends with an error, not a skip.
    probe.spin_until(lambda: got[topics.outcome], 30, 'the outcome after the timeout')
    outcome = json.loads(got[topics.outcome][0].data)
    assert (outcome['success'], outcome['steps']) == (False, 3)
    assert 'no trajectory' in outcome['error'] and 'within 2 s' in outcome['error']
    assert len(got[topics.color]) == 2 and proc.poll() is None

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

"""The policy node's chunk markers over DDS: off by default, valid when on.

Simulator and policy node run as processes (tiny random-weight checkpoint, real time); the
policy node takes the robot model from the simulator's latched robot_description topic. Each
marker array must draw exactly the forward kinematics of the chunk published with it.
"""

import time

from checkpoint_utils import cached_checkpoint
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from spatialvla_ros.core_types import stamp_to_ns
from spatialvla_ros.evaluation.closed_loop import ClosedLoopOptions
from spatialvla_ros.evaluation.closed_loop import sim_parameters
from spatialvla_ros.nodes.policy_parameters import NODE_PARAMETERS
from spatialvla_ros.perception.kinematics import RobotKinematics
from spatialvla_ros.sim.panda_env import panda_urdf
from spatialvla_ros.sim.panda_env import TCP_FRAME
from spatialvla_ros.tools.processes import start_policy
from spatialvla_ros.tools.processes import start_sim
from spatialvla_ros_interfaces.msg import ActionChunk
from visualization_msgs.msg import Marker
from visualization_msgs.msg import MarkerArray

MARKERS = '/spatialvla/chunk_markers'
CHUNKS = '/spatialvla/action_chunk'


class Recorder:
    """Test-side node: records chunks and marker arrays in the test's domain."""

    def __init__(self, domain_id):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node('marker_recorder', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.chunks, self.markers = [], []
        self.node.create_subscription(ActionChunk, CHUNKS, self.chunks.append, 50)
        self.node.create_subscription(MarkerArray, MARKERS, self.markers.append, 50)

    def spin_until(self, predicate, timeout, what, processes):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)
            for proc in processes:
                proc.check()
            if predicate():
                return
        raise AssertionError(f'timed out after {timeout} s waiting for {what}; '
                             + processes[-1].log_tail())

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def _executed(array):
    return [m for m in array.markers if m.ns == 'executed']


def test_markers_off_by_default_and_the_chunk_path_when_on(tmp_path_factory, tmp_path,
                                                           ros_env):
    assert {p.name: p.default for p in NODE_PARAMETERS}['publish_markers'] is False
    checkpoint = cached_checkpoint(tmp_path_factory, 'late_gemma')
    options = ClosedLoopOptions(tasks=('reach',), episodes=1, max_steps=100000, image_size=32)
    recorder = Recorder(int(ros_env['ROS_DOMAIN_ID']))
    try:
        with start_sim(str(tmp_path / 'sim.log'), sim_parameters(options), ros_env) as sim:
            with start_policy(checkpoint, str(tmp_path / 'off.log'), {}, ros_env) as policy:
                recorder.spin_until(lambda: len(recorder.chunks) >= 3, 180,
                                    'chunks of the default policy node', [sim, policy])
                assert recorder.node.get_publishers_info_by_topic(MARKERS) == []
            assert recorder.markers == []
            recorder.chunks.clear()
            with start_policy(checkpoint, str(tmp_path / 'on.log'),
                              {'publish_markers': True}, ros_env) as policy:
                recorder.spin_until(
                    lambda: any(_executed(a) for a in recorder.markers), 180,
                    'marker arrays with an executed path', [sim, policy])
    finally:
        recorder.close()

    kinematics = RobotKinematics(panda_urdf())
    chunks = {stamp_to_ns(c.observation_stamp): c for c in recorder.chunks}
    checked = 0
    for array in recorder.markers:
        line, spheres = array.markers[:2]
        assert (line.ns, line.type, spheres.type) == ('chunk', Marker.LINE_STRIP,
                                                      Marker.SPHERE_LIST)
        stamp = stamp_to_ns(line.header.stamp)
        chunk = chunks[stamp]                  # stamped with the chunk's observation
        assert len(line.points) == len(spheres.points) == chunk.horizon == 10
        actions = np.asarray(chunk.actions, np.float64).reshape(chunk.horizon, chunk.action_dim)
        expected = kinematics.link_poses(TCP_FRAME, list(chunk.names), actions)[0]
        for marker in array.markers:
            assert marker.header.frame_id == 'panda_link0'           # the root of /tf's tree
            assert stamp_to_ns(marker.header.stamp) == stamp
            points = np.array([[p.x, p.y, p.z] for p in marker.points])
            assert np.all(np.isfinite(points)) and len(points) >= 2
            colours = np.array([[c.r, c.g, c.b, c.a] for c in marker.colors]
                               or [[marker.color.r, marker.color.g, marker.color.b,
                                    marker.color.a]])
            assert np.all((colours >= 0) & (colours <= 1)) and np.all(colours[:, 3] > 0)
            assert marker.pose.orientation.w == 1.0 and marker.scale.x > 0
        for marker in (line, spheres):
            np.testing.assert_allclose([[p.x, p.y, p.z] for p in marker.points], expected,
                                       atol=1e-6)
            assert len(marker.colors) == chunk.horizon
        # Coloured by time: the colour changes monotonically from the first step to the last.
        blue = [c.b for c in line.colors]
        assert blue[0] != blue[-1] and line.colors[0] != line.colors[-1]
        checked += 1
    assert checked >= 1
    executed = _executed(recorder.markers[-1])[0]
    assert executed.type == Marker.LINE_STRIP and len(executed.colors) == 0

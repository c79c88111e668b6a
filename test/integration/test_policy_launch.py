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

"""policy_launch drives only the node it started: two real launchers in one ROS domain."""

import subprocess
import time

from lifecycle_msgs.srv import GetState
import pytest
import rclpy
from spatialvla_ros.nodes.launch_arguments import split_remappings
from spatialvla_ros.tools.policy_launch import LaunchGraph
from spatialvla_ros.tools.policy_launch import NameTaken

LAUNCH = 'spatialvla_ros.tools.policy_launch'


def _state(graph, fqn):
    client = graph.node.create_client(GetState, f'{fqn}/get_state')
    assert client.wait_for_service(timeout_sec=30), f'{fqn}/get_state never appeared'
    future = client.call_async(GetState.Request())
    graph.executor.spin_until_future_complete(future, timeout_sec=30)
    return future.result().current_state.label


@pytest.fixture
def probe(ros_env, monkeypatch):
    """Look at the test's ROS domain through a launcher's own graph view."""
    monkeypatch.setenv('ROS_DOMAIN_ID', ros_env['ROS_DOMAIN_ID'])
    graph = LaunchGraph()
    yield graph
    graph.close()


def test_second_launcher_refuses_the_taken_name_and_leaves_the_first_node_alone(spawn, probe):
    first = spawn(['-m', LAUNCH, '--log-level', 'warn'])
    deadline = time.monotonic() + 90
    while not probe.enclaves_of('/policy_node'):
        assert first.poll() is None, first.stdout.read()
        assert time.monotonic() < deadline, "the first launcher's node never appeared"
        time.sleep(0.1)
    # The node carries its launcher's mark: the launcher can tell it from any other.
    assert probe.enclaves_of('/policy_node') == [f'/policy_launch_{first.pid}']
    # A second launcher of the same name, asked to configure and activate, must not start
    # (before the fix its configure reached the first launcher's node too).
    second = spawn(['-m', LAUNCH, '--autostart', '--checkpoint-dir', '/nonexistent',
                    '--log-level', 'warn'])
    try:
        out, _ = second.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail('the second launcher started although /policy_node was taken')
    assert second.returncode == 2, out
    # Refused before starting its node ('a node named ... is already running'), or, when
    # discovery was slow, as soon as its node appeared and before any transition ('another
    # node named ... is running').
    assert 'node named /policy_node is' in out and '--node-name' in out, out
    assert probe.enclaves_of('/policy_node') == [f'/policy_launch_{first.pid}']
    assert _state(probe, '/policy_node') == 'unconfigured'
    assert first.poll() is None


def test_launch_graph_tells_its_node_from_another_of_the_same_name(ros_env, probe):
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(ros_env['ROS_DOMAIN_ID']))
    other = rclpy.create_node('policy_node', namespace='arm', context=context)
    try:
        with pytest.raises(NameTaken, match=r'a node named /arm/policy_node is already'):
            probe.check_free('/arm/policy_node', wait_s=30)
        # Started in a race with another node of its name: the launcher sees it is not its own.
        with pytest.raises(NameTaken, match=r'another node named /arm/policy_node'):
            probe.check_only_ours('/arm/policy_node', '/policy_launch_1')
        probe.check_free('/arm/policy_node_2', wait_s=0.5)
    finally:
        other.destroy_node()
        rclpy.shutdown(context=context)


def test_remappings_are_parsed_once_for_both_launchers():
    assert split_remappings('/a:=/b; /c:=/d') == [('/a', '/b'), ('/c', '/d')]
    assert split_remappings(['/a:=/b', '/c:=/d;']) == [('/a', '/b'), ('/c', '/d')]
    with pytest.raises(ValueError, match=r"remapping '/a=/b': expected FROM:=TO"):
        split_remappings('/a=/b')

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

"""
Start the SpatialVLA policy node: `ros2 launch spatialvla_ros policy.launch.py`.

Example: ros2 launch spatialvla_ros policy.launch.py checkpoint_dir:=/data/ckpt autostart:=true
    remappings:='/camera/color/image_raw:=/rs/color/image_raw;/joint_states:=/arm/joint_states'

The node is a lifecycle node; with autostart:=true this file drives it configure -> activate.
Without ros2 launch, `policy_launch` (spatialvla_ros/tools/policy_launch.py) takes the same
arguments as options and does the same.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.actions import EmitEvent
from launch.actions import OpaqueFunction
from launch.actions import RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition
from spatialvla_ros.models.configuration_spatialvla import PLANS
from spatialvla_ros.nodes.launch_arguments import default_params_file
from spatialvla_ros.nodes.launch_arguments import node_fqn
from spatialvla_ros.nodes.launch_arguments import NODE_NAME
from spatialvla_ros.nodes.launch_arguments import node_parameters
from spatialvla_ros.nodes.launch_arguments import OVERRIDES
from spatialvla_ros.nodes.launch_arguments import split_remappings
from spatialvla_ros.tools.policy_launch import LaunchGraph


def _launch_node(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    # The parameters go to the node as a dict: launch_ros writes them under the node's full
    # name, so they apply in any namespace (a 'policy_node:' key in a --params-file only
    # matches a node in the root namespace).
    params = node_parameters(arg('params_file'), {name: arg(name) for name in OVERRIDES})
    # Never start a second node under a name that is taken: the lifecycle events below would
    # reach both nodes (policy_launch does the same check).
    graph = LaunchGraph()
    try:
        graph.check_free(node_fqn(arg('namespace'), arg('node_name')))
    finally:
        graph.close()
    node = LifecycleNode(
        package='spatialvla_ros', executable='policy_node', name=arg('node_name'),
        namespace=arg('namespace'), output='screen', parameters=[params],
        remappings=split_remappings(arg('remappings')),
        arguments=['--ros-args', '--log-level', arg('log_level')])
    autostart = IfCondition(LaunchConfiguration('autostart'))
    activate_when_inactive = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=node, goal_state='inactive',
            entities=[EmitEvent(event=ChangeState(
                lifecycle_node_matcher=matches_action(node),
                transition_id=Transition.TRANSITION_ACTIVATE))]),
        condition=autostart)
    configure = EmitEvent(
        event=ChangeState(lifecycle_node_matcher=matches_action(node),
                          transition_id=Transition.TRANSITION_CONFIGURE),
        condition=autostart)
    return [activate_when_inactive, node, configure]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument('plan', default_value='',
                              description="Expected fusion plan ('' = any): "
                                          + ', '.join(PLANS)),
        DeclareLaunchArgument('params_file', default_value=default_params_file(),
                              description='Parameters YAML of the policy node'),
        DeclareLaunchArgument('checkpoint_dir', default_value='',
                              description='Checkpoint directory (overrides the params file)'),
        DeclareLaunchArgument('device', default_value='',
                              description='Torch device: auto, cpu, cuda, cuda:N (overrides '
                                          'the params file)'),
        DeclareLaunchArgument('dtype', default_value='',
                              description='auto, float32, bfloat16 or float16 (overrides the '
                                          'params file)'),
        DeclareLaunchArgument('node_name', default_value=NODE_NAME,
                              description='Name of the node (refused when already taken in '
                                          'the ROS domain)'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='Namespace of the policy node'),
        DeclareLaunchArgument('remappings', default_value='',
                              description="Topic remappings 'FROM:=TO;FROM2:=TO2'"),
        DeclareLaunchArgument('autostart', default_value='false',
                              description='Configure and activate the node once started'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='Log level of the node'),
        OpaqueFunction(function=_launch_node),
    ])

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

import os

from ament_index_python.packages import get_package_share_directory
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
import yaml

NODE_NAME = 'policy_node'


def _node_parameters(params_file):
    with open(params_file, encoding='utf-8') as f:
        data = yaml.safe_load(f) or {}
    for key in (NODE_NAME, f'/{NODE_NAME}', f'/**/{NODE_NAME}', '/**'):
        section = data.get(key)
        if isinstance(section, dict) and isinstance(section.get('ros__parameters'), dict):
            return dict(section['ros__parameters'])
    raise RuntimeError(f'{params_file}: no {NODE_NAME}: ros__parameters: section')


def _remappings(text):
    rules = []
    for rule in filter(None, (r.strip() for r in text.split(';'))):
        src, sep, dst = rule.partition(':=')
        if not sep or not src or not dst:
            raise RuntimeError(f"remappings: {rule!r} is not 'FROM:=TO'")
        rules.append((src, dst))
    return rules


def _launch_node(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    # The parameters go to the node as a dict: launch_ros writes them under the node's full
    # name, so they apply in any namespace (a 'policy_node:' key in a --params-file only
    # matches a node in the root namespace).
    params = _node_parameters(arg('params_file'))
    for name in ('checkpoint_dir', 'plan', 'device', 'dtype'):
        if arg(name):
            params[name] = arg(name)
    node = LifecycleNode(
        package='spatialvla_ros', executable='policy_node', name=NODE_NAME,
        namespace=arg('namespace'), output='screen', parameters=[params],
        remappings=_remappings(arg('remappings')),
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
    default_params = os.path.join(get_package_share_directory('spatialvla_ros'), 'config',
                                  'params', f'{NODE_NAME}.yaml')
    return LaunchDescription([
        DeclareLaunchArgument('plan', default_value='',
                              description="Expected fusion plan ('' = any): "
                                          + ', '.join(PLANS)),
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='Parameters YAML of the policy node'),
        DeclareLaunchArgument('checkpoint_dir', default_value='',
                              description='Checkpoint directory (overrides the params file)'),
        DeclareLaunchArgument('device', default_value='',
                              description='Torch device: auto, cpu, cuda, cuda:N (overrides '
                                          'the params file)'),
        DeclareLaunchArgument('dtype', default_value='',
                              description='auto, float32, bfloat16 or float16 (overrides the '
                                          'params file)'),
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

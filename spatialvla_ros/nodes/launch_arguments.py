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

"""What the policy node is launched with: its parameters file, overrides and remappings.

One implementation for both launchers, `launch/policy.launch.py` (under `ros2 launch`) and
`policy_launch` (spatialvla_ros/tools/policy_launch.py, without it). Plain Python and YAML: no
rclpy and no `launch` import, so it loads wherever the package does.
"""

import os

from ament_index_python.packages import get_package_share_directory
import yaml

NODE_NAME = 'policy_node'
# Launch arguments that, when not empty, override the parameters file's value of that name.
OVERRIDES = ('checkpoint_dir', 'plan', 'device', 'dtype')


def default_params_file():
    """Return config/params/policy_node.yaml of the installed package, else of this checkout."""
    try:
        path = os.path.join(get_package_share_directory('spatialvla_ros'), 'config', 'params',
                            f'{NODE_NAME}.yaml')
        if os.path.isfile(path):
            return path
    except (LookupError, ValueError):
        pass
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(here, 'config', 'params', f'{NODE_NAME}.yaml')


def load_node_parameters(path, node_name=NODE_NAME):
    """Return the ros__parameters of `node_name` in a ROS parameters YAML (safe_load)."""
    try:
        with open(path, encoding='utf-8') as f:
            data = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ValueError(f'{path}: parameters file not found') from None
    except yaml.YAMLError as exc:
        raise ValueError(f'{path}: not valid YAML: {exc}') from None
    for key in (node_name, f'/{node_name}', f'/**/{node_name}', '/**'):
        section = data.get(key) if isinstance(data, dict) else None
        if isinstance(section, dict) and isinstance(section.get('ros__parameters'), dict):
            return dict(section['ros__parameters'])
    raise ValueError(f'{path}: no {node_name}: ros__parameters: section (got top-level keys '
                     f'{sorted(data) if isinstance(data, dict) else type(data).__name__})')


def node_parameters(params_file, overrides):
    """Return the parameters file's values with the non-empty `overrides` (OVERRIDES) applied."""
    params = load_node_parameters(params_file)
    for name in OVERRIDES:
        if overrides.get(name):
            params[name] = overrides[name]
    return params


def split_remappings(values):
    """Return [(from, to)] of 'FROM:=TO' rules: a string or strings, each ';'-separated."""
    rules = []
    for value in ([values] if isinstance(values, str) else values):
        for rule in filter(None, (r.strip() for r in value.split(';'))):
            src, sep, dst = rule.partition(':=')
            if not sep or not src or not dst:
                raise ValueError(f'remapping {rule!r}: expected FROM:=TO')
            rules.append((src, dst))
    return rules


def node_fqn(namespace, name=NODE_NAME):
    """Return the node's fully qualified name ('/ns/name', or '/name' in the root namespace)."""
    namespace = namespace.strip('/')
    return f'/{namespace}/{name}' if namespace else f'/{name}'


__all__ = ['NODE_NAME', 'OVERRIDES', 'default_params_file', 'load_node_parameters',
           'node_fqn', 'node_parameters', 'split_remappings']

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

"""Each room imports without the rooms above it (checked in a fresh interpreter)."""

import ast
import os
import subprocess
import sys
import textwrap

import pytest
from repo_paths import REPO_ROOT

SHIPPED = os.path.join(REPO_ROOT, 'checkpoints', 'default', 'config.yaml')


def test_policies_load_a_checkpoint_config_without_the_training_code():
    code = ('import sys\n'
            'from spatialvla_ros.policies.configuration_policy import PolicyConfig\n'
            f'PolicyConfig.from_yaml({SHIPPED!r})\n'
            "print(sorted(m for m in sys.modules if m.startswith('spatialvla_ros.training')))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == '[]'


# Each room and the rooms it may import (models <- perception / data / sim <- policies <-
# training / evaluation <- nodes <- tools); none of these may load rclpy.
BELOW = {
    'models': set(),
    'perception': set(),
    'data': {'perception'},
    'sim': {'models', 'perception'},
    'policies': {'models', 'perception'},
    'training': {'models', 'perception', 'data', 'policies'},
    'evaluation': {'models', 'perception', 'data', 'sim', 'policies', 'training'},
}
LEAVES = {'core_types', 'typed_config'}


@pytest.mark.parametrize('room', sorted(BELOW))
def test_a_room_imports_only_the_rooms_below_it_and_never_rclpy(room):
    code = textwrap.dedent(f"""
        import importlib, pkgutil, sys
        pkg = importlib.import_module('spatialvla_ros.{room}')
        for info in pkgutil.iter_modules(pkg.__path__):
            importlib.import_module('spatialvla_ros.{room}.' + info.name)
        rooms = {{m.split('.')[1] for m in sys.modules if m.startswith('spatialvla_ros.')}}
        print(sorted(rooms))
        print('rclpy' in sys.modules)
    """)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    rooms_line, rclpy_line = out.stdout.strip().splitlines()[-2:]
    rooms = set(ast.literal_eval(rooms_line)) - LEAVES - {room}
    assert rooms <= BELOW[room], f'{room} imports {sorted(rooms - BELOW[room])} (above it)'
    assert rclpy_line == 'False', f'{room} loads rclpy'


def test_the_package_exports_its_api_without_ros():
    # A fresh interpreter: this process may have imported rclpy through other tests.
    probe = ('import sys\nimport spatialvla_ros.models as m\n'
             'print(all(hasattr(m, n) for n in m.__all__), "rclpy" in sys.modules)')
    out = subprocess.check_output([sys.executable, '-c', probe], text=True, timeout=300)
    assert out.split() == ['True', 'False']

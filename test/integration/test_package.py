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

"""The package: ament index, share directory, console scripts answering --help.

Two views of the console scripts: those setup.py declares must each name a module and function
that exist in this tree and answer --help (a renamed module or a typo fails here before any
install); those installed must be where `ros2 run` looks and answer --help too.
"""

import ast
import importlib.metadata
import os
import subprocess
import sys

from ament_index_python.packages import get_package_prefix
from ament_index_python.packages import get_package_share_directory
import pytest
from repo_paths import REPO_ROOT

REPO = REPO_ROOT
SCRIPTS = sorted(ep.name for ep in importlib.metadata.distribution('spatialvla_ros').entry_points
                 if ep.group == 'console_scripts')


def test_ament_index_finds_package_and_share():
    share = get_package_share_directory('spatialvla_ros')
    assert os.path.isfile(os.path.join(share, 'package.xml'))
    for name in ('late_gemma.yaml', 'late_llama.yaml', 'deep_fusion.yaml'):
        assert os.path.isfile(os.path.join(share, 'config', name)), name
    assert os.path.isdir(os.path.join(share, 'launch'))
    assert os.path.isfile(os.path.join(get_package_share_directory('spatialvla_ros_interfaces'),
                                       'package.xml'))


def _declared_scripts():
    """(name, module, function) of every console script setup.py declares."""
    with open(os.path.join(REPO, 'setup.py'), encoding='utf-8') as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == 'console_scripts':
                    entries = [ast.literal_eval(e) for e in value.elts]
                    return [(name.strip(), *target.strip().split(':'))
                            for name, target in (e.split('=') for e in entries)]
    raise AssertionError('setup.py declares no console_scripts')


DECLARED = _declared_scripts()


@pytest.mark.parametrize('name,module,function', DECLARED, ids=[d[0] for d in DECLARED])
def test_declared_console_script_answers_help(name, module, function):
    code = (f'import sys; from {module} import {function} as main; '
            f'sys.argv = [{name!r}, "--help"]; sys.exit(main())')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'usage' in out.stdout.lower() and name in out.stdout, out.stdout[:500]


@pytest.mark.parametrize('name', SCRIPTS)
def test_console_script_answers_help(name):
    # Where ros2 run looks: <prefix>/lib/<package>/<executable>.
    exe = os.path.join(get_package_prefix('spatialvla_ros'), 'lib', 'spatialvla_ros', name)
    assert os.access(exe, os.X_OK), f'{exe} is missing: run scripts/setup.sh'
    out = subprocess.run([exe, '--help'], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert 'usage' in out.stdout.lower(), out.stdout

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

"""The installed package: ament index, share directory, console scripts answering --help."""

import configparser
import importlib.metadata
import os
import subprocess

from ament_index_python.packages import get_package_prefix
from ament_index_python.packages import get_package_share_directory
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


def test_setup_cfg_puts_scripts_where_ros2_run_looks():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO, 'setup.cfg'))
    assert cfg['develop']['script_dir'] == '$base/lib/spatialvla_ros'
    assert cfg['install']['install_scripts'] == '$base/lib/spatialvla_ros'


@pytest.mark.parametrize('name', SCRIPTS)
def test_console_script_answers_help(name):
    # Where ros2 run looks: <prefix>/lib/<package>/<executable>.
    exe = os.path.join(get_package_prefix('spatialvla_ros'), 'lib', 'spatialvla_ros', name)
    assert os.access(exe, os.X_OK), f'{exe} is missing: run scripts/setup.sh'
    out = subprocess.run([exe, '--help'], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert 'usage' in out.stdout.lower(), out.stdout

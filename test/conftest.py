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

"""Shared fixtures (isolated ROS 2 domains, node processes) and the suite's layout markers.

test/unit/: no DDS, no subprocess; `pytest -m unit` runs them in about a minute.
test/integration/: real processes over DDS, real bags, training runs, the closed loop.
test/lint/: the ament linters.
"""

import itertools
import os
import subprocess
import sys

import pytest
from repo_paths import REPO_ROOT

REPO = REPO_ROOT
CONFIG_DIR = os.path.join(REPO, 'config')
_domains = itertools.count((os.getpid() * 7) % 150 + 20)


@pytest.fixture(autouse=True, scope='session')
def _torch_threads():
    # Two cores, several test processes: keep torch from oversubscribing.
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        pass


@pytest.fixture
def ros_env():
    """Environment for ROS 2 processes of one test: its own domain, loopback only."""
    env = dict(os.environ)
    env['ROS_DOMAIN_ID'] = str(next(_domains) % 200 + 20)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['FASTDDS_BUILTIN_TRANSPORTS'] = 'LARGE_DATA'
    env['PYTHONUNBUFFERED'] = '1'
    env.setdefault('OMP_NUM_THREADS', '1')
    return env


@pytest.fixture
def spawn(ros_env):
    """Start python processes (module + args) in the test's domain; kill them afterwards."""
    procs = []

    def _spawn(args, **kwargs):
        proc = subprocess.Popen([sys.executable] + list(args), env=kwargs.pop('env', ros_env),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                **kwargs)
        procs.append(proc)
        return proc

    yield _spawn
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def pytest_collection_modifyitems(config, items):
    """Mark each test by the folder it lives in (unit / integration / lint)."""
    for item in items:
        folder = os.path.basename(os.path.dirname(str(item.fspath)))
        if folder in ('unit', 'integration'):
            item.add_marker(getattr(pytest.mark, folder))

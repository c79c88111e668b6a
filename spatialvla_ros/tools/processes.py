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


"""Start and stop the simulator and policy node as separate processes (as a robot would run).

Each process gets its parameters from a YAML file written here (the node's own parameter
format), writes its output to a log file, and is stopped with SIGINT first (clean rclpy
shutdown), then SIGTERM / SIGKILL. A process that dies early is reported with its log tail.

`isolated_domain` gives a run a ROS domain of its own (a free ROS_DOMAIN_ID, held by a lock
file while the run lasts), so parallel evaluations on one machine never see each other's
nodes, topics or lifecycle services.
"""

import contextlib
import fcntl
import os
import random
import signal
import subprocess
import sys
import tempfile

from spatialvla_ros.nodes.policy_parameters import NODE_PARAMETERS
from spatialvla_ros.tools.policy_launch import default_params_file
from spatialvla_ros.tools.policy_launch import load_node_parameters
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ProcessError(RuntimeError):
    """A node process could not be started or died."""


def log_tail(path, lines=30):
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            return ''.join(f.readlines()[-lines:])
    except OSError:
        return ''


class NodeProcess:
    """One child process with a log file; a context manager that stops it on exit."""

    def __init__(self, name, argv, log_path, env=None, cleanup=()):
        self.name = name
        self.log_path = log_path
        self._cleanup = list(cleanup)
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
        self._log = open(log_path, 'w', encoding='utf-8')
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env, cwd=REPO)

    def alive(self):
        return self.proc.poll() is None

    def log_tail(self, lines=30):
        """Return 'last lines of LOG:' and the end of the process's log."""
        return f'last lines of {self.log_path}:\n{log_tail(self.log_path, lines)}'

    def check(self):
        """Raise ProcessError with the log tail if the process has exited."""
        if not self.alive():
            raise ProcessError(f'{self.name} exited with code {self.proc.returncode}; '
                               f'{self.log_tail()}')

    def stop(self, timeout_s=15.0):
        if self.alive():
            for sig, wait in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 5.0)):
                self.proc.send_signal(sig)
                try:
                    self.proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        for path in self._cleanup:
            try:
                os.unlink(path)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _params_file(node_name, params, prefix):
    fd, path = tempfile.mkstemp(prefix=prefix, suffix='.yaml')
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
        yaml.safe_dump({node_name: {'ros__parameters': dict(params)}}, f)
    return path


def default_policy_parameters():
    """Return the policy node's parameters: node defaults + config/params/policy_node.yaml."""
    params = {p.name: p.default for p in NODE_PARAMETERS}
    path = default_params_file()
    if os.path.isfile(path):
        params.update(load_node_parameters(path))
    return params


def start_policy(checkpoint_dir, log_path, overrides=None, env=None, log_level='warn'):
    """Start policy_launch --autostart with the default parameters plus `overrides`."""
    params = default_policy_parameters()
    params.update(overrides or {})
    params['checkpoint_dir'] = os.path.abspath(checkpoint_dir)
    path = _params_file('policy_node', params, 'policy_params_')
    argv = [sys.executable, '-m', 'spatialvla_ros.tools.policy_launch', '--params-file', path,
            '--autostart', '--log-level', log_level]
    return NodeProcess('policy node', argv, log_path, env, cleanup=[path])


def start_sim(log_path, params=None, env=None):
    """Start the simulator node with `params` (names of sim_node's parameters)."""
    path = _params_file('sim_node', params or {}, 'sim_params_')
    argv = [sys.executable, '-m', 'spatialvla_ros.nodes.sim_node', '--ros-args',
            '--params-file', path]
    return NodeProcess('simulator node', argv, log_path, env, cleanup=[path])


# Domains 1..101 keep every DDS port below the ephemeral range on Linux (ROS 2 docs, "The
# ROS_DOMAIN_ID"); 0 is everybody's default, so an evaluation never takes it.
_DOMAINS = range(1, 102)
_LOCK_DIR = os.path.join(tempfile.gettempdir(), 'spatialvla_ros_domains')


@contextlib.contextmanager
def isolated_domain(env=None):
    """Hold a free ROS domain for the duration of the block; yields `env` with ROS_DOMAIN_ID.

    A domain is free when no other run of this project holds its lock file (an exclusive
    flock, released when the block ends or the process dies). Other ROS software on the
    machine is kept out by starting from a random domain, away from 0.
    """
    env = dict(os.environ if env is None else env)
    os.makedirs(_LOCK_DIR, exist_ok=True)
    start = random.SystemRandom().randrange(len(_DOMAINS))
    for i in range(len(_DOMAINS)):
        domain = _DOMAINS[(start + i) % len(_DOMAINS)]
        fd = os.open(os.path.join(_LOCK_DIR, f'{domain}.lock'), os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        try:
            env['ROS_DOMAIN_ID'] = str(domain)
            yield env
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return
    raise ProcessError(f'no free ROS domain among {_DOMAINS.start}..{_DOMAINS.stop - 1}: '
                       f'every lock in {_LOCK_DIR} is held by another run')


def domain_of(env):
    """ROS_DOMAIN_ID of `env` as an int (None when unset: the rclpy default)."""
    value = (env or {}).get('ROS_DOMAIN_ID', '')
    try:
        return int(value) if value else None
    except ValueError:
        raise ValueError(f'ROS_DOMAIN_ID: got {value!r}, expected an integer') from None


__all__ = ['NodeProcess', 'ProcessError', 'default_policy_parameters', 'domain_of',
           'isolated_domain', 'log_tail', 'start_policy', 'start_sim']

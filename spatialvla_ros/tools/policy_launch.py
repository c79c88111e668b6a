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
Start the policy node like `ros2 launch spatialvla_ros policy.launch.py`, without ros2 launch.

The same arguments as launch/policy.launch.py and the same parameters YAML: the node runs in
a child process (its output goes to this terminal) with the parameters and remappings as
--ros-args; with --autostart this process drives it configure -> activate through the
lifecycle services (lifecycle_msgs/srv/ChangeState), then waits for it to exit. SIGINT /
SIGTERM are forwarded to the node.

A launcher drives only the node it started: it refuses to start when a node of the same name
is already in the ROS domain, and it tags its node with an enclave derived from its own PID
(a plain name when ROS security is off) so that, before every transition, it can check that
the only node answering to that name is its own.
"""

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time

from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions
from spatialvla_ros.models.configuration_spatialvla import PLANS
from spatialvla_ros.nodes.launch_arguments import default_params_file
from spatialvla_ros.nodes.launch_arguments import load_node_parameters
from spatialvla_ros.nodes.launch_arguments import node_fqn
from spatialvla_ros.nodes.launch_arguments import NODE_NAME
from spatialvla_ros.nodes.launch_arguments import node_parameters
from spatialvla_ros.nodes.launch_arguments import OVERRIDES
from spatialvla_ros.nodes.launch_arguments import split_remappings
import yaml

NODE_MODULE = 'spatialvla_ros.nodes.policy_node'
# How long to look for a node of the same name before starting ours: the graph's node names
# arrive after DDS discovery, ~0.1 s on an idle machine, over 1.5 s on a busy one.
DISCOVERY_S = 3.0
_HINT = 'stop it, or start this one under another name (--node-name NAME or --namespace NS)'


class NameTaken(RuntimeError):
    """Another node answers to the name this launcher's node has (or would have)."""


def build_parser():
    """Return the argument parser; its options mirror policy.launch.py's launch arguments."""
    parser = argparse.ArgumentParser(
        prog='policy_launch',
        description='Start the SpatialVLA policy node (a lifecycle node) with its parameters '
                    'file; with --autostart, configure and activate it.')
    parser.add_argument('--plan', default='', choices=('',) + PLANS,
                        help="expected fusion plan of the checkpoint ('' = any)")
    parser.add_argument('--params-file', default=default_params_file(),
                        help='parameters YAML (top-level key policy_node:, then '
                             'ros__parameters:); default: %(default)s')
    parser.add_argument('--checkpoint-dir', default='',
                        help='checkpoint directory (overrides the params file)')
    parser.add_argument('--device', default='',
                        help='torch device, e.g. auto, cpu, cuda (overrides the params file)')
    parser.add_argument('--dtype', default='', choices=('', 'auto', 'float32', 'bfloat16',
                                                        'float16'),
                        help='model dtype (overrides the params file)')
    parser.add_argument('--node-name', default=NODE_NAME,
                        help='name of the node; the launcher refuses to start when a node of '
                             'this name already runs in the ROS domain (default: %(default)s)')
    parser.add_argument('--namespace', default='', help='namespace of the node')
    parser.add_argument('--remap', dest='remappings', action='append', default=[],
                        metavar='FROM:=TO',
                        help="topic remapping; repeat it, or separate several with ';'")
    parser.add_argument('--autostart', action='store_true',
                        help='drive the node to active (configure, then activate)')
    parser.add_argument('--log-level', default='info',
                        choices=('debug', 'info', 'warn', 'error', 'fatal'),
                        help='node log level')
    return parser


def launch_enclave():
    """Return the enclave that marks this launcher's node ('' when ROS security is on)."""
    if os.environ.get('ROS_SECURITY_ENABLE', '').lower() == 'true':
        return ''   # a made-up enclave would need keys in the keystore: fall back to names only
    return f'/policy_launch_{os.getpid()}'


def node_command(ns, params_path, enclave=''):
    """Return the argv that starts the node with `params_path` and the remappings."""
    cmd = [sys.executable, '-m', NODE_MODULE, '--ros-args', '-r', f'__node:={ns.node_name}']
    if ns.namespace.strip('/'):
        cmd += ['-r', '__ns:=/' + ns.namespace.strip('/')]
    if enclave:
        cmd += ['--enclave', enclave]
    cmd += ['--params-file', params_path, '--log-level', ns.log_level]
    for src, dst in split_remappings(ns.remappings):
        cmd += ['-r', f'{src}:={dst}']
    return cmd


class LaunchGraph:
    """This launcher's own ROS node: looks at the graph and calls its node's lifecycle."""

    def __init__(self):
        self.context = rclpy.Context()
        # Keep this process's SIGINT / SIGTERM handlers (they forward to the node).
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(f'policy_launch_{os.getpid()}', context=self.context,
                                      start_parameter_services=False)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def enclaves_of(self, fqn):
        """Return the enclave of every node in the graph whose full name is `fqn`."""
        return [enclave for name, namespace, enclave
                in self.node.get_node_names_and_namespaces_with_enclaves()
                if node_fqn(namespace, name) == fqn]

    def check_free(self, fqn, wait_s=DISCOVERY_S):
        """Raise NameTaken if a node named `fqn` shows up within `wait_s` (discovery time)."""
        deadline = time.monotonic() + wait_s
        while True:
            if self.enclaves_of(fqn):
                raise NameTaken(
                    f'a node named {fqn} is already running in this ROS domain (ROS_DOMAIN_ID='
                    f'{os.environ.get("ROS_DOMAIN_ID", "0")}); {_HINT}')
            if time.monotonic() > deadline:
                return
            self.executor.spin_once(timeout_sec=0.05)

    def check_only_ours(self, fqn, enclave):
        """Raise NameTaken if a node named `fqn` other than ours (by enclave) is in the graph."""
        enclaves = self.enclaves_of(fqn)
        foreign = [e for e in enclaves if e != enclave] if enclave else enclaves[1:]
        if foreign:
            raise NameTaken(f'another node named {fqn} is running in this ROS domain (enclave '
                            f'{foreign[0]!r}); its lifecycle services and ours would share one '
                            f'name, so this launch stops; {_HINT}')

    def wait_for_own(self, fqn, enclave, alive, timeout_s=600.0):
        """Wait until our node is in the graph, then check it is alone; '' or what failed."""
        deadline = time.monotonic() + timeout_s
        while not (self.enclaves_of(fqn) if not enclave else enclave in self.enclaves_of(fqn)):
            if not alive() or time.monotonic() > deadline:
                return f'{fqn}: the node never appeared in the ROS graph'
            self.executor.spin_once(timeout_sec=0.1)
        self.check_only_ours(fqn, enclave)
        return ''

    def drive_to_active(self, fqn, enclave, alive, timeout_s=600.0):
        """Call configure then activate on `fqn`/change_state; return '' or what failed."""
        client = self.node.create_client(ChangeState, f'{fqn}/change_state')
        deadline = time.monotonic() + timeout_s
        while not client.service_is_ready():
            if not alive() or time.monotonic() > deadline:
                return f'{fqn}/change_state: service never appeared'
            self.executor.spin_once(timeout_sec=0.1)
        for transition, label in ((Transition.TRANSITION_CONFIGURE, 'configure'),
                                  (Transition.TRANSITION_ACTIVATE, 'activate')):
            self.check_only_ours(fqn, enclave)
            request = ChangeState.Request()
            request.transition.id = transition
            future = client.call_async(request)
            while not future.done():
                self.executor.spin_once(timeout_sec=0.5)
                if not alive() or time.monotonic() > deadline:
                    return f'{label}: no answer from {fqn}'
            if not future.result().success:
                return f'{label} failed (see the node log above)'
            print(f'[policy_launch] {fqn}: {label} ok', flush=True)
        return ''

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


def _die_with_parent():
    """Child pre-exec: get SIGTERM if this launcher dies, so no node outlives it (Linux)."""
    try:
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(args=None):
    ns = build_parser().parse_args(args)
    try:
        params = node_parameters(ns.params_file, {name: getattr(ns, name) for name in OVERRIDES})
        split_remappings(ns.remappings)
    except ValueError as exc:
        print(f'policy_launch: error: {exc}', file=sys.stderr)
        return 2
    fqn, enclave = node_fqn(ns.namespace, ns.node_name), launch_enclave()
    graph = LaunchGraph()
    try:
        graph.check_free(fqn)
    except NameTaken as exc:
        graph.close()
        print(f'policy_launch: error: {exc}', file=sys.stderr)
        return 2
    # Keyed '/**' so the values apply whatever namespace the node gets (a 'policy_node:' key
    # only matches a node in the root namespace).
    fd, params_path = tempfile.mkstemp(prefix='policy_node_params_', suffix='.yaml')
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
        yaml.safe_dump({'/**': {'ros__parameters': params}}, f)
    # Own process group: a terminal Ctrl-C reaches only this process, which forwards one
    # SIGINT (a second one would interrupt the node's clean-up).
    proc = subprocess.Popen(node_command(ns, params_path, enclave),
                            preexec_fn=_die_with_parent, process_group=0)

    def alive():
        return proc.poll() is None

    def forward(signum, frame):
        if alive():
            proc.send_signal(signal.SIGINT)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        error = graph.wait_for_own(fqn, enclave, alive)
        if not error and ns.autostart:
            error = graph.drive_to_active(fqn, enclave, alive)
        if error:
            print(f'[policy_launch] {error}', file=sys.stderr, flush=True)
        return proc.wait()
    except NameTaken as exc:
        print(f'policy_launch: error: {exc}', file=sys.stderr, flush=True)
        _stop(proc)
        return 2
    finally:
        _stop(proc)
        graph.close()
        os.unlink(params_path)


__all__ = ['build_parser', 'default_params_file', 'load_node_parameters', 'main',
           'node_command']

if __name__ == '__main__':
    sys.exit(main())

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
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

from spatialvla_ros.models.configuration_spatialvla import PLANS
import yaml

NODE_NAME = 'policy_node'
NODE_MODULE = 'spatialvla_ros.nodes.policy_node'


def default_params_file():
    """Return config/params/policy_node.yaml of the installed package, else of this checkout."""
    try:
        from ament_index_python.packages import get_package_share_directory
        path = os.path.join(get_package_share_directory('spatialvla_ros'), 'config', 'params',
                            f'{NODE_NAME}.yaml')
        if os.path.isfile(path):
            return path
    except (ImportError, LookupError, ValueError):
        pass
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(here, 'config', 'params', f'{NODE_NAME}.yaml')


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


def split_remappings(values):
    """Return [(from, to)] of 'FROM:=TO' strings (each may hold several, ';'-separated)."""
    rules = []
    for value in values:
        for rule in filter(None, (r.strip() for r in value.split(';'))):
            src, sep, dst = rule.partition(':=')
            if not sep or not src or not dst:
                raise ValueError(f'remapping {rule!r}: expected FROM:=TO')
            rules.append((src, dst))
    return rules


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


def node_parameters(ns):
    """Return the parameters file's values with the command-line overrides applied."""
    params = load_node_parameters(ns.params_file)
    for name in ('checkpoint_dir', 'plan', 'device', 'dtype'):
        if getattr(ns, name):
            params[name] = getattr(ns, name)
    return params


def node_command(ns, params_path):
    """Return the argv that starts the node with `params_path` and the remappings."""
    cmd = [sys.executable, '-m', NODE_MODULE, '--ros-args', '-r', f'__node:={NODE_NAME}']
    if ns.namespace.strip('/'):
        cmd += ['-r', '__ns:=/' + ns.namespace.strip('/')]
    cmd += ['--params-file', params_path, '--log-level', ns.log_level]
    for src, dst in split_remappings(ns.remappings):
        cmd += ['-r', f'{src}:={dst}']
    return cmd


def node_fqn(namespace):
    namespace = namespace.strip('/')
    return f'/{namespace}/{NODE_NAME}' if namespace else f'/{NODE_NAME}'


def drive_to_active(fqn, alive, timeout_s=600.0):
    """Call configure then activate on `fqn`/change_state; return '' or what failed."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    context = rclpy.Context()
    # Keep this process's SIGINT / SIGTERM handlers (they forward to the node).
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node('policy_launch_lifecycle', context=context,
                             start_parameter_services=False)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        client = node.create_client(ChangeState, f'{fqn}/change_state')
        deadline = time.monotonic() + timeout_s
        while not client.wait_for_service(timeout_sec=0.5):
            if not alive() or time.monotonic() > deadline:
                return f'{fqn}/change_state: service never appeared'
        for transition, label in ((Transition.TRANSITION_CONFIGURE, 'configure'),
                                  (Transition.TRANSITION_ACTIVATE, 'activate')):
            request = ChangeState.Request()
            request.transition.id = transition
            future = client.call_async(request)
            while not future.done():
                executor.spin_once(timeout_sec=0.5)
                if not alive() or time.monotonic() > deadline:
                    return f'{label}: no answer from {fqn}'
            if not future.result().success:
                return f'{label} failed (see the node log above)'
            print(f'[policy_launch] {fqn}: {label} ok', flush=True)
        return ''
    finally:
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()


def _die_with_parent():
    """Child pre-exec: get SIGTERM if this launcher dies, so no node outlives it (Linux)."""
    try:
        import ctypes
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(args=None):
    ns = build_parser().parse_args(args)
    try:
        params = node_parameters(ns)
        split_remappings(ns.remappings)
    except ValueError as exc:
        print(f'policy_launch: error: {exc}', file=sys.stderr)
        return 2
    # Keyed '/**' so the values apply whatever namespace the node gets (a 'policy_node:' key
    # only matches a node in the root namespace).
    fd, params_path = tempfile.mkstemp(prefix='policy_node_params_', suffix='.yaml')
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
        yaml.safe_dump({'/**': {'ros__parameters': params}}, f)
    # Own process group: a terminal Ctrl-C reaches only this process, which forwards one
    # SIGINT (a second one would interrupt the node's clean-up).
    proc = subprocess.Popen(node_command(ns, params_path), preexec_fn=_die_with_parent,
                            process_group=0)

    def forward(signum, frame):
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        if ns.autostart:
            error = drive_to_active(node_fqn(ns.namespace), lambda: proc.poll() is None)
            if error:
                print(f'[policy_launch] autostart: {error}', file=sys.stderr, flush=True)
        return proc.wait()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        os.unlink(params_path)


if __name__ == '__main__':
    sys.exit(main())

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

"""Which camera sizes and rates the policy node keeps up with, per input QoS: where each set goes.

Three real processes per QoS: the policy node (policy_launch --autostart, the default
parameters plus the QoS under test, in a ROS domain of its own), a camera process streaming a
synthetic RGB-D camera (rgb8 colour + 16UC1 depth + camera_info, one stamp per set, on the
checkpoint's topics with its camera's field of view, plus the joint state) at each size and
rate in turn, and this process, which sends the instruction and reads the node's action
chunks and /diagnostics. The camera publishes reliably (depth 10, the ROS default, unless
--camera-depth); the node subscribes with the QoS under test.

Per configuration, every set sent should end in exactly one of: answered (a chunk was
published for it), dropped by latest-wins (a newer set replaced it while the model was busy:
expected whenever inference is slower than the camera), suppressed (computed but not
published: too late or inputs stale), rejected (counted by reason) or lost (never reached
the worker: not delivered by DDS, or not synchronised). Latency: observation stamp to the
chunk's publication stamp (one machine, one clock).

Usage: python bench/node_camera_rates.py [--checkpoint-dir checkpoints/default]
           [--sizes train,640x480,1280x720] [--rates 15,30] [--seconds 4]
           [--qos reliable,best_effort] [--depth 10]
'train' is the checkpoint's training image size (recipe.json image_size).
"""

import argparse
import collections
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSDurabilityPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import Image
from sensor_msgs.msg import JointState
from spatialvla_ros.core_types import stamp_to_ns
from spatialvla_ros.evaluation.closed_loop import recipe_camera
from spatialvla_ros.perception import conversions
from spatialvla_ros.perception.messages import make_message
from spatialvla_ros.perception.observation_builder import key_topics
from spatialvla_ros.policies.configuration_policy import PolicyConfig
from spatialvla_ros.sim.camera import Camera
from spatialvla_ros.sim.camera import CameraSpec
from spatialvla_ros.sim.panda_env import HOME
from spatialvla_ros.tools.processes import default_policy_parameters
from spatialvla_ros.tools.processes import isolated_domain
from spatialvla_ros.tools.processes import start_policy
from spatialvla_ros_interfaces.msg import ActionChunk
from std_msgs.msg import String

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTRUCTION = 'reach the red cube'
DDS_ENV = {'FASTDDS_BUILTIN_TRANSPORTS': 'LARGE_DATA',
           'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}
STREAM_QOS = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                         durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
KINDS = {'color': Image, 'depth': Image, 'camera_info': CameraInfo}


def _config(checkpoint_dir):
    return PolicyConfig.from_yaml(os.path.join(checkpoint_dir, 'config.yaml'))


def _scene(width, height, i):
    """Frame i: a red square moving over a gradient, 0.2 m in front of a 1 m plane [m]."""
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[..., 1] = np.linspace(0, 200, width, dtype=np.uint8)[None, :]
    rgb[..., 2] = np.linspace(0, 200, height, dtype=np.uint8)[:, None]
    depth = np.full((height, width), 1.0, np.float32)
    side = max(2, height // 4)
    col = (i * side // 2) % max(1, width - side)
    rgb[side:2 * side, col:col + side] = (220, 20, 20)
    depth[side:2 * side, col:col + side] = 0.8
    return rgb, depth


def _camera_sets(width, height, fov_deg, count=4):
    """`count` sets {kind: rclpy message} of the checkpoint's camera at this size (stamps 0)."""
    fx, fy, cx, cy = Camera(CameraSpec(width=width, height=height, fov_deg=fov_deg),
                            None).intrinsics()
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    info = make_message(CameraInfo, conversions.camera_info_fields(K, width, height))
    sets = []
    for i in range(count):
        rgb, depth = _scene(width, height, i)
        sets.append({'color': make_message(Image, conversions.rgb_to_image_fields(rgb, 'rgb8')),
                     'depth': make_message(Image, conversions.depth_to_image_fields(
                         depth, '16UC1')),
                     'camera_info': info})
    return sets


def camera(ns):
    """Camera process: for each stdin line 'W H RATE SECONDS' stream sets, print a JSON line."""
    config = _config(ns.checkpoint_dir)
    fov_deg = recipe_camera(ns.checkpoint_dir)['fov_deg']
    rclpy.init()
    node = rclpy.create_node('camera_rates_camera')
    topics = key_topics(config.data)
    qos = QoSProfile(depth=ns.camera_depth, reliability=QoSReliabilityPolicy.RELIABLE)
    pubs = {key: node.create_publisher(KINDS[key.rsplit('/', 1)[-1]], topic, qos)
            for key, topic in topics.items()}
    joint_pub = node.create_publisher(JointState, config.data.state_topic, STREAM_QOS)
    joints = JointState(name=list(config.action.names),
                        position=[float(q) for q in HOME[:len(config.action.names)]])
    matched = False
    for line in sys.stdin:
        width, height, rate, seconds = (float(v) for v in line.split())
        sets = _camera_sets(int(width), int(height), fov_deg)
        if not matched:   # the node's subscriptions, once: it keeps them for the whole run
            deadline = time.monotonic() + 60
            while (any(p.get_subscription_count() == 0 for p in [joint_pub, *pubs.values()])
                   and time.monotonic() < deadline):
                time.sleep(0.05)
            time.sleep(0.5)   # let the reliable readers' handshakes finish
            matched = True
        # Joint states first, so that the node has a fresh state when the first set completes.
        for _ in range(3):
            joints.header.stamp = node.get_clock().now().to_msg()
            joint_pub.publish(joints)
            time.sleep(0.05)
        frames, period = int(round(seconds * rate)), 1.0 / rate
        stamps, start = [], time.monotonic()
        for k in range(frames):
            delay = start + k * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            stamp = node.get_clock().now().to_msg()
            joints.header.stamp = stamp
            joint_pub.publish(joints)
            for key, pub in pubs.items():
                msg = sets[k % len(sets)][key.rsplit('/', 1)[-1]]
                msg.header.stamp = stamp
                pub.publish(msg)
            stamps.append(stamp_to_ns(stamp))
        elapsed = time.monotonic() - start
        print(json.dumps({'stamps': stamps, 'seconds': elapsed}), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


class Observer:
    """This process's ROS participant: sends the instruction, records chunks and diagnostics."""

    def __init__(self, domain_id, config, params):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node('camera_rates_observer', context=self.context)
        self.lock = threading.Lock()
        self.chunks = []      # (observation stamp ns, publication stamp ns)
        self.diagnostics = []  # (receive monotonic time, {key: value})
        self.instruction = self.node.create_publisher(String, config.data.instruction_topic,
                                                      LATCHED_QOS)
        self.node.create_subscription(ActionChunk, '/' + params['action_chunk_topic'].lstrip('/'),
                                      self._on_chunk, QoSProfile(
                                          depth=200, reliability=QoSReliabilityPolicy.RELIABLE))
        self.node.create_subscription(DiagnosticArray, params['diagnostics_topic'],
                                      self._on_diagnostics, STREAM_QOS)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_chunk(self, msg):
        with self.lock:
            self.chunks.append((stamp_to_ns(msg.observation_stamp),
                                stamp_to_ns(msg.header.stamp)))

    def _on_diagnostics(self, msg):
        for status in msg.status:
            if status.name.endswith(': policy'):
                with self.lock:
                    self.diagnostics.append((time.monotonic(),
                                             {kv.key: kv.value for kv in status.values}))

    def values_after(self, t, timeout_s, alive):
        """Return the node's first diagnostics received after monotonic time `t` (None: none)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and alive():
            with self.lock:
                for when, values in self.diagnostics:
                    if when > t:
                        return values
            time.sleep(0.05)
        return None

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


def _waiting_warnings(log_path):
    """(wall time [s], stale topics) of each of the node's 'waiting for input' warnings."""
    out = []
    with open(log_path, encoding='utf-8', errors='replace') as f:
        for line in f:
            if 'waiting for input' not in line or not line.startswith('[WARN] ['):
                continue
            try:
                when = float(line.split('] [', 2)[1].split(']')[0])
            except (IndexError, ValueError):
                continue
            names = []
            for part in line.split('waiting for input: ', 1)[1].split('; '):
                found = re.match(r'no message (?:yet )?on (.+?)(?: for [0-9.]+ s)?(?: \(|$)',
                                 part.strip())
                if found:   # '/camera/color/image_raw' -> 'color', '/joint_states' as is
                    name = found.group(1)
                    names.append(name.rsplit('/', 2)[-2] if name.count('/') > 1 else name)
            out.append((when, names))
    return out


def _counts(values):
    """Counters of one diagnostics message as ints (text values skipped)."""
    out = {}
    for key, value in values.items():
        try:
            out[key] = int(value)
        except ValueError:
            pass
    return out


def _delta(before, after, prefix):
    return {k[len(prefix):]: after[k] - before.get(k, 0) for k in after
            if k.startswith(prefix) and after[k] - before.get(k, 0)}


def _fmt(counter):
    return ', '.join(f'{k} {v}' for k, v in sorted(counter.items())) or '0'


def run_qos(ns, reliability, configs, config, params, log_dir):
    """Start a node with `reliability` input QoS and a camera; return one result per config."""
    results = []
    with isolated_domain(dict(os.environ, **DDS_ENV, PYTHONUNBUFFERED='1')) as env:
        log = os.path.join(log_dir, f'policy_node_{reliability}.log')
        node = start_policy(ns.checkpoint_dir, log, {'qos_reliability': reliability,
                                                     'qos_depth': ns.depth}, env=env)
        observer = cam = None
        try:
            observer = Observer(int(env['ROS_DOMAIN_ID']), config, params)
            t0 = time.monotonic()
            while True:
                values = observer.values_after(t0, 180.0, node.alive)
                node.check()
                if values is None:
                    raise RuntimeError(f'the policy node sent no diagnostics; log: {log}')
                if values.get('lifecycle_state') == 'active':
                    break
                t0 = time.monotonic()
            observer.instruction.publish(String(data=INSTRUCTION))
            cam = subprocess.Popen([sys.executable, os.path.abspath(__file__), '--role',
                                    'camera', '--checkpoint-dir', ns.checkpoint_dir,
                                    '--camera-depth', str(ns.camera_depth)], env=env,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                   cwd=REPO)
            lines = queue.Queue()
            # Only JSON lines: pybullet prints a banner on import.
            threading.Thread(target=lambda: [lines.put(x) for x in cam.stdout
                                             if x.startswith('{')], daemon=True).start()
            before = _counts(values)
            for width, height, rate in configs:
                cam.stdin.write(f'{width} {height} {rate} {ns.seconds}\n')
                cam.stdin.flush()
                try:
                    sent = json.loads(lines.get(timeout=120 + ns.seconds))
                except queue.Empty:
                    raise RuntimeError('the camera process did not finish a stream') from None
                # Every set has either reached the worker or is gone once the worker is idle:
                # one inference plus the watchdog's timeout after the last set, with margin.
                after = observer.values_after(time.monotonic() + 2.0, 30.0, node.alive)
                node.check()
                if after is None:
                    raise RuntimeError(f'the policy node stopped sending diagnostics; log: {log}')
                after = _counts(after)
                stamps = set(sent['stamps'])
                with observer.lock:
                    latency = [(pub - obs) / 1e6 for obs, pub in observer.chunks if obs in stamps]
                first, last = min(stamps) / 1e9, max(stamps) / 1e9
                stalls = collections.Counter(
                    name for t, names in _waiting_warnings(log)
                    if first < t < last + params['input_timeout_s'] - 0.05 for name in names)
                results.append({'qos': reliability, 'size': f'{width}x{height}', 'rate': rate,
                                'sent': len(stamps), 'seconds': sent['seconds'],
                                'answered': after['published_chunks'] -
                                before['published_chunks'],
                                'chunks_seen': len(latency),
                                'dropped': after['dropped_frames'] - before['dropped_frames'],
                                'rejected': _delta(before, after, 'rejected.'),
                                'suppressed': _delta(before, after, 'suppressed.'),
                                'latency_ms': latency, 'stalls': stalls,
                                'max_gap_ms': float(np.diff(sorted(stamps)).max() / 1e6)})
                print_row(results[-1])
                before = after
        finally:
            if cam is not None:
                cam.stdin.close()
                try:
                    cam.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    cam.kill()
                    cam.wait()
            if observer is not None:
                observer.close()
            node.stop()
    return results


HEADER = ('| input QoS | size | rate [Hz] | sent | reached worker | answered | latest-wins '
          'drops | suppressed | rejected | lost | went stale | chunks/s | p50 [ms] | p95 [ms] |\n'
          '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|')


def print_row(r):
    suppressed, rejected = sum(r['suppressed'].values()), sum(r['rejected'].values())
    reached = r['answered'] + r['dropped'] + suppressed
    lost = r['sent'] - reached - rejected
    lat = np.asarray(r['latency_ms'])
    p50, p95 = ((f'{np.percentile(lat, 50):.0f}', f'{np.percentile(lat, 95):.0f}') if lat.size
                else ('-', '-'))
    sent = f'{r["sent"]}'
    if r['sent'] / r['seconds'] < 0.95 * r['rate']:   # the camera process fell behind
        sent += f' ({r["sent"] / r["seconds"]:.1f} Hz)'
    stalls = _fmt(r['stalls']) + (f'; camera gap {r["max_gap_ms"]:.0f} ms'
                                  if r['max_gap_ms'] > 2e3 / r['rate'] else '')
    print(f'| {r["qos"]} | {r["size"]} | {r["rate"]:g} | {sent} | {reached} | {r["answered"]} '
          f'| {r["dropped"]} | {_fmt(r["suppressed"])} | {_fmt(r["rejected"])} | {lost} '
          f'| {stalls} | {r["answered"] / r["seconds"]:.1f} | {p50} | {p95} |', flush=True)


def _summary(r):
    """One cell of the side-by-side table: answered + drops of sent, lost, chunks/s, p95."""
    lat = np.asarray(r['latency_ms'])
    lost = r['sent'] - r['answered'] - r['dropped'] - sum(r['suppressed'].values()) - sum(
        r['rejected'].values())
    p95 = f'{np.percentile(lat, 95):.0f} ms' if lat.size else '-'
    return (f'{r["answered"] + r["dropped"]}/{r["sent"]}, lost {lost}, '
            f'{r["answered"] / r["seconds"]:.1f}/s, p95 {p95}')


def print_side_by_side(results):
    qos = list(dict.fromkeys(r['qos'] for r in results))
    cells = {(r['size'], r['rate'], r['qos']): _summary(r) for r in results}
    print('\n| size | rate [Hz] | ' + ' | '.join(
        f'{q}: answered + latest-wins / sent, lost, chunks/s, p95' for q in qos) + ' |')
    print('|---|---|' + '---|' * len(qos))
    for size, rate in dict.fromkeys((r['size'], r['rate']) for r in results):
        row = [cells.get((size, rate, q), '-') for q in qos]
        print(f'| {size} | {rate:g} | ' + ' | '.join(row) + ' |')


def _sizes(text, train_size):
    out = []
    for item in text.split(','):
        if item == 'train':
            out.append((train_size, train_size))
            continue
        try:
            width, height = (int(v) for v in item.lower().split('x'))
        except ValueError:
            raise SystemExit(f'--sizes: got {item!r}, expected WIDTHxHEIGHT or train') from None
        out.append((width, height))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--role', choices=('camera',), help=argparse.SUPPRESS)
    parser.add_argument('--checkpoint-dir', default=os.path.join(REPO, 'checkpoints', 'default'),
                        help='checkpoint served by the node (default: %(default)s)')
    parser.add_argument('--sizes', default='train,640x480,1280x720',
                        help="camera sizes, WIDTHxHEIGHT; 'train' = the checkpoint's image size")
    parser.add_argument('--rates', default='15,30', help='camera rates [Hz]')
    parser.add_argument('--seconds', type=float, default=4.0,
                        help='seconds streamed per size and rate')
    parser.add_argument('--qos', default='reliable,best_effort',
                        help="the node's input reliability (qos_reliability), one node each")
    parser.add_argument('--depth', type=int, default=10, help="the node's qos_depth")
    parser.add_argument('--camera-depth', type=int, default=10,
                        help="history depth of the camera's (reliable) publishers")
    ns = parser.parse_args(argv)
    ns.checkpoint_dir = os.path.abspath(ns.checkpoint_dir)
    if ns.role == 'camera':
        return camera(ns)
    os.environ.update(DDS_ENV)   # this process's participant too, before rclpy starts one
    config, params = _config(ns.checkpoint_dir), default_policy_parameters()
    train = recipe_camera(ns.checkpoint_dir)['image_size']
    configs = [(w, h, float(r)) for w, h in _sizes(ns.sizes, train)
               for r in ns.rates.split(',')]
    print(f'checkpoint {ns.checkpoint_dir} ({config.plan}); node: default parameters, '
          f'num_threads {params["num_threads"]}, device {params["device"]}, qos_depth '
          f'{ns.depth}; camera: reliable, depth {ns.camera_depth}; {ns.seconds:g} s per line; '
          f'{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n', flush=True)
    print(HEADER, flush=True)
    t0, results = time.monotonic(), []
    with tempfile.TemporaryDirectory() as log_dir:
        for reliability in ns.qos.split(','):
            results += run_qos(ns, reliability, configs, config, params, log_dir)
    print_side_by_side(results)
    print(f'\n{time.monotonic() - t0:.0f} s; load average at the end '
          f'{os.getloadavg()[0]:.1f}. reached worker = answered + latest-wins drops + '
          'suppressed; lost = sent - reached - rejected (not delivered, overwritten in the '
          "node's input history, not synchronised, or pending when an input went stale); "
          'went stale: inputs the node found stale (> input_timeout_s) during the stream, by '
          "topic (its log's 'waiting for input' warnings), and the camera's longest gap "
          'between two sets when over two periods; '
          'latency: observation stamp to chunk publication.')
    return 0


if __name__ == '__main__':
    sys.exit(main())

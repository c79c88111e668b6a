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
The policy node over real DDS: one node process for the module, driven through scenarios.

The node is started the way a researcher starts it without ros2 launch (policy_launch
--autostart, which drives configure -> activate over the lifecycle services). The test side
is an in-process rclpy context in the node's domain: a 30 Hz stream of synthetic 64x48 RGB-D
(or point clouds) + camera info + joint states, injected malformed messages, and subscribers
for the trajectories, action chunks, status and diagnostics.
"""

import collections
import os
import subprocess
import sys
import threading
import time

from checkpoint_utils import cached_checkpoint
import numpy as np
from policy_scene import CX
from policy_scene import CY
from policy_scene import FX
from policy_scene import FY
from policy_scene import H
from policy_scene import INSTRUCTION
from policy_scene import scene
from policy_scene import W
from policy_scene import wait_for
import pytest
from repo_paths import REPO_ROOT
from spatialvla_ros.core_types import stamp_to_ns
import yaml

REPO = REPO_ROOT
COLOR_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8')
NODE = '/policy_node'
TOPICS = {'color': '/camera/color/image_raw', 'depth': '/camera/depth/image_raw',
          'camera_info': '/camera/color/camera_info', 'cloud': '/camera/depth/points',
          'joints': '/joint_states', 'instruction': '/spatialvla/instruction',
          'side_color': '/side/color/image_raw', 'side_cloud': '/side/depth/points',
          'side_camera_info': '/side/color/camera_info'}


def optical_points(depth):
    u, v = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    return np.stack([(u - CX) * depth / FX, (v - CY) * depth / FY, depth], axis=-1)


class Rig:
    """Test-side ROS participant: publishers, a 30 Hz stream thread and output recorders."""

    def __init__(self, domain_id, joint_names, state):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSDurabilityPolicy
        from rclpy.qos import QoSProfile
        from rclpy.qos import QoSReliabilityPolicy
        from rclpy.signals import SignalHandlerOptions
        from diagnostic_msgs.msg import DiagnosticArray
        from lifecycle_msgs.srv import ChangeState
        from rcl_interfaces.srv import SetParameters
        from sensor_msgs.msg import CameraInfo
        from sensor_msgs.msg import Image
        from sensor_msgs.msg import JointState
        from sensor_msgs.msg import PointCloud2
        from spatialvla_ros_interfaces.msg import ActionChunk
        from spatialvla_ros_interfaces.msg import PolicyStatus
        from std_msgs.msg import String
        from trajectory_msgs.msg import JointTrajectory

        self.types = {'color': Image, 'depth': Image, 'camera_info': CameraInfo,
                      'cloud': PointCloud2, 'joints': JointState, 'side_color': Image,
                      'side_cloud': PointCloud2, 'side_camera_info': CameraInfo}
        self.joint_names, self.state = list(joint_names), np.asarray(state, np.float64)
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id,
                   signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node('policy_node_test_rig', context=self.context)
        qos = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
        self.pubs = {k: self.node.create_publisher(self.types[k], TOPICS[k], qos)
                     for k in self.types}
        latched = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                             durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
        self.pubs['instruction'] = self.node.create_publisher(String, TOPICS['instruction'],
                                                              latched)
        self.lock = threading.Lock()
        self.trajectories, self.chunks = [], []
        self.status = self.diagnostics = None
        self.node.create_subscription(JointTrajectory, '/joint_trajectory',
                                      lambda m: self._record(self.trajectories, m), qos)
        self.node.create_subscription(ActionChunk, '/spatialvla/action_chunk',
                                      lambda m: self._record(self.chunks, m), qos)
        self.node.create_subscription(PolicyStatus, '/spatialvla/status',
                                      lambda m: setattr(self, 'status', m), qos)
        self.node.create_subscription(DiagnosticArray, '/diagnostics',
                                      lambda m: setattr(self, 'diagnostics', m), qos)
        self.change_state = self.node.create_client(ChangeState, f'{NODE}/change_state')
        self.set_parameters = self.node.create_client(SetParameters, f'{NODE}/set_parameters')
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self.spinner.start()
        # Stream state: only the stream thread publishes, so stamps stay in order per topic.
        self.mode, self.streaming, self.running = 'depth', True, True
        self.muted = set()  # kinds of a good set that are not published (a dead camera)
        self.every = 1            # publish a set every `every` ticks of 30 Hz (a slower camera)
        self.burst = None         # make_bad(rig): publish a malformed set instead of a good one
        self.frames_left = None   # good sets still to publish before streaming stops (None: all)
        self.tick = 0
        self.frames = collections.OrderedDict()   # stamp_ns -> messages of a good set
        self.bad_stamps = set()
        self.injections = collections.deque()
        self.frame_index = 0
        self._last_stamp = 0
        self.streamer = threading.Thread(target=self._stream, daemon=True)
        self.streamer.start()

    def _record(self, store, msg):
        with self.lock:
            store.append((time.monotonic(), msg))

    def close(self):
        self.running = False
        self.streamer.join(5)
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()

    # ---------------------------------------------------------------- messages
    def stamp(self, offset_ns=0):
        from spatialvla_ros.perception.conversions import header_fields
        if offset_ns == 0:
            self._last_stamp = max(time.time_ns(), self._last_stamp + 1000)
        else:  # a set of its own just after the last one (never shared by two sets)
            self._last_stamp += offset_ns
        return self._last_stamp, header_fields(self._last_stamp)

    def make(self, kind, values):
        from spatialvla_ros.perception.messages import make_message
        return make_message(self.types[kind], values)

    def good_set(self, stamp_ns, i):
        from spatialvla_ros.perception import conversions as cv
        rgb, depth = scene(i)
        K = np.array([[FX, 0, CX], [0, FY, CY], [0, 0, 1]])
        msgs = {'camera_info': self.make('camera_info', cv.camera_info_fields(K, W, H, stamp_ns))}
        msgs['color'] = self.make('color', cv.rgb_to_image_fields(
            rgb, COLOR_ENCODINGS[i % len(COLOR_ENCODINGS)], stamp_ns, row_padding=i % 2 * 4))
        if self.mode in ('depth', 'multi'):
            msgs['depth'] = self.make('depth', cv.depth_to_image_fields(
                depth, ('32FC1', '16UC1')[i % 2], stamp_ns))
        if self.mode == 'multi':  # a second camera giving a point cloud
            msgs['side_camera_info'] = msgs['camera_info']
            msgs['side_color'] = msgs['color']
            msgs['side_cloud'] = self.make('cloud', cv.pointcloud2_fields_xyzrgb(
                optical_points(depth)[::2, ::2], None, stamp_ns))
        elif self.mode == 'cloud':
            xyz = optical_points(depth)
            colors = rgb
            if i % 2:  # unorganised: the valid points only, as a flat list
                keep = np.isfinite(xyz).all(axis=-1)
                xyz, colors = xyz[keep], rgb[keep]
            msgs['cloud'] = self.make('cloud', cv.pointcloud2_fields_xyzrgb(xyz, colors,
                                                                            stamp_ns))
        return msgs

    def joint_state(self, stamp_ns, names=None, positions=None):
        from spatialvla_ros.perception.conversions import header_fields
        if names is None:  # shuffled order + a joint the policy does not use
            order = list(reversed(range(len(self.joint_names))))
            names = [self.joint_names[j] for j in order] + ['panda_finger_joint2']
            positions = [self.state[j] for j in order] + [0.01]
        return self.make('joints', {'header': header_fields(stamp_ns), 'name': names,
                                    'position': np.asarray(positions, np.float64)})

    def _publish(self, msgs):
        for kind, msg in msgs.items():
            self.pubs[kind].publish(msg)

    def _stream(self):
        period, tick = 1.0 / 30.0, time.monotonic()
        while self.running:
            stamp_ns, _ = self.stamp()
            self.pubs['joints'].publish(self.joint_state(stamp_ns))
            if self.streaming and self.tick % self.every == 0 and self.burst is not None:
                self.burst(self)
            elif self.streaming and self.tick % self.every == 0:
                msgs = self.good_set(stamp_ns, self.frame_index)
                with self.lock:
                    self.frames[stamp_ns] = msgs
                    while len(self.frames) > 600:
                        self.frames.popitem(last=False)
                self._publish({k: m for k, m in msgs.items() if k not in self.muted})
                self.frame_index += 1
                while self.injections:
                    self.injections.popleft()(self)
                if self.frames_left is not None:
                    self.frames_left -= 1
                    self.streaming = self.frames_left > 0
            self.tick += 1
            tick += period
            time.sleep(max(0.0, tick - time.monotonic()))

    def inject(self, make_bad):
        """Queue `make_bad(rig)`; it runs in the stream thread between two good frames."""
        self.injections.append(make_bad)

    # ---------------------------------------------------------------- node control
    def call(self, client, request, timeout=60.0):
        assert client.wait_for_service(timeout_sec=20.0), client.srv_name
        future = client.call_async(request)
        assert wait_for(future.done, timeout), f'{client.srv_name}: no answer'
        return future.result()

    def transition(self, label):
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState
        ids = {'configure': Transition.TRANSITION_CONFIGURE,
               'activate': Transition.TRANSITION_ACTIVATE,
               'deactivate': Transition.TRANSITION_DEACTIVATE,
               'cleanup': Transition.TRANSITION_CLEANUP}
        request = ChangeState.Request()
        request.transition.id = ids[label]
        return self.call(self.change_state, request).success

    def set_params(self, **values):
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter
        params = [Parameter(k.replace('__', '.'), value=v).to_parameter_msg()
                  for k, v in values.items()]
        result = self.call(self.set_parameters, SetParameters.Request(parameters=params))
        assert all(r.successful for r in result.results), [r.reason for r in result.results]

    def counters(self):
        if self.diagnostics is None or not self.diagnostics.status:
            return {}
        return {kv.key: kv.value for kv in self.diagnostics.status[0].values}

    def received_since(self, t0):
        with self.lock:
            return [m for t, m in self.trajectories if t >= t0]


def stamp_ns(time_msg):
    return stamp_to_ns(time_msg)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """Tiny checkpoint, the node (policy_launch --autostart) and the test rig, once."""
    from spatialvla_ros.policies.configuration_policy import PolicyConfig
    ckpt = cached_checkpoint(tmp_path_factory, 'late_gemma')
    config = PolicyConfig.from_yaml(os.path.join(ckpt, 'config.yaml'))
    domain = 220 + os.getpid() % 12
    saved = {k: os.environ.get(k) for k in ('ROS_AUTOMATIC_DISCOVERY_RANGE',
                                            'FASTDDS_BUILTIN_TRANSPORTS')}
    os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
                      FASTDDS_BUILTIN_TRANSPORTS='LARGE_DATA')
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED='1',
               OMP_NUM_THREADS='1')
    params = tmp_path_factory.mktemp('params') / 'policy_node.yaml'
    params.write_text(yaml.safe_dump({'policy_node': {'ros__parameters': {
        'checkpoint_dir': '/nonexistent/overridden/on/the/command/line', 'seed': 0,
        'input_timeout_s': 0.6, 'max_observation_age_s': 30.0, 'sync_slop_s': 0.005,
        'status_rate_hz': 10.0, 'warn_throttle_s': 0.5,
        # A rate cap well under the 30 Hz input makes "latest wins" drops certain even on a
        # machine where one inference of the tiny model takes less than a frame period.
        'max_rate_hz': 5.0}}}))
    proc = subprocess.Popen(
        [sys.executable, '-m', 'spatialvla_ros.tools.policy_launch', '--params-file',
         str(params), '--checkpoint-dir', ckpt, '--autostart'],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = []
    drain = threading.Thread(target=lambda: log.extend(iter(proc.stdout.readline, '')),
                             daemon=True)
    drain.start()
    lower = np.asarray(config.action.lower_limits)
    upper = np.asarray(config.action.upper_limits)
    rig = Rig(domain, config.action.names, (lower + upper) / 2)
    rig.pubs['instruction'].publish(_string(INSTRUCTION))
    try:
        yield {'rig': rig, 'proc': proc, 'log': log, 'config': config, 'ckpt': ckpt}
    finally:
        rig.close()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        drain.join(5)
        assert 'Traceback' not in ''.join(log), ''.join(log[-30:])  # a clean exit on SIGTERM
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _string(text):
    from std_msgs.msg import String
    return String(data=text)


def _log_tail(setup, n=30):
    return ''.join(setup['log'][-n:])


def test_streams_trajectories_of_the_right_shape(setup):
    rig, config = setup['rig'], setup['config']
    act = config.action
    assert wait_for(lambda: len(rig.trajectories) >= 4, 90), _log_tail(setup)
    with rig.lock:
        trajs = [m for _, m in rig.trajectories]
        chunks = {stamp_ns(m.observation_stamp): m for _, m in rig.chunks}
        frames = dict(rig.frames)
    for traj in trajs:
        assert list(traj.joint_names) == list(act.names)
        assert len(traj.points) == act.chunk_size
        assert stamp_ns(traj.header.stamp) in frames  # an observation's stamp, never invented
        for k, point in enumerate(traj.points):
            assert len(point.positions) == act.action_dim
            assert stamp_ns(point.time_from_start) == pytest.approx((k + 1) * act.dt * 1e9,
                                                                    abs=1)
        positions = np.array([p.positions for p in traj.points])
        assert np.all(np.isfinite(positions))
        assert np.all(positions >= np.asarray(act.lower_limits) - 1e-6)
        assert np.all(positions <= np.asarray(act.upper_limits) + 1e-6)
    traj = trajs[-1]
    s = stamp_ns(traj.header.stamp)
    assert wait_for(lambda: any(stamp_ns(m.observation_stamp) == s for _, m in rig.chunks), 5)
    chunks = {stamp_ns(m.observation_stamp): m for _, m in rig.chunks}
    chunk = chunks[s]
    assert (chunk.plan, chunk.horizon, chunk.action_dim) == (config.plan, act.chunk_size,
                                                             act.action_dim)
    assert list(chunk.names) == list(act.names) and chunk.dt == pytest.approx(act.dt)
    assert chunk.inference_latency > 0
    positions = np.array([p.positions for p in traj.points])
    np.testing.assert_allclose(np.asarray(chunk.actions).reshape(positions.shape), positions,
                               atol=1e-6)
    # The same observation through the policy offline (same seed) gives the same chunk: the
    # node fed the model this very frame, joint state (reordered by name) and instruction.
    from spatialvla_ros.perception.observation_builder import ObservationBuilder
    from spatialvla_ros.policies.policy_spatialvla import SpatialVLAPolicy
    policy = SpatialVLAPolicy.from_pretrained(setup['ckpt'])
    builder = ObservationBuilder(policy.config.data, policy.config.encoder3d, act.names,
                                 act.state_dim)
    msgs = frames[s]
    obs = builder.build({f'front/{k}': m for k, m in msgs.items()}, rig.joint_state(s),
                        INSTRUCTION, s)
    expected = _safe(config, policy.predict_chunk(obs, seed=0), rig.state)
    np.testing.assert_allclose(positions, expected, atol=1e-4)
    # Latest wins: at 30 Hz in and at most 5 chunks per second out, frames were dropped.
    assert wait_for(lambda: rig.status is not None and rig.status.dropped_frames > 0, 5), (
        rig.counters(), _log_tail(setup))
    assert rig.status.rejected_messages == 0, rig.status.last_rejection_reason


def _safe(config, chunk, state, **values):
    """Give what the node's safety filter (default parameters unless given) makes of a chunk."""
    from spatialvla_ros.nodes.policy_parameters import NODE_PARAMETERS
    from spatialvla_ros.nodes.policy_parameters import safety_config
    from spatialvla_ros.policies.safety import SafetyFilter
    values = {p.name: values.get(p.name, p.default) for p in NODE_PARAMETERS}
    act = config.action
    safety = SafetyFilter(safety_config(act, values)[0], act.action_dim)
    return safety(chunk, (np.arange(act.chunk_size) + 1) * act.dt, state).chunk


def _bad_color(field_values):
    def make(rig):
        from spatialvla_ros.perception import conversions as cv
        stamp, _ = rig.stamp(1_000_000)
        msgs = rig.good_set(stamp, 0)
        values = cv.rgb_to_image_fields(scene(0)[0], 'rgb8', stamp)
        values.update(field_values(values))
        msgs['color'] = rig.make('color', values)
        rig.bad_stamps.add(stamp)
        rig._publish(msgs)
    return make


def _bad_depth(field_values, encoding='32FC1', depth=None):
    def make(rig):
        from spatialvla_ros.perception import conversions as cv
        stamp, _ = rig.stamp(1_000_000)
        msgs = rig.good_set(stamp, 0)
        values = cv.depth_to_image_fields(scene(0)[1] if depth is None else depth, encoding,
                                          stamp)
        values.update(field_values(values))
        msgs['depth'] = rig.make('depth', values)
        rig.bad_stamps.add(stamp)
        rig._publish(msgs)
    return make


def _bad_info(rig):
    from spatialvla_ros.perception import conversions as cv
    stamp, _ = rig.stamp(1_000_000)
    msgs = rig.good_set(stamp, 0)
    msgs['camera_info'] = rig.make('camera_info', cv.camera_info_fields(np.zeros((3, 3)), W, H,
                                                                        stamp))
    rig.bad_stamps.add(stamp)
    rig._publish(msgs)


def _shifted_set(offset_ns):
    def make(rig):
        stamp = rig._last_stamp + offset_ns
        rig.bad_stamps.add(stamp)
        rig._publish(rig.good_set(stamp, 0))
    return make


def _bad_joints(rig):
    stamp, _ = rig.stamp(1_000_000)
    rig.pubs['joints'].publish(rig.joint_state(stamp, ['foo', 'bar'], [0.0, 0.0]))


def _bad_cloud(field_values):
    def make(rig):
        from spatialvla_ros.perception import conversions as cv
        stamp, _ = rig.stamp(1_000_000)
        msgs = rig.good_set(stamp, 0)
        values = cv.pointcloud2_fields_xyzrgb(optical_points(scene(0)[1]), None, stamp)
        values.update(field_values(values))
        msgs['cloud'] = rig.make('cloud', values)
        rig.bad_stamps.add(stamp)
        rig._publish(msgs)
    return make


NAN_DEPTH = np.full((H, W), np.nan, np.float32)
INF_DEPTH = np.full((H, W), np.inf, np.float32)
DEPTH_CASES = {
    'encoding': [_bad_color(lambda v: {'encoding': 'yuv422'}),
                 _bad_depth(lambda v: {'encoding': 'rgb8'})],
    'size': [_bad_color(lambda v: {'step': v['step'] - 1}),
             _bad_color(lambda v: {'data': v['data'][:len(v['data']) // 2]}),
             _bad_depth(lambda v: {'data': v['data'][:-7]})],
    'nonfinite': [_bad_depth(lambda v: {}, depth=NAN_DEPTH),
                  _bad_depth(lambda v: {}, depth=INF_DEPTH)],
    'camera_info': [_bad_info],
    'future_stamp': [_shifted_set(10_000_000_000)],
    'out_of_order': [_shifted_set(-2_000_000_000)],
    'joint_names': [_bad_joints],
}
CLOUD_CASES = {
    'empty_cloud': [_bad_cloud(lambda v: {'height': 1, 'width': 0, 'row_step': 0,
                                          'data': v['data'][:0]})],
    'missing_field': [_bad_cloud(lambda v: {'fields': v['fields'][:2]})],
    'size': [_bad_cloud(lambda v: {'data': v['data'][:-16]})],
    'nonfinite': [_bad_cloud(lambda v: {'data': np.full(len(v['data']) // 4, np.nan,
                                                        np.float32).view(np.uint8)})],
}


def _barrage(setup, cases, rounds=3):
    """Inject every malformed case between good frames; check counters and outputs."""
    rig = setup['rig']
    t0 = time.monotonic()
    for _ in range(rounds):
        for makers in cases.values():
            for make in makers:
                rig.inject(make)
                time.sleep(0.1)
    assert wait_for(lambda: all(int(rig.counters().get(f'rejected.{r}', 0)) >= 1
                                for r in cases), 10), (rig.counters(), _log_tail(setup))
    assert setup['proc'].poll() is None, _log_tail(setup)
    # Publishing goes on, and only ever for good frames.
    assert wait_for(lambda: len(rig.received_since(t0)) >= 2, 30), _log_tail(setup)
    with rig.lock:
        published = {stamp_ns(m.header.stamp) for _, m in rig.trajectories}
        good = set(rig.frames)
    assert not published & rig.bad_stamps
    assert {stamp_ns(m.header.stamp) for m in rig.received_since(t0)} <= good
    status = rig.status
    assert status.rejected_messages >= len(cases)
    counters = rig.counters()
    assert sum(int(v) for k, v in counters.items() if k.startswith('rejected.')) == int(
        counters['rejected_messages'])
    # Each warning names the topic and the reason.
    text = ''.join(setup['log'])
    for reason in cases:
        assert f'dropped ({reason})' in text, reason


def test_malformed_messages_are_dropped_and_counted(setup):
    assert wait_for(lambda: len(setup['rig'].trajectories) >= 1, 90), _log_tail(setup)
    _barrage(setup, DEPTH_CASES)
    text = ''.join(setup['log'])
    assert f"{TOPICS['color']}: dropped (encoding): color.encoding: got 'yuv422'" in text
    assert f"{TOPICS['camera_info']}: dropped (camera_info)" in text


def test_watchdog_stops_and_resumes(setup):
    rig = setup['rig']
    from spatialvla_ros_interfaces.msg import PolicyStatus
    assert wait_for(lambda: len(rig.trajectories) >= 1, 90), _log_tail(setup)
    rig.streaming = False
    assert wait_for(lambda: rig.status.state == PolicyStatus.STATE_WAITING_FOR_INPUT, 10)
    assert TOPICS['color'] in rig.status.last_rejection_reason
    assert TOPICS['joints'] not in rig.status.last_rejection_reason  # still streaming
    t_wait = time.monotonic()
    time.sleep(1.5)
    assert rig.received_since(t_wait) == []
    rig.streaming = True
    t_back = time.monotonic()
    assert wait_for(lambda: len(rig.received_since(t_back)) >= 1, 30), _log_tail(setup)
    assert wait_for(lambda: rig.status.state == PolicyStatus.STATE_ACTIVE, 10)


def _frames_after(rig, wall_ns):
    with rig.lock:
        return [s for s in rig.frames if s > wall_ns]


def _answered_after(rig, wall_ns):
    with rig.lock:
        return {stamp_ns(m.header.stamp) for _, m in rig.trajectories} & {
            s for s in rig.frames if s > wall_ns}


def test_slow_camera_and_first_good_frame_after_a_burst_are_answered(setup):
    """A set that arrives after a gap longer than input_timeout_s is judged on its own."""
    rig = setup['rig']
    from spatialvla_ros_interfaces.msg import PolicyStatus
    assert wait_for(lambda: len(rig.trajectories) >= 1, 90), _log_tail(setup)
    # 1.5 Hz: every set comes 0.67 s after the previous one, longer than the 0.6 s timeout.
    w0, n0 = time.time_ns(), len(setup['log'])
    rig.every = 20
    time.sleep(6.0)
    rig.every = 1
    slow = _frames_after(rig, w0)
    answered = _answered_after(rig, w0)
    assert len(slow) >= 6 and len(answered) >= len(slow) // 2, (len(answered), len(slow),
                                                                _log_tail(setup))
    # The camera is stale for a moment before each set: too short a state to be logged, so no
    # 'waiting' / 'resuming' pair per frame (at most one left over from the previous test).
    changes = [line for line in setup['log'][n0:] if 'fresh again' in line or
               'waiting for input' in line]
    assert len(changes) <= 1, changes
    # A burst of malformed colour images longer than the timeout, then one good set.
    rig.burst = _bad_color(lambda v: {'encoding': 'yuv422'})
    assert wait_for(lambda: rig.status.state == PolicyStatus.STATE_WAITING_FOR_INPUT, 10)
    w1 = time.time_ns()
    rig.frames_left = 1
    rig.burst = None
    assert wait_for(lambda: not rig.streaming, 10)
    first = _frames_after(rig, w1)
    assert len(first) == 1
    assert wait_for(lambda: _answered_after(rig, w1), 10), _log_tail(setup)
    rig.frames_left = None
    rig.streaming = True
    t_back = time.monotonic()
    assert wait_for(lambda: len(rig.received_since(t_back)) >= 1, 30), _log_tail(setup)


def test_long_instruction_is_rejected_and_logged_in_brief(setup):
    """Instructions have a length limit; the log shows an excerpt, never the whole text."""
    rig = setup['rig']
    assert wait_for(lambda: len(rig.trajectories) >= 1, 90), _log_tail(setup)
    limit = 1000  # the default of max_instruction_chars
    rig.pubs['instruction'].publish(_string('pick up the red cube ' * 5000))  # 105 kB
    assert wait_for(lambda: int(rig.counters().get('rejected.too_long', 0)) >= 1, 10), (
        rig.counters())
    long_ok = 'place it in the tray ' * (limit // 21)
    rig.pubs['instruction'].publish(_string(long_ok))
    assert wait_for(lambda: any(f'({len(long_ok.strip())} chars)' in line
                                for line in setup['log']), 10), _log_tail(setup)
    rig.pubs['instruction'].publish(_string(INSTRUCTION))
    assert wait_for(lambda: any(repr(INSTRUCTION) in line for line in setup['log'][-20:]), 10)
    # The lines about instructions (taken or refused) show an excerpt, never the whole text.
    about = [line for line in setup['log'] if 'instruction (' in line or '(too_long)' in line]
    assert len(about) >= 3 and max(len(line) for line in about) < 300, about
    t0 = time.monotonic()
    assert wait_for(lambda: len(rig.received_since(t0)) >= 1, 30), _log_tail(setup)
    assert rig.counters()['num_threads'] == '1'  # the default torch thread count


def test_camera_mounts_from_the_topic_are_validated_and_counted(setup):
    """A malformed or stale mount on the mount topic is rejected and counted, never used."""
    rig = setup['rig']
    from geometry_msgs.msg import TransformStamped
    from rclpy.qos import QoSDurabilityPolicy
    from rclpy.qos import QoSProfile
    from rclpy.qos import QoSReliabilityPolicy
    from spatialvla_ros.perception import conversions as cv
    from spatialvla_ros.perception.messages import make_message
    latched = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                         durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
    pub = rig.node.create_publisher(TransformStamped, '/spatialvla/camera_pose', latched)
    try:
        assert wait_for(lambda: len(rig.trajectories) >= 1, 90), _log_tail(setup)
        for quat, child, reason in (((0.0, 0.0, 0.0, 2.0), 'camera_color_optical_frame',
                                     'mount'),
                                    ((0.0, 0.0, 0.0, 1.0), 'unknown_frame', 'mount'),
                                    ((float('nan'), 0.0, 0.0, 1.0), 'camera_color_optical_frame',
                                     'nonfinite')):
            before = int(rig.counters().get(f'rejected.{reason}', 0))
            pub.publish(make_message(TransformStamped, cv.transform_stamped_fields(
                (0.9, 0.0, 0.85), quat, time.time_ns(), 'panda_link0', child)))
            assert wait_for(lambda: int(rig.counters().get(f'rejected.{reason}', 0)) > before,
                            10), rig.counters()
        assert '/spatialvla/camera_pose.transform.rotation' in rig.counters()[
            'last_rejection_reason']
        t0 = time.monotonic()   # the configured mount stays in force: chunks keep coming
        assert wait_for(lambda: len(rig.received_since(t0)) >= 1, 30), _log_tail(setup)
    finally:
        rig.node.destroy_publisher(pub)


def test_lifecycle_reconfigure_to_point_clouds(setup):
    """Deactivate/cleanup, configure without a checkpoint (fails, node lives), then clouds."""
    rig, ckpt = setup['rig'], setup['ckpt']
    from spatialvla_ros_interfaces.msg import PolicyStatus
    assert rig.transition('deactivate')
    assert wait_for(lambda: rig.status.state == PolicyStatus.STATE_INACTIVE, 10)
    t_off = time.monotonic()
    time.sleep(0.8)
    assert rig.received_since(t_off + 0.3) == []
    assert rig.transition('cleanup')
    rig.set_params(checkpoint_dir='')
    assert not rig.transition('configure')
    assert wait_for(lambda: rig.status.state == PolicyStatus.STATE_ERROR, 10)
    assert 'checkpoint_dir' in rig.status.last_rejection_reason
    assert setup['proc'].poll() is None
    assert wait_for(lambda: rig.counters().get('warmup_s') == '0.000', 10), rig.counters()
    rig.mode = 'cloud'
    rig.set_params(checkpoint_dir=ckpt, cameras__front__depth_topic='',
                   cameras__front__cloud_topic=TOPICS['cloud'], num_threads=2)
    assert rig.transition('configure'), _log_tail(setup)
    # Configure ran one warm-up chunk (eager: compile defaults to false).
    assert wait_for(lambda: float(rig.counters().get('warmup_s', 0)) > 0, 10), rig.counters()
    assert 'compiled False, warm-up chunk' in _log_tail(setup, 200)
    assert rig.transition('activate')
    t_on = time.monotonic()
    assert wait_for(lambda: rig.counters().get('num_threads') == '2', 10), rig.counters()
    assert wait_for(lambda: len(rig.received_since(t_on)) >= 3, 60), _log_tail(setup)
    with rig.lock:
        frames = dict(rig.frames)
    stamps = {stamp_ns(m.header.stamp) for m in rig.received_since(t_on)}
    assert stamps <= set(frames)
    assert all('cloud' in frames[s] for s in stamps)
    _barrage(setup, CLOUD_CASES, rounds=2)


def _two_cameras(config):
    import dataclasses
    from spatialvla_ros.perception.configuration import CameraConfig
    side = CameraConfig(name='side', color_topic=TOPICS['side_color'], depth_topic='',
                        camera_info_topic=TOPICS['side_camera_info'],
                        cloud_topic=TOPICS['side_cloud'], base_from_camera_xyz=(0.3, 1.0, 0.8),
                        base_from_camera_quat=(0.0, 0.0, 0.7071068, 0.7071068))
    cameras = (config.data.cameras[0], side)
    return dataclasses.replace(config, data=dataclasses.replace(config.data, cameras=cameras))


def test_two_cameras_depth_and_cloud(setup, tmp_path_factory):
    """A two-camera checkpoint served by the same process; one dead camera is named."""
    rig = setup['rig']
    from spatialvla_ros_interfaces.msg import PolicyStatus
    ckpt = cached_checkpoint(tmp_path_factory, key='two_cameras', edit_config=_two_cameras)
    rig.transition('deactivate')
    assert rig.transition('cleanup')
    rig.mode = 'multi'
    rig.set_params(checkpoint_dir=ckpt, cameras__front__depth_topic=TOPICS['depth'],
                   cameras__front__cloud_topic='', num_threads=1)
    assert rig.transition('configure'), _log_tail(setup)
    assert rig.transition('activate')
    t_on = time.monotonic()
    assert wait_for(lambda: len(rig.received_since(t_on)) >= 2, 60), _log_tail(setup)
    with rig.lock:
        frames = dict(rig.frames)
    stamps = {stamp_ns(m.header.stamp) for m in rig.received_since(t_on)}
    assert stamps <= set(frames)
    assert all('side_cloud' in frames[s] for s in stamps)
    rig.muted = {'side_cloud'}
    assert wait_for(lambda: rig.status.state == PolicyStatus.STATE_WAITING_FOR_INPUT, 10)
    assert TOPICS['side_cloud'] in rig.status.last_rejection_reason
    assert TOPICS['depth'] not in rig.status.last_rejection_reason
    rig.muted = set()
    assert wait_for(lambda: rig.status.state == PolicyStatus.STATE_ACTIVE, 10)


def _chunks_since(rig, t0):
    with rig.lock:
        return [m for t, m in rig.chunks if t >= t0]


def test_dry_run_publishes_all_but_the_command(setup):
    """dry_run: action chunks, status and diagnostics go on; no trajectory goes out."""
    rig = setup['rig']
    assert wait_for(lambda: len(rig.received_since(time.monotonic() - 1.0)) >= 1, 60), (
        _log_tail(setup))
    rig.set_params(dry_run=True)
    time.sleep(1.0)  # a chunk being published when the parameter changed may still go out
    t0 = time.monotonic()
    assert wait_for(lambda: len(_chunks_since(rig, t0)) >= 3, 60), _log_tail(setup)
    assert wait_for(lambda: rig.counters().get('dry_run') == 'True', 10), rig.counters()
    status_stamp = stamp_ns(rig.status.header.stamp)
    assert wait_for(lambda: stamp_ns(rig.status.header.stamp) > status_stamp, 10)
    assert rig.received_since(t0) == []
    rig.set_params(dry_run=False)
    t1 = time.monotonic()
    assert wait_for(lambda: len(rig.received_since(t1)) >= 1, 60), _log_tail(setup)


def test_a_rejected_chunk_is_counted_and_never_published(setup):
    """safety_mode reject with a velocity limit no chunk keeps: counted, nothing goes out."""
    rig = setup['rig']
    assert rig.transition('deactivate')
    assert rig.transition('cleanup')
    rig.set_params(safety_mode='reject', velocity_limit_scale=1e-3)
    assert rig.transition('configure'), _log_tail(setup)
    assert rig.transition('activate')
    t0 = time.monotonic()
    assert wait_for(lambda: int(rig.counters().get('safety.rejected_chunks', 0)) >= 3, 60), (
        rig.counters(), _log_tail(setup))
    counters = rig.counters()
    assert int(counters['safety.rejected.velocity']) >= 3
    assert counters['safety.clamped_chunks'] == '0'
    assert int(counters['suppressed.unsafe']) == int(counters['safety.rejected_chunks'])
    assert rig.received_since(t0) == [] and _chunks_since(rig, t0) == []
    log = _log_tail(setup, 200)
    assert 'safety filter: chunk rejected (' in log and 'inference failed' not in log
    # Back to the defaults: chunks are clamped into the limits and published again.
    assert rig.transition('deactivate')
    assert rig.transition('cleanup')
    rig.set_params(safety_mode='clamp', velocity_limit_scale=1.0)
    assert rig.transition('configure'), _log_tail(setup)
    assert rig.transition('activate')
    t1 = time.monotonic()
    assert wait_for(lambda: len(rig.received_since(t1)) >= 1, 60), _log_tail(setup)


def test_help_answers_without_ros():
    for module, word in (('spatialvla_ros.nodes.policy_node', 'input_timeout_s'),
                         ('spatialvla_ros.tools.policy_launch', '--autostart')):
        out = subprocess.run([sys.executable, '-m', module, '--help'], capture_output=True,
                             text=True, timeout=60, env=dict(os.environ, ROS_DOMAIN_ID='231'))
        assert out.returncode == 0, out.stderr
        assert 'usage:' in out.stdout and word in out.stdout

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

"""The policy node's ROS-free pieces: worker, watchdog, stamps, live inputs, parameters."""

import ast
import os
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
import yaml

REPO = REPO_ROOT


def test_latest_wins_worker_runs_the_newest_job_and_counts_drops():
    from spatialvla_ros.nodes.policy_runtime import LatestWinsWorker
    gate, started, seen, starts = threading.Event(), threading.Event(), [], []

    def run(job):
        seen.append(job)
        starts.append(time.monotonic())
        if job == 'a':
            started.set()
            gate.wait(10)

    worker = LatestWinsWorker(run)
    worker.start()
    worker.submit('a')
    assert started.wait(10)
    assert [worker.submit(j) for j in 'bcd'] == [False, True, True]  # b, c replaced: dropped
    assert worker.dropped == 2 and worker.busy
    gate.set()
    assert wait_for(lambda: worker.processed == 2, 10)
    assert seen == ['a', 'd']  # never queued, never run out of order
    worker.min_period_s = 0.2  # rate cap: the next job starts >= 0.2 s after the previous
    worker.submit('e')
    assert wait_for(lambda: worker.processed == 3, 10)
    worker.submit('f')
    assert wait_for(lambda: worker.processed == 4, 10)
    assert starts[-1] - starts[-2] >= 0.2
    assert worker.stop()
    assert worker.submit('g') is False and seen[-1] == 'f'


def test_worker_survives_a_failing_job():
    from spatialvla_ros.nodes.policy_runtime import LatestWinsWorker
    errors, seen = [], []
    worker = LatestWinsWorker(lambda j: seen.append(j) if j else 1 / 0, on_error=errors.append)
    worker.start()
    worker.submit(0)
    assert wait_for(lambda: worker.processed == 1, 10)
    worker.submit(1)
    assert wait_for(lambda: worker.processed == 2, 10)
    worker.stop()
    assert seen == [1] and isinstance(errors[0], ZeroDivisionError)


def test_watchdog_rejections_and_stamps_with_a_fake_clock():
    from spatialvla_ros.nodes import policy_runtime
    from spatialvla_ros.perception.conversions import MessageError
    now = [100.0]
    watchdog = policy_runtime.InputWatchdog(0.5, clock=lambda: now[0])
    watchdog.reset(['/a', '/b'])
    assert watchdog.reason().startswith('waiting for input: no message yet on /a; no message '
                                        'yet on /b')
    watchdog.feed('/a')
    watchdog.feed('/b')
    assert watchdog.reason() == '' and watchdog.stale() == []
    now[0] += 0.75
    watchdog.feed('/b')
    assert [name for name, _ in watchdog.stale()] == ['/a']
    assert 'no message on /a for 0.75 s (timeout 0.50 s)' in watchdog.reason()

    log = policy_runtime.RejectionLog(throttle_s=1.0, clock=lambda: now[0])
    assert log.record('/a', MessageError('size', 'x'))[1] is True
    assert log.record('/a', MessageError('size', 'y'))[1] is False  # per topic and reason
    assert log.record('/b', MessageError('size', 'z'))[1] is True
    assert log.record('/a', MessageError('encoding', 'w'))[1] is True
    now[0] += 1.5
    assert log.record('/a', MessageError('size', 'v'))[1] is True
    assert log.record('/a', KeyError('u'))[1] is True      # not a MessageError: 'invalid'
    total, by_reason, last = log.snapshot()
    assert total == 6 and by_reason['size'] == 4 and by_reason['encoding'] == 1
    assert by_reason['invalid'] == 1 and last == "/a: dropped (invalid): 'u'"

    stamps = policy_runtime.StampChecker(future_tolerance_s=0.1)
    t = 1_000 * 10 ** 9
    stamps.check('/a', t, now_ns=t)
    stamps.commit('/a', t)
    stamps.check('/a', t, now_ns=t)  # a repeated stamp is left to the synchroniser
    for stamp, reason in ((t - 1, 'out_of_order'), (t + 2 * 10 ** 8, 'future_stamp'),
                          (0, 'invalid')):
        with pytest.raises(MessageError) as info:
            stamps.check('/a', stamp, now_ns=t)
        assert info.value.reason == reason
    stamps.check('/b', t - 1, now_ns=t)  # order is per topic


def test_live_inputs_judge_a_set_on_its_own_freshness(tmp_path):
    """No DDS: a set after a gap longer than the timeout is answered; long instructions refused."""
    from spatialvla_ros.policies.configuration_policy import PolicyConfig
    from spatialvla_ros.nodes.policy_runtime import LiveInputs
    from spatialvla_ros.perception import conversions as cv
    from spatialvla_ros.perception.conversions import MessageError
    from spatialvla_ros.perception.messages import make_message
    from spatialvla_ros.perception.observation_builder import ObservationBuilder
    from spatialvla_ros.perception.observation_builder import sync_keys
    from spatialvla_ros.perception.sync import StampSynchronizer
    from sensor_msgs.msg import CameraInfo
    from sensor_msgs.msg import Image
    from sensor_msgs.msg import JointState
    config = PolicyConfig.from_yaml(os.path.join(REPO, 'config', 'late_gemma.yaml'))
    act, data = config.action, config.data
    now = [100.0]
    live = LiveInputs(ObservationBuilder(data, config.encoder3d, act.names, act.state_dim),
                      StampSynchronizer(sync_keys(data), 0.005), ['/c', '/d', '/i', '/js'],
                      max_instruction_chars=30, clock=lambda: now[0])
    live.reset(0.5, 0.1)
    live.set_instruction(INSTRUCTION)
    with pytest.raises(MessageError) as info:
        live.set_instruction('x' * 31)
    assert info.value.reason == 'too_long' and live.instruction == INSTRUCTION
    K = np.array([[FX, 0, CX], [0, FY, CY], [0, 0, 1]])
    rgb, depth = scene(0)
    for n in range(3):  # 1.5 Hz: every set arrives 0.67 s after the last, timeout 0.5 s
        t = 10 ** 12 + n * 667_000_000
        live.joint_state('/js', make_message(JointState, {
            'header': cv.header_fields(t), 'name': list(act.names),
            'position': np.zeros(len(act.names))}), t, t)
        jobs = [live.camera(f'front/{kind}', topic, make_message(cls, values), t, t, now[0])
                for kind, topic, cls, values in (
                    ('color', '/c', Image, cv.rgb_to_image_fields(rgb, 'rgb8', t)),
                    ('depth', '/d', Image, cv.depth_to_image_fields(depth, '32FC1', t)),
                    ('camera_info', '/i', CameraInfo, cv.camera_info_fields(K, W, H, t)))]
        assert jobs[:2] == [None, None] and jobs[2].stamp_ns == t
        assert jobs[2].arrays['front/depth'].dtype == np.float32  # decoded once, kept
        now[0] += 0.67
        assert 'no message on /c' in live.waiting_reason('/instruction')


def test_lasting_change_logs_no_flicker():
    """A stale moment before each frame of a slow camera is not logged; a lasting gap is."""
    from spatialvla_ros.nodes.policy_runtime import LastingChange
    now = [0.0]
    change = LastingChange(0.5, clock=lambda: now[0])
    reported = []
    for _ in range(10):  # 1.5 Hz camera, 0.6 s timeout: stale for 0.07 s of every 0.67 s
        for waiting, dt in ((False, 0.6), (True, 0.07)):
            for _ in range(int(round(dt / 0.01))):
                if change.update(waiting):
                    reported.append(waiting)
                now[0] += 0.01
    assert reported == []
    for waiting in [True] * 60 + [False] * 60:  # a gap of 0.6 s, then fresh for 0.6 s
        if change.update(waiting):
            reported.append(waiting)
        now[0] += 0.01
    assert reported == [True, False]


def test_load_policy_passes_compile(tmp_path_factory):
    """The compile flag reaches the policy (wrapping only: nothing compiles before a call)."""
    from spatialvla_ros.nodes.policy_runtime import load_policy
    ckpt = cached_checkpoint(tmp_path_factory, 'late_gemma')
    for compile_step in (False, True):
        policy, device, _ = load_policy(ckpt, device='cpu', compile=compile_step)
        assert policy.compiled is compile_step and device == 'cpu'


def test_parameter_overrides_and_missing_checkpoint():
    from spatialvla_ros.typed_config import ConfigError
    from spatialvla_ros.policies.configuration_policy import PolicyConfig
    from spatialvla_ros.nodes.policy_parameters import data_config_with_overrides
    from spatialvla_ros.nodes.policy_runtime import load_policy
    data = PolicyConfig.from_yaml(os.path.join(REPO, 'config', 'late_gemma.yaml')).data
    cloud = data_config_with_overrides(
        data, {'front': {'depth_topic': '', 'cloud_topic': '/pts',
                         'base_from_camera_xyz': [1, 2, 3]}}, state_topic='/js')
    cam = cloud.cameras[0]
    assert (cam.depth_topic, cam.cloud_topic, cam.base_from_camera_xyz) == ('', '/pts',
                                                                            (1.0, 2.0, 3.0))
    assert cloud.state_topic == '/js' and cloud.instruction_topic == data.instruction_topic
    with pytest.raises(ConfigError, match='depth_topic'):
        data_config_with_overrides(data, {'front': {'depth_topic': ''}})
    with pytest.raises(ValueError, match="'checkpoint_dir' is empty"):
        load_policy('')
    from spatialvla_ros.nodes.policy_parameters import check_choices
    check_choices({'dtype': 'bfloat16', 'qos_reliability': 'reliable'})
    with pytest.raises(ValueError, match="parameter 'dtype': got 'float64'"):
        check_choices({'dtype': 'float64'})


def test_launch_file_declares_the_plain_commands_options():
    from spatialvla_ros.tools.policy_launch import build_parser
    with open(os.path.join(REPO, 'launch', 'policy.launch.py'), encoding='utf-8') as f:
        tree = ast.parse(f.read())
    declared = {node.args[0].value for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, 'id', getattr(
                    node.func, 'attr', '')) == 'DeclareLaunchArgument'}
    options = {a.dest for a in build_parser()._actions if a.dest != 'help'}
    assert declared == options
    with open(os.path.join(REPO, 'config', 'params', 'policy_node.yaml'), encoding='utf-8') as f:
        params = yaml.safe_load(f)['policy_node']['ros__parameters']
    from spatialvla_ros.nodes.policy_parameters import NODE_PARAMETERS
    assert set(params) == {p.name for p in NODE_PARAMETERS}

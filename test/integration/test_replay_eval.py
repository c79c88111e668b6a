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


"""Bag replay evaluation over real DDS, against a stand-in policy that knows the answers.

A short scripted reach episode is recorded by the simulator into an mcap bag and an sqlite3
bag. The stand-in policy (evaluation.replay_policy, a separate process) answers each
observation with the recorded actions of its stamp: the evaluator (replay_eval, another
process) must then score exactly zero error. Shifted by one step, the error at every horizon
step must equal the recorded actions' one-step differences, computed here straight from the
bag with rosbags (not with the evaluator's code).
"""

import json
import os

import numpy as np
import pytest
from spatialvla_ros.core_types import NS_PER_S
from spatialvla_ros.core_types import stamp_to_ns

NS = NS_PER_S
DT_NS = NS // 10
HORIZON = 10


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    """One 32x32 reach episode recorded twice: mcap (with cloud) and sqlite3."""
    from spatialvla_ros.data.recorder import EpisodeRecorder
    from spatialvla_ros.sim import messages as sim_msgs
    from spatialvla_ros.sim.camera import CameraSpec
    from spatialvla_ros.sim.rollout import run_episode
    from spatialvla_ros.sim.panda_env import PandaEnv

    root = tmp_path_factory.mktemp('replay_bags')
    env = PandaEnv(CameraSpec(width=32, height=32))
    out = {}
    try:
        for storage in ('mcap', 'sqlite3'):
            topics = sim_msgs.SimTopics(cloud='' if storage == 'sqlite3' else '/camera/depth/'
                                        'points')
            path = str(root / f'reach_{storage}')
            recorder = EpisodeRecorder(path, sim_msgs.topic_table(topics), sim_msgs.typestore(),
                                       storage=storage)
            try:
                _, success, steps = run_episode(env, 'reach', 3, 1_700_000_000 * NS,
                                                topics=topics, sink=recorder.write)
            finally:
                recorder.close()
            assert success and steps >= 8
            out[storage] = path
    finally:
        env.close()
    return out


def recorded_actions(path):
    """(stamps, actions) of the expert's commands, read with rosbags only."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import get_typestore
    from rosbags.typesys import Stores
    from pathlib import Path

    stamps, actions = [], []
    with AnyReader([Path(path)], default_typestore=get_typestore(Stores.ROS2_KILTED)) as r:
        conns = [c for c in r.connections if c.topic == '/spatialvla/expert_trajectory']
        for conn, _, raw in r.messages(connections=conns):
            msg = r.deserialize(raw, conn.msgtype)
            stamps.append(stamp_to_ns(msg.header.stamp))
            actions.append(np.asarray(msg.points[0].positions, dtype=np.float64))
    return np.asarray(stamps), np.stack(actions)


def evaluate(spawn, tmp_path, bag, shift, rate):
    policy = spawn(['-m', 'spatialvla_ros.nodes.replay_policy', '--bag', bag,
                    '--shift-steps', str(shift)])
    out = tmp_path / f'report_shift{shift}'
    evaluator = spawn(['-m', 'spatialvla_ros.tools.replay_eval', bag, '--out-dir', str(out),
                       '--rate', str(rate), '--policy-node', '', '--wait-timeout', '60'])
    try:
        log, _ = evaluator.communicate(timeout=120)
    finally:
        policy.terminate()
    assert evaluator.returncode == 0, log
    with open(out / 'summary.json', encoding='utf-8') as f:
        summary = json.load(f)[0]
    for name in ('report.md', 'errors.csv'):
        assert (out / name).is_file()
    pngs = [p for p in os.listdir(out) if p.endswith('.png')]
    assert len(pngs) == 2, pngs
    return summary, log


def test_replaying_the_recorded_actions_scores_exactly_zero(bags, spawn, tmp_path):
    summary, log = evaluate(spawn, tmp_path, bags['mcap'], shift=0, rate=1.0)
    stamps, _ = recorded_actions(bags['mcap'])
    m = summary['metrics']
    assert summary['observations_sent'] == len(stamps)          # one camera frame per tick
    assert summary['observations_answered'] == summary['observations_sent'], log
    # Every observation i scores min(H, N - i) steps: the rest lies past the recording.
    n = len(stamps)
    assert m['matched'] == sum(min(HORIZON, n - i) for i in range(n))
    assert m['mae'] == 0.0 and m['rmse'] == 0.0
    assert m['mae_per_dim'] == [0.0] * 8 and m['mae_per_step'] == [0.0] * HORIZON
    assert summary['inference_latency_s']['count'] == n
    assert summary['round_trip_s']['count'] == n


def test_a_one_step_shift_scores_the_one_step_differences(bags, spawn, tmp_path):
    summary, log = evaluate(spawn, tmp_path, bags['sqlite3'], shift=1, rate=2.0)
    stamps, actions = recorded_actions(bags['sqlite3'])
    index = {int(s): i for i, s in enumerate(stamps)}
    answered = [index[s] for s in summary['answered_stamps_ns']]
    n = len(stamps)
    assert answered == list(range(n - 1)), log   # the last frame has no later action
    m = summary['metrics']
    # Observation i, step k: predicted a[i+k+1] for the time recorded as a[i+k].
    for k in range(HORIZON):
        errors = [np.abs(actions[i + k + 1] - actions[i + k]) for i in answered
                  if i + k + 1 < n]
        assert m['count_per_step'][k] == len(errors)
        if errors:
            assert m['mae_per_step'][k] == pytest.approx(float(np.mean(errors)), abs=1e-12)
    pairs = np.concatenate([[actions[i + k + 1] - actions[i + k] for k in range(HORIZON)
                             if i + k + 1 < n] for i in answered])
    assert m['mae'] > 1e-3
    np.testing.assert_allclose(m['mae_per_dim'], np.abs(pairs).mean(0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(m['rmse'], np.sqrt((pairs ** 2).mean()), rtol=1e-12)


def test_conversion_keeps_every_field_of_every_message(bags):
    """Convert rosbags -> rclpy by field names, checked against the bag's deserialisation."""
    import dataclasses
    from pathlib import Path

    from rosbags.highlevel import AnyReader
    from rosbags.typesys import get_typestore
    from rosbags.typesys import Stores
    from spatialvla_ros.perception.bag_messages import MessageConverter
    from spatialvla_ros.perception.bag_messages import rclpy_class

    def same(a, b, where):
        if dataclasses.is_dataclass(a):
            for f in dataclasses.fields(a):
                if f.name != '__msgtype__':
                    same(getattr(a, f.name), getattr(b, f.name), f'{where}.{f.name}')
        elif isinstance(a, np.ndarray):
            got = b if isinstance(b, np.ndarray) else np.frombuffer(b, dtype=a.dtype)
            assert np.array_equal(a, got), where
        elif isinstance(a, list):
            assert len(a) == len(b), where
            for i, (x, y) in enumerate(zip(a, b)):
                same(x, y, f'{where}[{i}]')
        else:
            assert a == b, where

    converter = MessageConverter(stamp_offset_ns=5 * NS)
    seen = set()
    with AnyReader([Path(bags['mcap'])],
                   default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        for conn, _, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            out = converter.convert(msg, rclpy_class(conn.msgtype))
            if hasattr(msg, 'header'):   # restamped by exactly the offset, then compared
                got = stamp_to_ns(out.header.stamp)
                want = stamp_to_ns(msg.header.stamp)
                assert got == want + 5 * NS
                out.header.stamp.sec = msg.header.stamp.sec
                out.header.stamp.nanosec = msg.header.stamp.nanosec
            same(msg, out, conn.topic)
            seen.add(conn.msgtype)
    assert {'sensor_msgs/msg/Image', 'sensor_msgs/msg/PointCloud2',
            'sensor_msgs/msg/CameraInfo', 'trajectory_msgs/msg/JointTrajectory',
            'geometry_msgs/msg/TransformStamped', 'std_msgs/msg/String'} <= seen


def test_alignment_pairs_by_absolute_time_and_skips_points_past_the_recording():
    from spatialvla_ros.evaluation import replay

    t = 1_000 * NS + np.arange(5) * DT_NS
    recorded = replay.RecordedActions(('a', 'b'), t + DT_NS, np.c_[np.arange(5.0), -np.ones(5)])
    # Stamped at tick 3; points for ticks 4, 5, 6: the recording's targets end at tick 5.
    pred = replay.PredictedChunk(int(t[3]), ('b', 'a'), np.array([1, 2, 3]) * DT_NS,
                                 np.array([[-1.0, 3.5], [-1.0, 4.0], [-1.0, 0.0]]))
    alignment = replay.align([pred], recorded)
    assert alignment.names == ('b', 'a') and alignment.unmatched == 1
    np.testing.assert_array_equal(alignment.step, [0, 1])
    np.testing.assert_array_equal(alignment.error, [[0.0, 0.5], [0.0, 0.0]])
    with pytest.raises(ValueError, match='share no name'):
        replay.align([replay.PredictedChunk(0, ('x',), np.array([DT_NS]), np.ones((1, 1)))],
                     recorded)

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

"""Demo bags: generate_demos writes rosbag2 (mcap) episodes that rosbags reads back intact."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from spatialvla_ros.core_types import stamp_to_ns
from spatialvla_ros.data.recorder import EpisodeRecorder
from spatialvla_ros.sim import messages as sim_msgs
from spatialvla_ros.sim.panda_env import PandaEnv
from spatialvla_ros.sim.rollout import run_episode
from spatialvla_ros.tools import generate_demos
import yaml

DT_NS = 100_000_000
PER_TICK = ['/camera/color/image_raw', '/camera/depth/image_raw', '/camera/color/camera_info',
            '/camera/depth/points', '/joint_states', '/spatialvla/expert_trajectory']
ONCE = ['/spatialvla/instruction', '/spatialvla/camera_pose', '/spatialvla/episode_outcome']


def _stamp(msg):
    return stamp_to_ns(msg.header.stamp)


def _read(path):
    store = sim_msgs.typestore()
    out = {}
    with Reader(path) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        for conn, log_time, raw in reader.messages():
            out.setdefault(conn.topic, []).append(
                (log_time, store.deserialize_cdr(raw, conn.msgtype)))
    return types, out


@pytest.fixture(scope='module')
def demos(tmp_path_factory):
    out = tmp_path_factory.mktemp('demos')
    rc = generate_demos.main(['--out', str(out), '--episodes', '2', '--tasks', 'reach,push',
                              '--seed-start', '7', '--workers', '2', '--image-size', '40x32'])
    assert rc == 0
    return out


def test_bags_read_back_with_every_topic_count_and_stamp_order(demos):
    summary = json.loads((demos / 'summary.json').read_text())['episodes']
    assert [(e['task'], e['seed']) for e in summary] == [('push', 8), ('reach', 7)]
    for entry in summary:
        path = demos / entry['bag']
        assert entry['success'] and entry['kept']
        types, msgs = _read(path)
        assert types == {t: m for t, m, _ in sim_msgs.topic_table(sim_msgs.SimTopics())}
        steps = entry['steps']
        for topic in PER_TICK:
            assert len(msgs[topic]) == steps, topic
        for topic in ONCE:
            assert len(msgs[topic]) == 1, topic
        # Every per-tick stream: header stamp == log time, exactly one control period apart,
        # and the same stamps on every stream (images, info, cloud, state, command).
        ref = [_stamp(m) for _, m in msgs['/joint_states']]
        assert np.all(np.diff(ref) == DT_NS)
        for topic in PER_TICK:
            stamps = [_stamp(m) for _, m in msgs[topic]]
            assert stamps == ref and [t for t, _ in msgs[topic]] == ref, topic
        start = msgs['/spatialvla/instruction'][0]
        assert start[0] == ref[0] and start[1].data == entry['instruction']
        outcome_time, outcome = msgs['/spatialvla/episode_outcome'][0]
        assert outcome_time == ref[-1] + DT_NS
        assert json.loads(outcome.data) == {'task': entry['task'], 'seed': entry['seed'],
                                            'success': True, 'steps': steps,
                                            'instruction': entry['instruction']}
        image = msgs['/camera/color/image_raw'][0][1]
        assert (image.width, image.height, image.encoding) == (40, 32, 'rgb8')
        assert image.header.frame_id == 'camera_color_optical_frame'
        traj = msgs['/spatialvla/expert_trajectory'][0][1]
        assert len(traj.points[0].positions) == 8
        assert traj.points[0].time_from_start.nanosec == DT_NS
        # The expert's first point is reached: the next tick's state is close to it.
        states = np.array([m.position[:8] for _, m in msgs['/joint_states']])
        actions = np.array([m.points[0].positions for _, m in
                            msgs['/spatialvla/expert_trajectory']])
        assert np.abs(states[1:, :7] - actions[:-1, :7]).max() < 0.02


def test_bag_metadata_is_a_ros2_bag(demos):
    path = demos / 'reach_000007'
    meta = yaml.safe_load((path / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert meta['storage_identifier'] == 'mcap' and meta['version'] == 9
    assert meta['relative_file_paths'] == ['reach_000007.mcap']
    assert os.path.getsize(path / 'reach_000007.mcap') > 10_000
    store = sim_msgs.typestore()
    for entry in meta['topics_with_message_count']:
        topic = entry['topic_metadata']
        assert topic['serialization_format'] == 'cdr'
        assert topic['type_description_hash'] == store.hash_rihs01(topic['type'])
        qos = topic['offered_qos_profiles'][0]
        latched = topic['name'] in ('/spatialvla/instruction', '/spatialvla/camera_pose')
        assert qos['durability'] == ('transient_local' if latched else 'volatile')
    with open(path / 'reach_000007.mcap', 'rb') as f:
        assert f.read(8) == b'\x89MCAP0\r\n'


def test_failed_episodes_are_dropped_unless_kept(tmp_path):
    # One tick is not enough to reach anything: the episode fails.
    env = PandaEnv(None)
    try:
        path = tmp_path / 'bag'
        table = sim_msgs.topic_table(sim_msgs.SimTopics(cloud=''))
        with EpisodeRecorder(str(path), table, sim_msgs.typestore()) as rec:
            task, success, steps = run_episode(env, 'pick_place', 0, 10**18, sink=rec.write,
                                               camera=False, max_steps=1)
        assert not success and steps == 1
        types, msgs = _read(str(path))
        assert json.loads(msgs['/spatialvla/episode_outcome'][0][1].data)['success'] is False
        assert '/camera/depth/points' not in types
        assert len(msgs['/joint_states']) == 1 and '/camera/color/image_raw' not in msgs
    finally:
        env.close()


def test_recorder_rejects_bad_use(tmp_path):
    table = sim_msgs.topic_table(sim_msgs.SimTopics())
    (tmp_path / 'exists').mkdir()
    with pytest.raises(ValueError, match='already exists'):
        EpisodeRecorder(str(tmp_path / 'exists'), table, sim_msgs.typestore())
    with EpisodeRecorder(str(tmp_path / 'new'), table, sim_msgs.typestore()) as rec:
        with pytest.raises(ValueError, match='not registered'):
            rec.write_raw('/nope', 1, b'\x00\x01\x00\x00')
    with pytest.raises(ValueError, match='storage'):
        EpisodeRecorder(str(tmp_path / 'x'), table, sim_msgs.typestore(), storage='bag')


def test_generate_demos_cli_help_and_errors(tmp_path):
    run = subprocess.run([sys.executable, '-m', 'spatialvla_ros.tools.generate_demos', '--help'],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and '--episodes' in run.stdout and '--image-size' in run.stdout
    with pytest.raises(SystemExit):
        generate_demos.main(['--out', str(tmp_path), '--tasks', 'fly'])

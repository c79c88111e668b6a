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

"""LeRobot v3 datasets: spatialvla_convert both ways, the trainer's reader, LeRobot's own files.

Demonstrations come from the simulator's generator (real pybullet, real rosbags bags, shared
with test_dataset). Image tolerance: the converter encodes H.264 lossless in YUV 4:4:4, so an
image comes back within the RGB <-> YUV rounding, at most IMAGE_MAX_ERROR levels per channel;
depth, states, actions, stamps and instructions come back exactly.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

from demo_bags import generate_demos
import numpy as np
import pytest
from repo_paths import REPO_ROOT
from rosbags.rosbag2 import Reader
from rosbags.typesys import get_typestore
from rosbags.typesys import Stores
from spatialvla_ros.data import lerobot_dataset
from spatialvla_ros.data.bag_episodes import decode_episode
from spatialvla_ros.data.dataset import EpisodeDataset
from spatialvla_ros.data.dataset import load_episodes
from spatialvla_ros.data.lerobot_dataset import LeRobotFormatError
from spatialvla_ros.data.lerobot_dataset import LeRobotReader
from spatialvla_ros.data.lerobot_episodes import load_lerobot_episodes
from spatialvla_ros.policies.configuration_policy import PolicyConfig
from spatialvla_ros.tools import convert

CONFIG = os.path.join(REPO_ROOT, 'config', 'late_gemma.yaml')
PEER_DATASET = os.path.join(REPO_ROOT, 'test', 'data', 'lerobot_v3_by_lerobot')
PEER_SCRIPT = os.path.join(REPO_ROOT, 'bench', 'lerobot_peer_dataset.py')
PEER_PYTHON = os.path.join(REPO_ROOT, '.lerobot-venv', 'bin', 'python')
IMAGE_MAX_ERROR = 3        # converter: lossless H.264 4:4:4, RGB <-> YUV rounding only
TS = get_typestore(Stores.ROS2_KILTED)


@pytest.fixture(scope='session')
def config():
    return PolicyConfig.from_yaml(CONFIG)


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """Demo bags -> LeRobot (CLI) -> bags (CLI, sqlite3)."""
    base = tmp_path_factory.getbasetemp()
    bags = generate_demos(base)
    out = tmp_path_factory.mktemp('lerobot')
    dataset, back = str(out / 'dataset'), str(out / 'back')
    assert convert.main(['to-lerobot', '--config', CONFIG, '--out', dataset, '--no-progress']
                        + bags) == 0
    assert convert.main(['to-rosbag', '--config', CONFIG, '--out', back, '--storage', 'sqlite3',
                         '--no-progress', dataset]) == 0
    return {'bags': bags, 'dataset': dataset, 'back': sorted(
        os.path.join(back, d) for d in os.listdir(back))}


def assert_same_episode(a, b, image_tolerance):
    assert len(a) == len(b)
    for name in ('states', 'actions', 'action_mask', 'stamps', 'instructions'):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for pa, pb in zip(a.points, b.points):
        np.testing.assert_array_equal(pa, pb)   # NaN == NaN here: invalid pixels stay invalid
    for ia, ib in zip(a.images, b.images):
        error = np.abs(ia.astype(np.int16) - ib.astype(np.int16))
        assert error.max() <= image_tolerance, f'image error {error.max()} > {image_tolerance}'


def read_topic(path, topic):
    with Reader(path) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [(t, TS.deserialize_cdr(raw, c.msgtype))
                for c, t, raw in reader.messages(connections=conns)]


def test_round_trip_keeps_every_sample_and_the_episode_boundaries(converted, config):
    assert len(converted['back']) == len(converted['bags'])
    for src, back in zip(converted['bags'], converted['back']):
        a, _ = decode_episode(src, config)
        b, _ = decode_episode(back, config)
        assert_same_episode(a, b, IMAGE_MAX_ERROR)
        # Depth and CameraInfo messages come back bit for bit (stamps and encodings too).
        for topic in (config.data.cameras[0].depth_topic,
                      config.data.cameras[0].camera_info_topic):
            got = read_topic(back, topic)
            want = dict(read_topic(src, topic))
            assert len(got) == len(a)
            for t, msg in got:
                ref = want[t]
                if hasattr(ref, 'data'):
                    assert msg.encoding == ref.encoding
                    np.testing.assert_array_equal(msg.data, ref.data)
                else:
                    np.testing.assert_array_equal(msg.k, ref.k)
                    assert (msg.width, msg.height) == (ref.width, ref.height)
                assert msg.header.frame_id == ref.header.frame_id


def test_dataset_layout_is_lerobot_v3(converted, config):
    reader = LeRobotReader(converted['dataset'])
    assert reader.info['codebase_version'] == 'v3.0'
    lengths = [len(decode_episode(b, config)[0]) for b in converted['bags']]
    assert [r['length'] for r in reader.episodes] == lengths
    assert reader.info['total_frames'] == sum(lengths)
    starts = np.cumsum([0] + lengths)
    assert [r['dataset_from_index'] for r in reader.episodes] == starts[:-1].tolist()
    key = config.data.cameras[0].dataset_image_key
    assert [r[f'videos/{key}/from_timestamp'] for r in reader.episodes] == \
        (starts[:-1] / reader.fps).tolist()
    for name in ('meta/tasks.parquet', 'meta/stats.json',
                 'data/chunk-000/file-000.parquet', f'videos/{key}/chunk-000/file-000.mp4'):
        assert os.path.isfile(os.path.join(converted['dataset'], name)), name
    assert reader.features[config.data.state_key]['names'] == list(config.action.names)


def test_trainer_gets_the_bag_samples_from_the_converted_dataset(converted, config):
    from_bags, _ = load_episodes(converted['bags'], config)
    from_lerobot, warnings = load_episodes([converted['dataset']], config)
    assert warnings == []
    assert len(from_bags) == len(from_lerobot)
    for a, b in zip(from_bags, from_lerobot):
        assert_same_episode(a, b, IMAGE_MAX_ERROR)
    bags, lerobot = EpisodeDataset(from_bags), EpisodeDataset(from_lerobot)
    assert len(bags) == len(lerobot)
    for i in (0, len(bags) // 2, len(bags) - 1):
        (obs_a, act_a, mask_a), (obs_b, act_b, mask_b) = bags[i], lerobot[i]
        np.testing.assert_array_equal(obs_a.state, obs_b.state)
        np.testing.assert_array_equal(act_a, act_b)
        np.testing.assert_array_equal(mask_a, mask_b)
        assert (obs_a.instruction, obs_a.stamp_ns) == (obs_b.instruction, obs_b.stamp_ns)
    stats_a, stats_b = bags.compute_stats(), lerobot.compute_stats()
    np.testing.assert_array_equal(stats_a.state_mean, stats_b.state_mean)
    np.testing.assert_array_equal(stats_a.action_std, stats_b.action_std)


def _without(config, **data):
    return dataclasses.replace(config, data=dataclasses.replace(config.data, **data))


def test_bad_input_names_the_file_and_the_key(converted, config, tmp_path, capsys):
    dataset = converted['dataset']
    with pytest.raises(LeRobotFormatError, match=r'dataset/meta/info\.json: configured key\(s\) '
                       r'observation\.joints not among the features'):
        load_lerobot_episodes(dataset, _without(config, state_key='observation.joints'))
    copy = str(tmp_path / 'v21')
    shutil.copytree(dataset, copy)
    with open(os.path.join(copy, 'meta', 'info.json'), encoding='utf-8') as f:
        meta = json.load(f)
    meta['codebase_version'] = 'v2.1'
    with open(os.path.join(copy, 'meta', 'info.json'), 'w', encoding='utf-8') as f:
        json.dump(meta, f)
    with pytest.raises(LeRobotFormatError, match=r"v21/meta/info\.json: key 'codebase_version'"
                       r": got 'v2\.1', expected 'v3\.x'"):
        LeRobotReader(copy)
    del meta['fps']
    meta['codebase_version'] = 'v3.0'
    with open(os.path.join(copy, 'meta', 'info.json'), 'w', encoding='utf-8') as f:
        json.dump(meta, f)
    with pytest.raises(LeRobotFormatError, match=r"meta/info\.json: key 'fps' missing"):
        LeRobotReader(copy)
    # The command line says it in one line and exits with status 2.
    assert convert.main(['to-rosbag', '--config', CONFIG, '--out', str(tmp_path / 'b'), copy,
                         '--no-progress']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and "key 'fps' missing" in err and '\n' not in err
    assert convert.main(['to-lerobot', '--config', CONFIG, '--out', str(tmp_path / 'c'),
                         '--no-progress', dataset]) == 2
    assert 'metadata.yaml' in capsys.readouterr().err


def peer_expected(root):
    with open(os.path.join(root, 'expected.json'), encoding='utf-8') as f:
        return json.load(f)


def check_peer_dataset(root):
    """Read a dataset LeRobot wrote with our reader and compare to the values it was given.

    Checks: layout version, episode boundaries, the task of each frame, state / action / 2-D
    depth exactly (float32), and the images within LeRobot's own lossy AV1 (crf 30, 4:2:0):
    mean error < 3 levels, max < 16.
    """
    expected = peer_expected(root)['episodes']
    reader = LeRobotReader(root)
    assert reader.info['codebase_version'] == 'v3.0'
    assert [r['length'] for r in reader.episodes] == [len(e) for e in expected]
    keys = ['observation.images.camera', 'observation.state', 'action',
            'observation.depth.camera']
    for e, frames in enumerate(expected):
        got = reader.episode(e, keys)
        np.testing.assert_array_equal(got['frame_index'], np.arange(len(frames)))
        assert list(got['task']) == [f['task'] for f in frames]
        for name, key in (('state', 'observation.state'), ('action', 'action'),
                          ('depth', 'observation.depth.camera')):
            np.testing.assert_array_equal(got[key], np.float32([f[name] for f in frames]))
        error = np.abs(got['observation.images.camera'].astype(np.int16)
                       - np.int16([f['image'] for f in frames]))
        assert error.mean() < 3 and error.max() < 16, (error.mean(), error.max())


def test_reads_the_dataset_lerobot_wrote():
    """A dataset written by LeRobot 0.4.4 itself (committed: bench/lerobot_peer_dataset.py)."""
    assert peer_expected(PEER_DATASET)['lerobot'] == '0.4.4'
    check_peer_dataset(PEER_DATASET)


@pytest.mark.skipif(not os.path.exists(PEER_PYTHON),
                    reason='LeRobot venv missing (python bench/lerobot_peer_dataset.py write '
                           'DIR creates .lerobot-venv once, from the package registry)')
def test_reads_a_dataset_lerobot_writes_now(tmp_path):
    """Same check on a dataset LeRobot writes in this run (where its venv exists)."""
    out = str(tmp_path / 'peer')
    subprocess.run([sys.executable, PEER_SCRIPT, 'write', out], check=True,
                   capture_output=True, timeout=300)
    check_peer_dataset(out)


@pytest.mark.skipif(not os.path.exists(PEER_PYTHON),
                    reason='LeRobot venv missing (python bench/lerobot_peer_dataset.py write '
                           'DIR creates .lerobot-venv once, from the package registry)')
def test_lerobot_reads_the_converted_dataset(converted, config):
    """Check that LeRobot's own LeRobotDataset hands out what our reader reads, per frame.

    LeRobot's code reads the metadata, the frames (HF datasets with its feature types), the
    episode index and shifts the video query in time; only its video decoder is replaced
    by PyAV (see bench/lerobot_peer_dataset.py).
    """
    run = subprocess.run([sys.executable, PEER_SCRIPT, 'read', converted['dataset']],
                         check=True, capture_output=True, timeout=300, text=True)
    peer = json.loads(run.stdout)
    reader = LeRobotReader(converted['dataset'])
    assert peer['num_episodes'] == len(reader)
    image_key = config.data.cameras[0].dataset_image_key
    depth_key = config.data.cameras[0].dataset_depth_key
    keys = [image_key, depth_key, config.data.state_key, config.data.action_key, 'stamp_ns']
    ours = [reader.episode(e, keys) for e in range(len(reader))]
    ours = {k: np.concatenate([ep[k] for ep in ours]) for k in keys + ['task', 'episode_index']}
    assert len(peer['frames']) == len(ours['task'])
    for i, frame in enumerate(peer['frames']):
        assert frame['index'] == i and frame['episode_index'] == ours['episode_index'][i]
        assert frame['task'] == ours['task'][i]
        assert frame['stamp_ns'] == ours['stamp_ns'][i]
        for key in (depth_key, config.data.state_key, config.data.action_key):
            np.testing.assert_array_equal(np.float32(frame[key]), ours[key][i], err_msg=key)
        np.testing.assert_array_equal(np.uint8(frame[image_key]).transpose(1, 2, 0),
                                      ours[image_key][i])


def test_calibration_comes_from_the_config_when_the_dataset_has_none(converted, config,
                                                                     tmp_path):
    copy = str(tmp_path / 'uncalibrated')
    shutil.copytree(converted['dataset'], copy)
    info_path = os.path.join(copy, 'meta', 'info.json')
    with open(info_path, encoding='utf-8') as f:
        meta = json.load(f)
    key = config.data.cameras[0].dataset_image_key
    calibration = {k: meta['features'][key]['info'].pop(k) for k in list(
        meta['features'][key]['info']) if k.startswith('camera.')}
    with open(info_path, 'w', encoding='utf-8') as f:
        json.dump(meta, f)
    with pytest.raises(LeRobotFormatError, match=rf'uncalibrated/meta/info\.json: feature '
                       rf"'{key}' has no camera intrinsics .*data\.cameras\[front\]\.intrinsics"):
        load_lerobot_episodes(copy, config)
    K = np.reshape(calibration['camera.k'], (3, 3))
    camera = dataclasses.replace(
        config.data.cameras[0], intrinsics=(K[0, 0], K[1, 1], K[0, 2], K[1, 2]),
        base_from_camera_xyz=tuple(calibration['camera.base_from_camera_xyz']),
        base_from_camera_quat=tuple(calibration['camera.base_from_camera_quat']))
    calibrated = _without(config, cameras=(camera,))
    from_config, _ = load_lerobot_episodes(copy, calibrated)
    from_bags, _ = load_episodes(converted['bags'], config)
    for a, b in zip(from_bags, from_config):
        assert_same_episode(a, b, IMAGE_MAX_ERROR)
    # A mount that differs from the recorded one moves every point: the config is used.
    moved = dataclasses.replace(camera, base_from_camera_xyz=(0.0, 0.0, 0.0),
                                base_from_camera_quat=(0.0, 0.0, 0.0, 1.0))
    shifted, _ = load_lerobot_episodes(copy, _without(config, cameras=(moved,)))
    assert not np.allclose(shifted[0].points[0], from_bags[0].points[0], equal_nan=True)


def test_files_roll_over_at_their_size_limit_and_read_back(tmp_path, monkeypatch):
    """Start new files past the size limits; each episode reads back from its own file.

    Limits 0: every episode opens a new data and video file (from_timestamp 0 in each).
    """
    monkeypatch.setattr(lerobot_dataset, 'DATA_FILE_MB', 0)
    monkeypatch.setattr(lerobot_dataset, 'VIDEO_FILE_MB', 0)
    rng = np.random.default_rng(0)
    features = {'observation.images.cam': {'dtype': 'video', 'shape': [16, 24, 3]},
                'observation.state': {'dtype': 'float32', 'shape': [3]},
                'observation.depth.cam': {'dtype': 'uint16', 'shape': [4, 6]}}
    ramp = np.add.outer(np.arange(16) * 4, np.arange(24) * 3)[..., None] + [0, 30, 60]
    episodes = []
    with lerobot_dataset.LeRobotWriter(tmp_path / 'ds', 10, features) as writer:
        for e, length in enumerate((4, 6, 5)):
            frames = {'observation.images.cam': np.uint8([ramp + 5 * t + 20 * e
                                                          for t in range(length)]),
                      'observation.state': rng.standard_normal((length, 3)).astype(np.float32),
                      'observation.depth.cam': rng.integers(0, 65535, (length, 4, 6), np.uint16)}
            writer.add_episode(frames, [f'task {e}'] * length)
            episodes.append(frames)
    reader = LeRobotReader(tmp_path / 'ds')
    assert [r['data/file_index'] for r in reader.episodes] == [0, 1, 2]
    assert [r['videos/observation.images.cam/file_index'] for r in reader.episodes] == [0, 1, 2]
    assert [r['videos/observation.images.cam/from_timestamp'] for r in reader.episodes] == [0] * 3
    for e, frames in enumerate(episodes):
        got = reader.episode(e, list(features))
        np.testing.assert_array_equal(got['observation.state'], frames['observation.state'])
        np.testing.assert_array_equal(got['observation.depth.cam'],
                                      frames['observation.depth.cam'])
        assert got['observation.depth.cam'].dtype == np.uint16
        error = np.abs(got['observation.images.cam'].astype(np.int16)
                       - frames['observation.images.cam'])
        assert error.max() <= IMAGE_MAX_ERROR
        assert list(got['task']) == [f'task {e}'] * len(frames['observation.state'])

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

"""The rosbag2 dataset: decoding against the raw bags, mcap vs sqlite3, cache, bad data.

Demonstrations come from the simulator's own generator (real pybullet, real rosbags bags);
bad-data bags are rewritten copies of them (rosbags Writer). References are computed here
straight from the deserialised messages, not through the dataset code.
"""

import dataclasses
import os
import shutil
import subprocess
import sys

from demo_bags import generate_demos
import numpy as np
import pytest
from repo_paths import REPO_ROOT
from rosbags.rosbag2 import Reader
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer
from rosbags.typesys import get_typestore
from rosbags.typesys import Stores
from spatialvla_ros.core_types import stamp_to_ns
from spatialvla_ros.data.bag_episodes import decode_episode
from spatialvla_ros.data.bag_reader import BagError
from spatialvla_ros.data.dataset import EpisodeDataset
from spatialvla_ros.data.dataset import global_batch_indices
from spatialvla_ros.data.dataset import load_episodes
from spatialvla_ros.data.dataset import shard_range
from spatialvla_ros.perception.observation_builder import sync_keys
from spatialvla_ros.perception.sync import stamp_order
from spatialvla_ros.perception.sync import StampSynchronizer
from spatialvla_ros.policies.configuration_policy import PolicyConfig

REPO = REPO_ROOT
TS = get_typestore(Stores.ROS2_KILTED)
ARM = [f'panda_joint{i}' for i in range(1, 8)] + ['panda_finger_joint1']


@pytest.fixture(scope='session')
def demo_bags(tmp_path_factory):
    return generate_demos(tmp_path_factory.getbasetemp())


@pytest.fixture(scope='session')
def config():
    return PolicyConfig.from_yaml(os.path.join(REPO, 'config', 'late_gemma.yaml'))


def read_bag(path):
    """{topic: [(log_time, msgtype, msg)]} read with rosbags directly (the reference)."""
    out = {}
    with Reader(path) as reader:
        for conn, log_time, raw in reader.messages():
            out.setdefault(conn.topic, []).append(
                (log_time, conn.msgtype, TS.deserialize_cdr(raw, conn.msgtype)))
    return out


def rewrite_bag(src, dst, storage='sqlite3', edit=None, drop=()):
    """Copy a bag (any storage) to `dst`; edit(topic, index, msg) -> msg changes messages."""
    counts = {}
    with Reader(src) as reader, Writer(dst, version=9, storage_plugin=(
            StoragePlugin.SQLITE3 if storage == 'sqlite3' else StoragePlugin.MCAP)) as writer:
        conns = {}
        for conn in reader.connections:
            if conn.topic not in drop:
                conns[conn.id] = writer.add_connection(conn.topic, conn.msgtype, typestore=TS)
        for conn, log_time, raw in reader.messages():
            if conn.id not in conns:
                continue
            index = counts.get(conn.topic, 0)
            counts[conn.topic] = index + 1
            if edit is not None:
                msg = edit(conn.topic, index, TS.deserialize_cdr(raw, conn.msgtype))
                if msg is None:
                    continue
                raw = TS.serialize_cdr(msg, conn.msgtype)
            writer.write(conns[conn.id], log_time, raw)
    return str(dst)


def stamp(msg):
    return stamp_to_ns(msg.header.stamp)


def test_decode_matches_raw_messages_and_online_sync(demo_bags, config):
    path = demo_bags[0]
    episode, warnings = decode_episode(path, config)
    assert warnings == []
    raw = read_bag(path)
    colors = [m for _, _, m in raw['/camera/color/image_raw']]
    # Sync: feeding the node's online synchroniser in stamp order gives the same sets.
    keys = sync_keys(config.data)
    topics = {'front/color': '/camera/color/image_raw', 'front/depth': '/camera/depth/image_raw',
              'front/camera_info': '/camera/color/camera_info'}
    streams = {k: [(stamp(m), m) for _, _, m in raw[topics[k]]] for k in keys}
    sync = StampSynchronizer(keys, config.data.sync_slop, queue_size=100)
    matched = (sync.add(k, t, m) for t, k, m in stamp_order(streams))
    online = [s.stamp_ns for s in matched if s]
    trajectories = [m for _, _, m in raw['/spatialvla/expert_trajectory']]
    with_action = [t for t in online if any(stamp(m) >= t for m in trajectories)]
    assert episode.stamps.tolist() == with_action
    assert len(episode) == len(colors) >= 10
    # Images: the rgb8 bytes of each frame.
    for t, msg in enumerate(colors):
        ref = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)
        np.testing.assert_array_equal(episode.images[0][t], ref)
    # State: /joint_states positions of the 8 configured joints, by name.
    states = [m for _, _, m in raw['/joint_states']]
    for t, msg in enumerate(states):
        order = [list(msg.name).index(n) for n in ARM]
        np.testing.assert_allclose(episode.states[t], np.asarray(msg.position)[order], rtol=1e-6,
                                   atol=1e-6)
    # Actions: first point of the trajectories t .. t+H-1, masked past the end.
    first = np.stack([np.asarray(m.points[0].positions)[
        [list(m.joint_names).index(n) for n in ARM]] for m in trajectories])
    horizon = config.action.chunk_size
    for t in range(len(episode)):
        valid = min(horizon, len(first) - t)
        assert episode.action_mask[t].tolist() == [True] * valid + [False] * (horizon - valid)
        np.testing.assert_allclose(episode.actions[t, :valid], first[t:t + valid], rtol=1e-6,
                                   atol=1e-6)
    # Points: base-frame xyz maps, finite where the depth was valid.
    assert episode.points[0].shape == episode.images[0].shape
    assert np.isfinite(episode.points[0]).mean() > 0.5
    assert set(episode.instructions) == {raw['/spatialvla/instruction'][0][2].data}


def test_sqlite3_bag_gives_the_same_episode(demo_bags, config, tmp_path):
    sqlite = rewrite_bag(demo_bags[1], tmp_path / 'sqlite_copy', storage='sqlite3')
    with open(os.path.join(sqlite, 'metadata.yaml'), encoding='utf-8') as f:
        assert 'sqlite3' in f.read()
    a, _ = decode_episode(demo_bags[1], config)
    b, _ = decode_episode(sqlite, config)
    for name in ('states', 'actions', 'action_mask', 'stamps'):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.images[0], b.images[0])
    np.testing.assert_array_equal(a.points[0], b.points[0])


def test_cache_is_used_until_the_bag_changes(demo_bags, config, tmp_path):
    bag = shutil.copytree(demo_bags[2], tmp_path / 'bag')
    cache = tmp_path / 'cache'
    first, _ = load_episodes([bag], config, cache_dir=str(cache), points_dtype=np.float16)
    assert len(list(cache.glob('*.npz'))) == 1
    assert first[0].points[0].dtype == np.float16
    # Corrupt the bag's data but keep its mtime: the cached arrays are served, no decoding.
    data = next(p for p in bag.iterdir() if p.suffix == '.mcap')
    st = data.stat()
    data.write_bytes(b'\0' * 64)
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))
    second, _ = load_episodes([bag], config, cache_dir=str(cache), points_dtype=np.float16)
    np.testing.assert_array_equal(first[0].actions, second[0].actions)
    np.testing.assert_array_equal(first[0].images[0], second[0].images[0])
    # A newer mtime invalidates the entry: the (now broken) bag is read again.
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(BagError, match='bag'):
        load_episodes([bag], config, cache_dir=str(cache), points_dtype=np.float16)


def test_missing_topic_names_bag_topic_and_available_topics(demo_bags, config, tmp_path):
    bag = rewrite_bag(demo_bags[0], tmp_path / 'no_state', drop=('/joint_states',))
    with pytest.raises(BagError) as info:
        load_episodes([bag], config)
    text = str(info.value)
    assert str(tmp_path / 'no_state') in text and '/joint_states' in text
    assert '/camera/color/image_raw [sensor_msgs/msg/Image]' in text


def test_nan_state_and_resized_image_frames_are_skipped_with_warnings(demo_bags, config,
                                                                      tmp_path):
    def edit(topic, index, msg):
        if topic == '/joint_states' and index == 3:
            position = np.array(msg.position)
            position[1] = np.nan
            msg.position = position
        if topic == '/camera/color/image_raw' and index == 5:
            small = np.zeros((msg.height // 2, msg.width // 2, 3), np.uint8)
            msg.height, msg.width, msg.step = small.shape[0], small.shape[1], small.shape[1] * 3
            msg.data = small.reshape(-1)
        return msg

    bag = rewrite_bag(demo_bags[0], tmp_path / 'bad', edit=edit)
    clean, _ = decode_episode(demo_bags[0], config)
    episode, warnings = decode_episode(bag, config)
    assert len(episode) == len(clean) - 2
    dropped = set(clean.stamps.tolist()) - set(episode.stamps.tolist())
    assert dropped == {int(clean.stamps[3]), int(clean.stamps[5])}
    text = '\n'.join(warnings)
    for index, topic in ((3, '/joint_states'), (5, '/camera/color/image_raw')):
        line = next(w for w in warnings if topic in w and 'skipped' in w)
        assert line.startswith(str(tmp_path / 'bad'))
        assert f't={clean.stamps[index] / 1e9:.3f} s' in line
    assert 'panda_joint2' in text and 'image size' in text
    # The kept frames are unchanged.
    keep = [t for t in range(len(clean)) if t not in (3, 5)]
    np.testing.assert_array_equal(episode.states, clean.states[keep])


def test_short_episode_padded_and_one_frame_episode_skipped(demo_bags, config, tmp_path):
    def truncate(n):
        def edit(topic, index, msg):
            return msg if index < n or topic in ('/spatialvla/instruction',
                                                 '/spatialvla/episode_outcome') else None
        return edit

    short = rewrite_bag(demo_bags[0], tmp_path / 'short', edit=truncate(4))
    single = rewrite_bag(demo_bags[0], tmp_path / 'single', edit=truncate(1))
    episodes, warnings = load_episodes([short, single], config)
    assert len(episodes) == 1 and len(episodes[0]) == 4
    assert episodes[0].action_mask.sum(1).tolist() == [4, 3, 2, 1]
    assert any(w.startswith(str(tmp_path / 'single')) and 'skipped' in w for w in warnings)


def test_failed_episodes_are_skipped_unless_kept(demo_bags, config, tmp_path):
    def edit(topic, index, msg):
        if topic == '/spatialvla/episode_outcome':
            msg.data = msg.data.replace('"success": true', '"success": false')
        return msg

    bag = rewrite_bag(demo_bags[0], tmp_path / 'failed', edit=edit)
    episodes, warnings = load_episodes([bag], config)
    assert episodes == [] and 'failed' in warnings[-1]
    episodes, _ = load_episodes([bag], config, skip_failed=False)
    assert len(episodes) == 1


def test_stats_and_sampling_are_independent_of_the_world_size(demo_bags, config):
    episodes, _ = load_episodes(demo_bags, config)
    dataset = EpisodeDataset(episodes)
    stats = dataset.compute_stats()
    actions = np.concatenate([e.actions[e.action_mask] for e in episodes])
    np.testing.assert_allclose(stats.action_mean, actions.mean(0), atol=1e-5)
    np.testing.assert_allclose(stats.state_mean,
                               np.concatenate([e.states for e in episodes]).mean(0), atol=1e-5)
    obs, chunk, mask = dataset[len(episodes[0])]     # first frame of the second episode
    np.testing.assert_array_equal(obs.state, episodes[1].states[0])
    for step in (0, 7):
        batch = global_batch_indices(step, 8, len(dataset), seed=3)
        shards = [batch[slice(*shard_range(8, r, 4))] for r in range(4)]
        assert sum(shards, []) == batch
        assert batch == global_batch_indices(step, 8, len(dataset), seed=3)
    # Each epoch visits every sample once.
    epoch = sum((global_batch_indices(s, 5, 20, seed=1) for s in range(4)), [])
    assert sorted(epoch) == list(range(20))
    with pytest.raises(ValueError, match='multiple of the world size'):
        shard_range(6, 0, 4)


def test_randomised_mounts_are_recorded_and_trained_with(tmp_path_factory, config, tmp_path):
    """Each episode's own mount: seeded, on the mount topic, used to unproject its frames."""
    jitter = ('--camera-jitter-cm', '15', '--camera-jitter-deg', '15')
    bags = generate_demos(tmp_path_factory.getbasetemp(), episodes=2, extra=jitter)
    # the same seeds, recorded by one worker instead of two, give the same mounts
    one = tmp_path / 'one_worker'
    subprocess.run([sys.executable, '-m', 'spatialvla_ros.tools.generate_demos', '--out',
                    str(one), '--episodes', '2', '--image-size', '32', '--tasks', 'reach',
                    '--workers', '1', '--no-cloud', *jitter], check=True, capture_output=True,
                   timeout=240)
    poses = []
    for path in bags + sorted(str(p) for p in one.iterdir() if p.is_dir()):
        (msg,) = [m for _, _, m in read_bag(path)['/spatialvla/camera_pose']]
        pose = msg.transform
        poses.append((pose.translation.x, pose.translation.y, pose.rotation.w))
    assert poses[:2] == poses[2:] and poses[0] != poses[1]
    nominal = dataclasses.replace(config, data=dataclasses.replace(config.data,
                                                                   camera_pose_topic=''))
    for path in bags:
        # the table top (z = 0) is where the episode's own mount puts it, not the config's
        on_table = []
        for cfg in (config, nominal):
            episode, _ = decode_episode(path, cfg)
            points = episode.points[0][0]
            z = points[np.isfinite(points).all(-1)][:, 2]
            on_table.append(np.mean(np.abs(z) < 0.01))
        assert on_table[0] > 0.5 and on_table[1] < 0.2, on_table
    # a malformed mount skips the episode with a warning naming the topic and field
    bad = str(tmp_path / 'bad')

    def edit(topic, index, msg):
        if topic == '/spatialvla/camera_pose':
            msg.transform.rotation.w = 3.0
        return msg
    rewrite_bag(bags[0], bad, storage='mcap', edit=edit)
    episode, warnings = decode_episode(bad, config)
    assert episode is None
    assert any('/spatialvla/camera_pose' in w and 'transform.rotation' in w for w in warnings)

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

"""Training samples from rosbag2 demonstrations, decoded once and cached.

A sample is (RawObservation, actions (H, A) float32 robot units, action_mask (H,) bool), the
tuple `SpatialVLAProcessor.collate` takes. Each bag is decoded once (sync, image / depth
conversion, unprojection to base-frame xyz) into numpy arrays kept in memory; with a
`cache_dir` the arrays are also written as .npz files (no pickle) keyed by the bag path, its
modification time and a hash of every config value decoding depends on, so later runs and
later epochs never touch the bags again.
"""

import dataclasses
import hashlib
import json
import logging
import math
import os

import numpy as np

from spatialvla_ros.core_types import NormalizationStats
from spatialvla_ros.data.bag_episodes import decode_episode
from spatialvla_ros.data.bag_episodes import Episode
from spatialvla_ros.data.bag_reader import bag_mtime_ns
from spatialvla_ros.data.bag_reader import find_bags
from spatialvla_ros.data.lerobot_dataset import is_lerobot_dataset
from spatialvla_ros.data.lerobot_episodes import load_lerobot_episodes

logger = logging.getLogger(__name__)

CACHE_VERSION = 1


def decode_key(config, points_dtype):
    """Hash of everything that changes a decoded episode (not the model or training recipe)."""
    payload = {
        'version': CACHE_VERSION,
        'data': dataclasses.asdict(config.data),
        'action': dataclasses.asdict(config.action),
        'depth_range': [config.encoder3d.min_depth, config.encoder3d.max_depth],
        'points_dtype': np.dtype(points_dtype).name,
    }
    text = json.dumps(payload, sort_keys=True, default=list)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]


def _cache_file(cache_dir, path, config, points_dtype):
    stem = hashlib.sha256(f'{path}|{bag_mtime_ns(path)}|{decode_key(config, points_dtype)}'
                          .encode('utf-8')).hexdigest()[:24]
    return os.path.join(cache_dir, f'{os.path.basename(path)}-{stem}.npz')


def save_episode(episode, filename):
    """Write an Episode (or a skip marker when None) as .npz, atomically."""
    arrays = {'skipped': np.asarray(episode is None)}
    if episode is not None:
        arrays.update(states=episode.states, actions=episode.actions,
                      action_mask=episode.action_mask, stamps=episode.stamps,
                      instructions=episode.instructions.astype(str),
                      camera_names=np.asarray(episode.camera_names, dtype=str),
                      warnings=np.asarray(episode.warnings, dtype=str).reshape(-1))
        for v, (img, pts) in enumerate(zip(episode.images, episode.points)):
            arrays[f'image_{v}'] = img
            arrays[f'points_{v}'] = pts
    tmp = f'{filename}.tmp-{os.getpid()}.npz'
    np.savez(tmp, **arrays)
    os.replace(tmp, filename)


def load_episode(filename, path):
    """Read an .npz cache entry; returns (hit, Episode or None)."""
    try:
        with np.load(filename, allow_pickle=False) as f:
            if bool(f['skipped']):
                return True, None
            names = tuple(str(n) for n in f['camera_names'])
            return True, Episode(
                path=path, images=tuple(f[f'image_{v}'] for v in range(len(names))),
                points=tuple(f[f'points_{v}'] for v in range(len(names))),
                states=f['states'], actions=f['actions'], action_mask=f['action_mask'],
                stamps=f['stamps'], instructions=f['instructions'], camera_names=names,
                warnings=tuple(str(w) for w in f['warnings']))
    except (OSError, KeyError, ValueError) as exc:
        logger.warning('%s: unreadable cache entry (%s); decoding the bag again', filename, exc)
        return False, None


def load_episodes(paths, config, cache_dir=None, points_dtype=np.float32, skip_failed=True):
    """Decode (or read from the cache) every bag under `paths`; read LeRobot v3 datasets.

    Each path is a bag, a folder of bags, or a LeRobot v3 dataset directory (meta/info.json).

    Returns:
        (episodes, warnings): the usable episodes in path order and every warning raised.
    """
    episodes, warnings = [], []
    for path in paths:
        if is_lerobot_dataset(path):
            # Not cached: a LeRobot dataset is already decoded data (video + parquet).
            found, warn = load_lerobot_episodes(path, config, points_dtype)
            episodes.extend(found)
            warnings.extend(warn)
        else:
            _load_bags([path], config, cache_dir, points_dtype, skip_failed, episodes, warnings)
    return episodes, warnings


def _load_bags(paths, config, cache_dir, points_dtype, skip_failed, episodes, warnings):
    for path in find_bags(paths):
        filename = None
        if cache_dir:
            os.makedirs(cache_dir, exist_ok=True)
            filename = _cache_file(cache_dir, path, config, points_dtype)
            if os.path.isfile(filename):
                hit, episode = load_episode(filename, path)
                if hit:
                    warnings.extend(episode.warnings if episode is not None else
                                    [f'{path}: skipped when it was decoded (see that log)'])
                    if episode is not None:
                        episodes.append(episode)
                    continue
        episode, warn = decode_episode(path, config, points_dtype, skip_failed)
        warnings.extend(warn)
        if filename:
            save_episode(episode, filename)
        if episode is not None:
            episodes.append(episode)


def split_episodes(episodes, val_fraction, seed):
    """Hold out whole episodes (frames of one episode are correlated): (train, val)."""
    if val_fraction <= 0 or len(episodes) < 2:
        return list(episodes), []
    order = np.random.default_rng(seed).permutation(len(episodes))
    num_val = min(len(episodes) - 1, max(1, int(math.ceil(val_fraction * len(episodes)))))
    val = sorted(order[:num_val].tolist())
    return ([e for i, e in enumerate(episodes) if i not in val],
            [episodes[i] for i in val])


class EpisodeDataset:
    """Random access to every frame of a list of decoded episodes."""

    def __init__(self, episodes):
        self.episodes = list(episodes)
        lengths = [len(e) for e in self.episodes]
        self._starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)

    def __len__(self):
        return int(self._starts[-1])

    def locate(self, index):
        """(episode number, frame) of a global sample index."""
        if not 0 <= index < len(self):
            raise IndexError(f'index: got {index}, expected 0 <= index < {len(self)}')
        e = int(np.searchsorted(self._starts, index, side='right')) - 1
        return e, int(index - self._starts[e])

    def __getitem__(self, index):
        e, t = self.locate(int(index))
        return self.episodes[e].sample(t)

    def states(self):
        return np.concatenate([e.states for e in self.episodes])

    def actions(self):
        """(N, H, A) chunks and (N, H) masks of every sample."""
        return (np.concatenate([e.actions for e in self.episodes]),
                np.concatenate([e.action_mask for e in self.episodes]))

    def compute_stats(self):
        """Compute the normalisation statistics of states and valid action steps (saved once)."""
        if len(self) == 0:
            raise ValueError('dataset: no sample to compute normalisation statistics from')
        actions, mask = self.actions()
        return NormalizationStats.from_arrays(self.states(), actions, mask)


def global_batch_indices(step, batch_size, num_samples, seed):
    """Sample indices of the global batch of `step`: independent of the number of processes.

    The sample stream is the concatenation of one permutation per epoch (seeded by seed and
    epoch); batch `step` is its slice [step * B, (step + 1) * B). Resuming at any step and any
    world size reproduces the same batches.
    """
    if num_samples < 1:
        raise ValueError('dataset: empty, no batch can be drawn')
    start = step * batch_size
    out = []
    while len(out) < batch_size:
        epoch, offset = divmod(start + len(out), num_samples)
        perm = np.random.default_rng([seed, epoch]).permutation(num_samples)
        take = min(batch_size - len(out), num_samples - offset)
        out.extend(perm[offset:offset + take].tolist())
    return out


def shard_range(batch_size, rank, world_size):
    """[lo, hi) of this rank's share of a global batch (equal shares required)."""
    if batch_size % world_size != 0:
        raise ValueError(f'train.batch_size: got {batch_size}, expected a multiple of the '
                         f'world size {world_size} (every process takes an equal share)')
    per = batch_size // world_size
    return rank * per, (rank + 1) * per


__all__ = ['EpisodeDataset', 'decode_key', 'global_batch_indices', 'load_episode',
           'load_episodes', 'save_episode', 'shard_range', 'split_episodes']

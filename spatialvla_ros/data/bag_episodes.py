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

"""Decode one rosbag2 episode into numpy arrays, exactly as the policy node would see it.

Camera streams are paired by `perception.sync.synchronize_streams` (the offline twin of the
node's `StampSynchronizer`) and turned into observations by the node's `ObservationBuilder`,
so a training sample and a live observation are built by the same code. Per synchronised set
the state is the newest joint state not after the set (what the node holds when the set
completes) and the instruction the newest one received before it. Actions: the first point of
each commanded JointTrajectory is one action; a sample's chunk is the action nearest to each
control tick t + k * dt (k = 0..H-1), masked where none lies within dt / 2 (episode end, gaps).
Camera mounts: when the bag has `data.camera_pose_topic`, each frame is unprojected with the
episode's own mount messages (per camera the newest at or before the frame, else its first
one), as the policy node takes them live; cameras without one keep the config's mount. An
episode with a malformed mount message is skipped (its 3D points would be wrong).

Bad data never stops the whole episode when skipping is safe: frames with NaN states, broken
images, an image size that differs from the rest of the episode, or no action are dropped with
a warning naming the bag, the topic and the time.
"""

import collections
from dataclasses import dataclass
import json
import logging
import types

import numpy as np

from spatialvla_ros.core_types import NS_PER_S
from spatialvla_ros.core_types import RawObservation
from spatialvla_ros.data.bag_reader import BagError
from spatialvla_ros.data.bag_reader import BagFile
from spatialvla_ros.perception.conversions import MessageError
from spatialvla_ros.perception.observation_builder import joint_state_to_vector
from spatialvla_ros.perception.observation_builder import key_topics
from spatialvla_ros.perception.observation_builder import ObservationBuilder
from spatialvla_ros.perception.sync import synchronize_streams

logger = logging.getLogger(__name__)

OUTCOME_TOPIC = '/spatialvla/episode_outcome'


@dataclass
class Episode:
    """One decoded episode; T frames, V cameras, chunk H, action dim A, state dim S."""

    path: str
    images: tuple         # V arrays (T, H_v, W_v, 3) uint8
    points: tuple         # V arrays (T, H_v, W_v, 3) float32 or float16, base frame, NaN invalid
    states: np.ndarray    # (T, S) float32
    actions: np.ndarray   # (T, H, A) float32 robot units; padded steps repeat the last action
    action_mask: np.ndarray  # (T, H) bool, False = padded (past the end or a gap)
    stamps: np.ndarray    # (T,) int64 observation stamps [ns]
    instructions: np.ndarray  # (T,) str
    camera_names: tuple
    warnings: tuple = ()
    # Only with decode_episode(keep_raw=True) (the dataset converter), V entries each: depth
    # (T, H, W) float32 metres as decoded, the CameraInfo K (T, 3, 3) float64 and its size
    # (T, 2) int64 (width, height), and the depth Image encoding ('32FC1' | '16UC1').
    depths: tuple = ()
    camera_k: tuple = ()
    camera_size: tuple = ()
    depth_encodings: tuple = ()

    def __len__(self):
        return int(self.states.shape[0])

    def sample(self, t):
        """(RawObservation, actions (H, A) float32, action_mask (H,) bool) of frame t."""
        obs = RawObservation(
            images=[img[t] for img in self.images],
            points=[pts[t].astype(np.float32) for pts in self.points],
            state=self.states[t].copy(), instruction=str(self.instructions[t]),
            stamp_ns=int(self.stamps[t]), camera_names=list(self.camera_names))
        return obs, self.actions[t].copy(), self.action_mask[t].copy()


class _Warnings(list):
    """Warnings of one episode, each logged and kept (the dataset reports them all)."""

    def add(self, path, topic, stamp_ns, what):
        when = f' at t={stamp_ns / NS_PER_S:.3f} s' if stamp_ns is not None else ''
        text = f'{path}: {topic}{when}: {what}'
        logger.warning(text)
        self.append(text)


def _latest_at_or_before(stamps, t):
    """Index of the last entry of sorted `stamps` <= t, or -1."""
    return int(np.searchsorted(stamps, t, side='right')) - 1


def _action_stream(path, entries, config, warn):
    """First point of each JointTrajectory -> (stamps (N,), actions (N, A)), sorted by stamp."""
    act, topic = config.action, config.data.action_topic
    stamps, actions = [], []
    for stamp, _, msg in entries:
        points = getattr(msg, 'points', None)
        if points is None or len(points) == 0:
            warn.add(path, topic, stamp, 'trajectory without points; ignored')
            continue
        first = types.SimpleNamespace(name=list(getattr(msg, 'joint_names', [])),
                                      position=points[0].positions)
        try:
            vec = joint_state_to_vector(first, act.names, f'{topic}.points[0]')
        except MessageError as exc:
            warn.add(path, topic, stamp, f'{exc}; action ignored (its steps are masked)')
            continue
        if vec.shape != (act.action_dim,):
            raise BagError(f'{path}: {topic}: got {vec.shape[0]} joint positions per point, '
                           f'expected action.action_dim={act.action_dim} (set action.names '
                           'to select joints by name)')
        stamps.append(stamp)
        actions.append(vec)
    order = np.argsort(np.asarray(stamps, dtype=np.int64), kind='stable')
    return (np.asarray(stamps, dtype=np.int64)[order],
            np.asarray(actions, dtype=np.float32).reshape(-1, act.action_dim)[order])


def action_chunk(stamps, actions, t0, horizon, dt_ns):
    """Actions nearest to t0 + k * dt (k < horizon), within dt / 2; padded steps masked.

    Returns:
        (horizon, A) float32 (padding repeats the last valid action, or zeros), (horizon,) bool.
    """
    grid = t0 + np.arange(horizon, dtype=np.int64) * dt_ns
    chunk = np.zeros((horizon, actions.shape[1]), dtype=np.float32)
    mask = np.zeros(horizon, dtype=bool)
    if stamps.size == 0:
        return chunk, mask
    right = np.clip(np.searchsorted(stamps, grid), 0, stamps.size - 1)
    left = np.clip(right - 1, 0, stamps.size - 1)
    nearest = np.where(np.abs(stamps[left] - grid) <= np.abs(stamps[right] - grid), left, right)
    mask = np.abs(stamps[nearest] - grid) * 2 <= dt_ns
    chunk[mask] = actions[nearest[mask]]
    if mask.any():
        # Padded steps repeat the previous valid target (never trained on: they are masked).
        fill = np.maximum.accumulate(np.where(mask, np.arange(horizon), -1))
        fill[fill < 0] = np.flatnonzero(mask)[0]
        chunk = chunk[fill]
    return chunk, mask


def _latest_message(entries, log_time):
    """Newest message received at or before `log_time` (else the first one), or None."""
    best = None
    for _, received, msg in entries:
        if best is None or received <= log_time:
            best = msg
    return best


def _outcome_failed(path, entries, warn):
    for stamp, _, msg in reversed(entries):
        try:
            outcome = json.loads(msg.data)
        except (TypeError, ValueError):
            warn.add(path, OUTCOME_TOPIC, stamp, 'not JSON; outcome ignored')
            return False
        return isinstance(outcome, dict) and outcome.get('success') is False
    return False


def _camera_info_latched(index, data):
    """Camera info published once (latched) rather than with every image: do not sync it."""
    for cam in data.cameras:
        if len(index[cam.camera_info_topic]) * 2 < len(index[cam.color_topic]):
            return True
    return False


def decode_episode(path, config, points_dtype=np.float32, skip_failed=True, keep_raw=False):
    """Decode one bag into an `Episode`, or None when the episode has to be skipped.

    Args:
        path: rosbag2 directory (mcap or sqlite3).
        config: PolicyConfig (data topics, action names / chunk / dt, depth range).
        points_dtype: storage dtype of the xyz maps (float16 halves the cache).
        skip_failed: skip episodes whose /spatialvla/episode_outcome says success=false.
        keep_raw: also keep each frame's decoded depth and CameraInfo (Episode.depths, ...);
            depth cameras only (a cloud camera raises BagError).

    Raises:
        BagError: the bag cannot be read or lacks a configured topic (names the bag, the
            topic and the topics it has).
    """
    data = config.data
    warn = _Warnings()
    with BagFile(path) as bag:
        path = bag.path
        clouds = [c.name for c in data.cameras if not c.depth_topic]
        if keep_raw and clouds:
            raise BagError(f'{path}: camera(s) {clouds} give a PointCloud2; only depth images '
                           'are kept raw (set data.cameras[].depth_topic)')
        cam_topics = key_topics(data, include_camera_info=True)
        small = [data.state_topic, data.instruction_topic, data.action_topic]
        small += [c.camera_info_topic for c in data.cameras]
        bag.require(list(dict.fromkeys(list(cam_topics.values()) + small)))
        extra = [OUTCOME_TOPIC] if skip_failed and OUTCOME_TOPIC in bag.topics else []
        if data.camera_pose_topic in bag.topics:
            extra.append(data.camera_pose_topic)
        index = bag.stamps(set(cam_topics.values()) | set(small) | set(extra),
                           deserialize=set(small) | set(extra))
        if OUTCOME_TOPIC in extra and _outcome_failed(path, index[OUTCOME_TOPIC], warn):
            warn.add(path, OUTCOME_TOPIC, None, 'episode recorded as failed; skipped')
            return None, warn
        if not index[data.instruction_topic]:
            raise BagError(f'{path}: {data.instruction_topic} has no message; every episode '
                           'needs its instruction')
        latched = _camera_info_latched(index, data)
        keys = key_topics(data, include_camera_info=not latched)
        streams = {k: [(s, i) for i, (s, _, _) in enumerate(index[topic])]
                   for k, topic in keys.items()}
        sets = synchronize_streams(streams, data.sync_slop)
        if len(sets) < 2:
            warn.add(path, data.cameras[0].color_topic, None,
                     f'only {len(sets)} synchronised camera set(s) (slop {data.sync_slop} s); '
                     'episode skipped (needs >= 2 frames)')
            return None, warn
        frames = _build_frames(bag, sets, keys, index, config, latched, warn, keep_raw)
    if frames is None:
        return None, warn
    return _assemble(path, frames, data, points_dtype, warn), warn


def _raw_arrays(builder, messages, cam_infos, data):
    """Return the decoded depth (metres), K, size and depth encoding per camera of a frame."""
    out = []
    for cam in data.cameras:
        depth_msg = messages[f'{cam.name}/depth']
        info = messages.get(f'{cam.name}/camera_info') or cam_infos[cam.name]
        K, width, height = builder.decode(f'{cam.name}/camera_info', info)
        out.append((builder.decode(f'{cam.name}/depth', depth_msg), K, (width, height),
                    depth_msg.encoding))
    return out


def _build_frames(bag, sets, keys, index, config, latched, warn, keep_raw=False):
    """Fetch each set's camera messages and build (observation, chunk, mask) per frame."""
    data, act, path = config.data, config.action, bag.path
    slop_ns = int(round(data.sync_slop * NS_PER_S))
    dt_ns = int(round(act.dt * NS_PER_S))
    # The newest joint state may lag the images a little, not by several control periods.
    max_state_age = max(2 * dt_ns, NS_PER_S // 10) + slop_ns
    joint = sorted(((s, m) for s, _, m in index[data.state_topic]), key=lambda e: e[0])
    joint_stamps = np.asarray([s for s, _ in joint], dtype=np.int64)
    instr = sorted(((lt, m.data) for _, lt, m in index[data.instruction_topic]),
                   key=lambda e: e[0])
    instr_times = np.asarray([lt for lt, _ in instr], dtype=np.int64)
    act_stamps, act_values = _action_stream(path, index[data.action_topic], config, warn)
    names = act.names if act.names and len(act.names) == act.state_dim else ()
    builder = ObservationBuilder(data, config.encoder3d, names, act.state_dim)
    mounts = []                        # (stamp_ns, camera, (4, 4)) of the episode, by stamp
    for stamp, _, msg in index.get(data.camera_pose_topic, []):
        try:
            camera, mount = builder.mounts.parse(msg, data.camera_pose_topic)
        except MessageError as exc:
            warn.add(path, data.camera_pose_topic, stamp, f'{exc}; episode skipped')
            return None
        mounts.append((mount.stamp_ns, camera, mount.base_from_camera))
    mounts.sort(key=lambda m: m[0])
    infos = {cam.name: index[cam.camera_info_topic] for cam in data.cameras}
    first_color = (data.cameras[0].color_topic, f'{data.cameras[0].name}/color')
    wanted, owner = {}, {}
    for n, matched in enumerate(sets):
        for key, i in matched.messages.items():
            wanted.setdefault(keys[key], set()).add(i)
            owner[(keys[key], i)] = (n, key)
    pending, frames = {}, {}
    for topic, i, msg in bag.fetch(wanted):
        n, key = owner[(topic, i)]
        pending.setdefault(n, {})[key] = msg
        if len(pending[n]) < len(keys):
            continue
        messages = pending.pop(n)
        stamp = sets[n].stamp_ns
        log_time = index[first_color[0]][sets[n].messages[first_color[1]]][1]
        j = _latest_at_or_before(joint_stamps, stamp + slop_ns)
        if j < 0 or stamp - joint_stamps[j] > max_state_age:
            age = 'none yet' if j < 0 else \
                f'newest is {(stamp - joint_stamps[j]) / NS_PER_S:.3f} s old'
            warn.add(path, data.state_topic, stamp, f'no current joint state ({age}); frame '
                     'skipped')
            continue
        k = max(_latest_at_or_before(instr_times, log_time), 0)
        cam_infos = {name: _latest_message(entries, log_time)
                     for name, entries in infos.items()} if latched else None
        try:
            obs = builder.build(messages, joint[j][1], instr[k][1], stamp, cam_infos,
                                _mounts_at(mounts, stamp, builder.base_from_camera))
        except (MessageError, ValueError) as exc:
            warn.add(path, _topic_of(str(exc), data), stamp, f'{exc}; frame skipped')
            continue
        chunk, mask = action_chunk(act_stamps, act_values, stamp, act.chunk_size, dt_ns)
        if not mask.any():
            warn.add(path, data.action_topic, stamp, 'no commanded action within dt/2 of the '
                     'frame; frame skipped')
            continue
        raw = _raw_arrays(builder, messages, cam_infos, data) if keep_raw else None
        frames[n] = (obs, chunk, mask, raw)
    return frames


def _mounts_at(mounts, stamp_ns, static):
    """Return {camera: (4, 4)} at a frame: the newest mount up to it, else the first or static."""
    out, taken = dict(static), set()
    for stamp, camera, transform in mounts:
        if stamp <= stamp_ns or camera not in taken:
            out[camera] = transform
        taken.add(camera)
    return out


def _topic_of(text, data):
    """Return the configured topic an error message names (for the warning prefix)."""
    topics = [data.state_topic, data.instruction_topic]
    for cam in data.cameras:
        topics += [cam.color_topic, cam.depth_topic, cam.cloud_topic, cam.camera_info_topic]
    for topic in topics:
        if topic and topic in text:
            return topic
    return data.cameras[0].color_topic


def _assemble(path, frames, data, points_dtype, warn):
    order = sorted(frames)
    # The episode's image size is the most common one; frames of another size are dropped.
    shapes = {n: tuple(img.shape for img in frames[n][0].images) for n in order}
    if shapes:
        ref = collections.Counter(shapes.values()).most_common(1)[0][0]
        for n in [n for n in order if shapes[n] != ref]:
            v = next(v for v, (s, r) in enumerate(zip(shapes[n], ref)) if s != r)
            warn.add(path, data.cameras[v].color_topic, frames[n][0].stamp_ns,
                     f"image size {shapes[n][v][:2]} differs from the episode's "
                     f'{ref[v][:2]}; frame skipped')
        order = [n for n in order if shapes[n] == ref]
    if len(order) < 2:
        warn.add(path, data.cameras[0].color_topic, None,
                 f'only {len(order)} usable frame(s); episode skipped (needs >= 2)')
        return None
    obs = [frames[n][0] for n in order]
    num_cams = len(data.cameras)
    raw = {}
    if frames[order[0]][3] is not None:
        per_cam = [[frames[n][3][v] for n in order] for v in range(num_cams)]
        raw = {'depths': tuple(np.stack([r[0] for r in rows]) for rows in per_cam),
               'camera_k': tuple(np.stack([r[1] for r in rows]) for rows in per_cam),
               'camera_size': tuple(np.asarray([r[2] for r in rows], dtype=np.int64)
                                    for rows in per_cam),
               'depth_encodings': tuple(rows[0][3] for rows in per_cam)}
    return Episode(
        path=path,
        images=tuple(np.stack([o.images[v] for o in obs]) for v in range(num_cams)),
        points=tuple(np.stack([o.points[v] for o in obs]).astype(points_dtype)
                     for v in range(num_cams)),
        states=np.stack([o.state for o in obs]).astype(np.float32),
        actions=np.stack([frames[n][1] for n in order]),
        action_mask=np.stack([frames[n][2] for n in order]),
        stamps=np.asarray([o.stamp_ns for o in obs], dtype=np.int64),
        instructions=np.asarray([o.instruction for o in obs]),
        camera_names=tuple(c.name for c in data.cameras),
        warnings=tuple(warn), **raw)


__all__ = ['Episode', 'OUTCOME_TOPIC', 'action_chunk', 'decode_episode']

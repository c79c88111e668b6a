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

"""Decoded episodes <-> LeRobot v3 datasets <-> rosbag2: the trainer's reader and the converter.

Which dataset key holds what comes from the `data:` config (`CameraConfig.image_key` /
`depth_key` / `intrinsics`, `DataConfig.state_key` / `action_key`); the task string is the
instruction. A dataset written here holds, per synchronised frame of a bag, the colour image
(video), the depth in metres (float32, exact), the state, the commanded action (the first
point of the trajectory nearest the frame) and the frame's ROS stamp (`stamp_ns`, int64);
each camera's CameraInfo, mount and ROS names sit in its video feature's `info`.

Reading goes through the policy node's own `ObservationBuilder.assemble` (depth -> base-frame
xyz) and `bag_episodes.action_chunk`, so a converted dataset gives the trainer the samples of
the bag it came from (images within codec tolerance).
"""

import dataclasses
import logging
import os

import numpy as np

from spatialvla_ros.core_types import NS_PER_S
from spatialvla_ros.data.bag_episodes import action_chunk
from spatialvla_ros.data.bag_episodes import decode_episode
from spatialvla_ros.data.bag_episodes import Episode
from spatialvla_ros.data.bag_reader import BagFile
from spatialvla_ros.data.bag_reader import default_typestore
from spatialvla_ros.data.bag_reader import find_bags
from spatialvla_ros.data.lerobot_dataset import LeRobotFormatError
from spatialvla_ros.data.lerobot_dataset import LeRobotReader
from spatialvla_ros.data.lerobot_dataset import LeRobotWriter
from spatialvla_ros.data.recorder import EpisodeRecorder
from spatialvla_ros.perception.conversions import camera_info_fields
from spatialvla_ros.perception.conversions import depth_to_image_fields
from spatialvla_ros.perception.conversions import header_fields
from spatialvla_ros.perception.conversions import MessageError
from spatialvla_ros.perception.conversions import rgb_to_image_fields
from spatialvla_ros.perception.messages import make_message
from spatialvla_ros.perception.observation_builder import ObservationBuilder

logger = logging.getLogger(__name__)

STAMP_KEY = 'stamp_ns'
IMAGE = 'sensor_msgs/msg/Image'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
JOINT_STATE = 'sensor_msgs/msg/JointState'
TRAJECTORY = 'trajectory_msgs/msg/JointTrajectory'
STRING = 'std_msgs/msg/String'


def _state_names(config):
    act = config.action
    return tuple(act.names) if act.names and len(act.names) == act.state_dim else ()


def _features(config, episode, frame_ids):
    """Return the LeRobot features of episodes decoded from bags with `config`."""
    act, data = config.action, config.data
    names = list(act.names) or None
    feats = {}
    for v, cam in enumerate(data.cameras):
        h, w = episode.images[v].shape[1:3]
        K = episode.camera_k[v][0]
        feats[cam.dataset_image_key] = {
            'dtype': 'video', 'shape': [h, w, 3], 'names': ['height', 'width', 'channels'],
            'info': {'camera.k': K.reshape(-1).tolist(),
                     'camera.width': int(episode.camera_size[v][0][0]),
                     'camera.height': int(episode.camera_size[v][0][1]),
                     'camera.frame_id': frame_ids.get(cam.name, ''),
                     'camera.base_from_camera_xyz': list(cam.base_from_camera_xyz),
                     'camera.base_from_camera_quat': list(cam.base_from_camera_quat),
                     'ros.color_topic': cam.color_topic,
                     'ros.camera_info_topic': cam.camera_info_topic}}
        dh, dw = episode.depths[v].shape[1:3]
        feats[cam.dataset_depth_key] = {
            'dtype': 'float32', 'shape': [dh, dw], 'names': ['height', 'width'],
            'info': {'unit': 'm', 'ros.depth_topic': cam.depth_topic,
                     'ros.encoding': episode.depth_encodings[v]}}
    feats[data.state_key] = {'dtype': 'float32', 'shape': [act.state_dim],
                             'names': list(_state_names(config)) or None,
                             'info': {'ros.topic': data.state_topic}}
    feats[data.action_key] = {'dtype': 'float32', 'shape': [act.action_dim], 'names': names,
                              'info': {'ros.topic': data.action_topic}}
    feats[STAMP_KEY] = {'dtype': 'int64', 'shape': [1], 'names': None,
                        'info': {'unit': 'ns', 'what': 'ROS header stamp of the frame'}}
    return feats


def _check_constant(episode, first, config):
    """Refuse a CameraInfo or image size that changes: a dataset keeps one calibration."""
    for v, cam in enumerate(config.data.cameras):
        ks = np.concatenate([first.camera_k[v][:1], episode.camera_k[v]])
        sizes = np.concatenate([first.camera_size[v][:1], episode.camera_size[v]])
        if not (np.array_equal(ks, np.broadcast_to(ks[0], ks.shape))
                and np.array_equal(sizes, np.broadcast_to(sizes[0], sizes.shape))):
            raise LeRobotFormatError(f'{episode.path}: {cam.camera_info_topic}: the CameraInfo '
                                     'changes between frames or episodes; a LeRobot dataset '
                                     'keeps one calibration per camera')
        for name, ref, got in (('image', first.images[v], episode.images[v]),
                               ('depth', first.depths[v], episode.depths[v])):
            if ref.shape[1:] != got.shape[1:]:
                raise LeRobotFormatError(f'{episode.path}: camera {cam.name!r}: {name} size '
                                         f'{got.shape[1:3]} differs from the first episode '
                                         f'({ref.shape[1:3]})')


def bags_to_lerobot(paths, root, config, fps=0, skip_failed=True, video=None, progress=None):
    """Convert rosbag2 episodes (ours or `ros2 bag record`'s) into a new LeRobot v3 dataset.

    Each bag is decoded as the trainer decodes it (`decode_episode`): its frames are the
    trainer's samples, failed / unusable episodes are skipped the same way.

    Args:
        paths: bag directories or folders of them.
        root: new dataset directory.
        config: PolicyConfig (topics, dataset keys, joint names, dt).
        fps: dataset frame rate (0: 1 / action.dt).
        video: lerobot_dataset.VideoOptions or None (default).
        progress: optional callable(bag path) after each bag.

    Returns:
        (number of episodes written, warnings).
    """
    fps = fps or int(round(1.0 / config.action.dt))
    writer, first, warnings, count = None, None, [], 0
    try:
        for path in find_bags(paths):
            episode, warn = decode_episode(path, config, skip_failed=skip_failed, keep_raw=True)
            warnings.extend(warn)
            if episode is not None:
                if writer is None:
                    first = episode
                    frame_ids = _frame_ids(path, config)
                    writer = LeRobotWriter(root, fps, _features(config, episode, frame_ids),
                                           robot_type=None, **({'video': video} if video else {}))
                _check_constant(episode, first, config)
                writer.add_episode(_frames(episode, config), list(episode.instructions))
                count += 1
            if progress is not None:
                progress(path)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise LeRobotFormatError(f'{root}: no usable episode in {list(map(str, paths))}; '
                                 'nothing written')
    return count, warnings


def _frame_ids(path, config):
    """Optical frame id of each camera from its first colour Image (kept for the way back)."""
    out = {}
    with BagFile(path) as bag:
        for cam in config.data.cameras:
            for _, _, msg in bag.fetch({cam.color_topic: {0}}):
                out[cam.name] = str(msg.header.frame_id)
    return out


def _frames(episode, config):
    data = config.data
    frames = {}
    for v, cam in enumerate(data.cameras):
        frames[cam.dataset_image_key] = episode.images[v]
        frames[cam.dataset_depth_key] = episode.depths[v].astype(np.float32)
    frames[data.state_key] = episode.states
    frames[data.action_key] = episode.actions[:, 0]
    frames[STAMP_KEY] = episode.stamps
    return frames


def _camera_calibration(reader, cam, image_key, image_shape):
    """(K, width, height) and (xyz, quat) of a camera: the dataset's, else the config's."""
    info = reader.features[image_key].get('info') or {}
    if 'camera.k' in info:
        K = np.asarray(info['camera.k'], dtype=np.float64).reshape(3, 3)
        calib = (K, int(info['camera.width']), int(info['camera.height']))
    elif cam.intrinsics:
        fx, fy, cx, cy = cam.intrinsics
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        calib = (K, int(image_shape[1]), int(image_shape[0]))
    else:
        raise LeRobotFormatError(
            f'{reader.root}/meta/info.json: feature {image_key!r} has no camera intrinsics '
            f"(info 'camera.k'); set data.cameras[{cam.name}].intrinsics: [fx, fy, cx, cy]")
    mount = (tuple(info.get('camera.base_from_camera_xyz', cam.base_from_camera_xyz)),
             tuple(info.get('camera.base_from_camera_quat', cam.base_from_camera_quat)))
    return calib, mount


def _check_shape(reader, key, got, expected, config_key):
    if list(got) != list(expected):
        raise LeRobotFormatError(f'{reader.root}/meta/info.json: feature {key!r} has shape '
                                 f'{list(got)}, expected [{expected[0]}] ({config_key})')


def load_lerobot_episodes(root, config, points_dtype=np.float32):
    """Decode every episode of a local LeRobot v3 dataset into `Episode`s for training.

    Frames whose observation cannot be built (no valid depth in range, ...) are skipped with a
    warning, as from a bag. Without a depth key the xyz maps are NaN (no geometry).

    Returns:
        (episodes, warnings).
    """
    reader = LeRobotReader(root)
    data, act = config.data, config.action
    image_keys = [c.dataset_image_key for c in data.cameras]
    reader.require(image_keys + [data.state_key, data.action_key])
    _check_shape(reader, data.state_key, reader.features[data.state_key]['shape'],
                 [act.state_dim], 'action.state_dim')
    _check_shape(reader, data.action_key, reader.features[data.action_key]['shape'],
                 [act.action_dim], 'action.action_dim')
    depth_keys = [c.dataset_depth_key if c.dataset_depth_key in reader.features else None
                  for c in data.cameras]
    keys = image_keys + [k for k in depth_keys if k] + [data.state_key, data.action_key]
    if STAMP_KEY in reader.features:
        keys.append(STAMP_KEY)
    dt_ns = int(round(act.dt * NS_PER_S))
    episodes, warnings, builder, calib = [], [], None, {}
    for e in range(len(reader)):
        frames = reader.episode(e, keys)
        where = f'{reader.root}#episode={reader.episodes[e]["episode_index"]}'
        if builder is None:
            cameras = []
            for cam, key in zip(data.cameras, image_keys):
                calib[cam.name], (xyz, quat) = _camera_calibration(
                    reader, cam, key, frames[key].shape[1:3])
                cameras.append(dataclasses.replace(cam, base_from_camera_xyz=xyz,
                                                   base_from_camera_quat=quat))
            builder = ObservationBuilder(dataclasses.replace(data, cameras=tuple(cameras)),
                                         config.encoder3d)
        if STAMP_KEY in frames:
            stamps = frames[STAMP_KEY].astype(np.int64).reshape(-1)
        else:
            stamps = np.rint(frames['timestamp'].astype(np.float64) * NS_PER_S).astype(np.int64)
        actions = frames[data.action_key].astype(np.float32)
        kept, points, chunks, masks = [], [], [], []
        for t in range(len(stamps)):
            maps = []
            try:
                for v, cam in enumerate(data.cameras):
                    image = frames[image_keys[v]][t]
                    if depth_keys[v] is None:
                        maps.append(np.full(image.shape, np.nan, dtype=np.float32))
                        continue
                    maps.append(builder.camera_points(builder.cameras[v], image.shape,
                                                      calib[cam.name],
                                                      depth=frames[depth_keys[v]][t]))
            except (MessageError, ValueError) as exc:
                text = f'{where}: frame {t}: {exc}; frame skipped'
                logger.warning(text)
                warnings.append(text)
                continue
            chunk, mask = action_chunk(stamps, actions, stamps[t], act.chunk_size, dt_ns)
            kept.append(t)
            points.append(maps)
            chunks.append(chunk)
            masks.append(mask)
        if len(kept) < 2:
            text = f'{where}: only {len(kept)} usable frame(s); episode skipped (needs >= 2)'
            logger.warning(text)
            warnings.append(text)
            continue
        episodes.append(Episode(
            path=where,
            images=tuple(frames[k][kept] for k in image_keys),
            points=tuple(np.stack([p[v] for p in points]).astype(points_dtype)
                         for v in range(len(data.cameras))),
            states=frames[data.state_key][kept].astype(np.float32),
            actions=np.stack(chunks), action_mask=np.stack(masks), stamps=stamps[kept],
            instructions=frames['task'][kept], camera_names=tuple(c.name for c in data.cameras),
            warnings=()))
    return episodes, warnings


def _message(msgtype, values):
    store = default_typestore()
    return bytes(store.serialize_cdr(make_message(store.types[msgtype], values), msgtype))


def lerobot_to_bags(root, out, config, storage='mcap', progress=None):
    """Write each episode of a LeRobot v3 dataset as one rosbag2 directory under `out`.

    Per frame, at its stamp: colour Image (rgb8), depth Image (its recorded encoding), CameraInfo
    of each camera, the JointState of the state, a JointTrajectory whose one point is the
    action; the task as a latched String whenever it changes. Decoding such a bag gives the
    frames back (the depth and the numbers exactly).

    Returns:
        the bag directories written, in episode order.
    """
    reader = LeRobotReader(root)
    data, act = config.data, config.action
    image_keys = [c.dataset_image_key for c in data.cameras]
    depth_keys = [c.dataset_depth_key for c in data.cameras]
    reader.require(image_keys + depth_keys + [data.state_key, data.action_key])
    state_names = list(reader.features[data.state_key].get('names') or _state_names(config)
                       or [f'joint{i}' for i in range(act.state_dim)])
    action_names = list(reader.features[data.action_key].get('names') or act.names
                        or state_names)
    topics = [(data.instruction_topic, STRING, 'latched')]
    for cam in data.cameras:
        topics += [(cam.color_topic, IMAGE, 'stream'), (cam.depth_topic, IMAGE, 'stream'),
                   (cam.camera_info_topic, CAMERA_INFO, 'stream')]
    topics += [(data.state_topic, JOINT_STATE, 'stream'), (data.action_topic, TRAJECTORY,
                                                           'stream')]
    os.makedirs(out, exist_ok=True)
    keys = image_keys + depth_keys + [data.state_key, data.action_key]
    keys += [STAMP_KEY] if STAMP_KEY in reader.features else []
    written = []
    for e in range(len(reader)):
        frames = reader.episode(e, keys)
        calib = [_camera_calibration(reader, cam, key, frames[key].shape[1:3])[0]
                 for cam, key in zip(data.cameras, image_keys)]
        infos = [reader.features[k].get('info') or {} for k in image_keys]
        encodings = [(reader.features[k].get('info') or {}).get('ros.encoding', '32FC1')
                     for k in depth_keys]
        if STAMP_KEY in frames:
            stamps = frames[STAMP_KEY].astype(np.int64).reshape(-1)
        else:
            stamps = np.rint(frames['timestamp'].astype(np.float64) * NS_PER_S).astype(np.int64)
        path = os.path.join(out, f'episode_{reader.episodes[e]["episode_index"]:06d}')
        with EpisodeRecorder(path, topics, default_typestore(), storage) as bag:
            task = None
            for t, stamp in enumerate(int(s) for s in stamps):
                if frames['task'][t] != task:
                    task = str(frames['task'][t])
                    bag.write_raw(data.instruction_topic, stamp, _message(STRING, {'data': task}))
                for v, cam in enumerate(data.cameras):
                    frame_id = infos[v].get('camera.frame_id', '')
                    K, width, height = calib[v]
                    bag.write_raw(cam.color_topic, stamp, _message(IMAGE, rgb_to_image_fields(
                        frames[image_keys[v]][t], 'rgb8', stamp, frame_id)))
                    bag.write_raw(cam.depth_topic, stamp, _message(IMAGE, depth_to_image_fields(
                        frames[depth_keys[v]][t], encodings[v], stamp, frame_id)))
                    bag.write_raw(cam.camera_info_topic, stamp, _message(
                        CAMERA_INFO, camera_info_fields(K, width, height, stamp, frame_id)))
                bag.write_raw(data.state_topic, stamp, _message(JOINT_STATE, {
                    'header': header_fields(stamp), 'name': state_names,
                    'position': frames[data.state_key][t].astype(np.float64),
                    'velocity': np.zeros(0), 'effort': np.zeros(0)}))
                bag.write_raw(data.action_topic, stamp, _message(TRAJECTORY, {
                    'header': header_fields(stamp), 'joint_names': action_names,
                    'points': [{'positions': frames[data.action_key][t].astype(np.float64),
                                'time_from_start': {'sec': 0, 'nanosec': 0}}]}))
        written.append(path)
        if progress is not None:
            progress(path)
    return written


__all__ = ['STAMP_KEY', 'bags_to_lerobot', 'lerobot_to_bags', 'load_lerobot_episodes']

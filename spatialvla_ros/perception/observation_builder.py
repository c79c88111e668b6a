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

"""One synchronised set of ROS messages -> one `RawObservation` (live node and bag dataset).

Per camera of `DataConfig.cameras` the set holds a colour Image, a depth Image OR a
PointCloud2, and a CameraInfo, under the keys '<camera>/color', '<camera>/depth' |
'<camera>/cloud' and '<camera>/camera_info' (`sync_keys` lists them, `key_topics` maps them
to topics). The joint-state message and the instruction come separately.

Assumptions, stated once:
- depth / cloud and colour are REGISTERED: they come from the same optical frame, the one the
  CameraInfo describes (e.g. RealSense `aligned_depth_to_color`). A depth image or organised
  cloud of another resolution is taken to cover the same field of view: it is unprojected
  with K rescaled to its size and the xyz map is resampled (nearest) to the colour size.
- an unorganised cloud is in that optical frame; it is rendered into the colour image plane
  with a z-buffer.
- `base_from_camera` is the config's mount unless the caller passes the mounts in force
  (`perception.mounts.CameraMounts.snapshot`: the newest mount message per camera), not TF.
"""

import numpy as np

from spatialvla_ros.core_types import RawObservation
from spatialvla_ros.perception import conversions
from spatialvla_ros.perception import geometry
from spatialvla_ros.perception.conversions import MessageError
from spatialvla_ros.perception.mounts import CameraMounts

COLOR = 'color'
DEPTH = 'depth'
CLOUD = 'cloud'
CAMERA_INFO = 'camera_info'


def camera_keys(camera, include_camera_info=True):
    """Keys of one CameraConfig's messages: color, depth or cloud, [camera_info]."""
    keys = [f'{camera.name}/{COLOR}', f'{camera.name}/{DEPTH if camera.depth_topic else CLOUD}']
    if include_camera_info:
        keys.append(f'{camera.name}/{CAMERA_INFO}')
    return tuple(keys)


def sync_keys(data_config, include_camera_info=True):
    """All keys to synchronise for a DataConfig, cameras in config order."""
    return tuple(k for cam in data_config.cameras for k in camera_keys(cam, include_camera_info))


def key_topics(data_config, include_camera_info=True):
    """{key: topic} for subscribing (node) or reading a bag (dataset)."""
    out = {}
    for cam in data_config.cameras:
        out[f'{cam.name}/{COLOR}'] = cam.color_topic
        if cam.depth_topic:
            out[f'{cam.name}/{DEPTH}'] = cam.depth_topic
        else:
            out[f'{cam.name}/{CLOUD}'] = cam.cloud_topic
        if include_camera_info:
            out[f'{cam.name}/{CAMERA_INFO}'] = cam.camera_info_topic
    return out


def joint_state_to_vector(msg, names=(), what='joint_state'):
    """sensor_msgs/JointState-like -> (len(names),) float32 positions in the order of `names`.

    Joints the message has beyond `names` are ignored (a JointState topic usually carries
    every joint of the robot, e.g. the second, mimicking finger). With `names` empty the
    positions are returned as they come.
    """
    conversions.require_fields(msg, ('name', 'position'), what, 'sensor_msgs/JointState')
    got = [str(n) for n in msg.name]
    pos = np.asarray(msg.position, dtype=np.float64).reshape(-1)
    if names:
        if len(got) != pos.size:
            raise MessageError('size', f'{what}.position: got {pos.size} values for '
                               f'{len(got)} names, expected one position per name')
        index = {}
        for i, n in enumerate(got):
            if n in index:
                raise MessageError('joint_names', f'{what}.name: joint {n!r} appears twice, '
                                   'expected unique names')
            index[n] = i
        missing = [n for n in names if n not in index]
        if missing:
            raise MessageError('joint_names', f'{what}.name: missing joints {missing} (got '
                               f'{got}), expected all of {list(names)}')
        pos = pos[[index[n] for n in names]]
    bad = np.flatnonzero(~np.isfinite(pos))
    if bad.size:
        label = names[bad[0]] if names else int(bad[0])
        raise MessageError('nonfinite', f'{what}.position[{label!r}]: got {pos[bad[0]]}, '
                           'expected a finite value')
    return pos.astype(np.float32)


# kind -> parser of one message of a synchronised set; see ObservationBuilder.decode.
_DECODERS = {
    COLOR: conversions.image_to_rgb,                # (H, W, 3) uint8 RGB
    DEPTH: conversions.depth_to_meters,             # (H, W) float32 [m]
    CLOUD: conversions.pointcloud2_to_numpy,        # (xyz (N, 3), rgb | None, shape | None)
    CAMERA_INFO: conversions.camera_info_to_K,      # (K (3, 3), width, height)
}


class ObservationBuilder:
    """Turns synchronised messages into RawObservations for the model.

    Two steps, so a live node can decode each message once, on arrival, and keep the arrays:
    `decode(key, msg)` parses (and thereby validates) one message; `assemble(arrays, state,
    ...)` unprojects the decoded set into an observation. `build` does both for a set of
    messages at once (bag dataset, tools, tests).

    Args:
        data_config: perception.configuration.DataConfig (cameras, topics, mounts).
        encoder3d: models.configuration_spatialvla.Encoder3DConfig (min_depth / max_depth [m]).
        state_names: joint names of the state vector, in order (ActionConfig.names); empty to
            take JointState.position as it comes.
        state_dim: expected state length (ActionConfig.state_dim), or None not to check.
        require_points: raise MessageError when a camera yields no valid 3D point (an
            observation without geometry is not one the policy should act on).
    """

    def __init__(self, data_config, encoder3d, state_names=(), state_dim=None,
                 require_points=True):
        self.data_config = data_config
        self.cameras = tuple(data_config.cameras)
        self.min_depth = float(encoder3d.min_depth)
        self.max_depth = float(encoder3d.max_depth)
        self.state_names = tuple(state_names)
        if state_names and state_dim is not None and len(self.state_names) != state_dim:
            raise ValueError(f'state_names: got {len(self.state_names)} names, expected '
                             f'state_dim={state_dim}')
        self.state_dim = state_dim
        self.require_points = require_points
        self.mounts = CameraMounts(data_config)
        self.base_from_camera = self.mounts.static
        self.topics = key_topics(data_config)

    def decode(self, key, msg, what=None):
        """Parse one message of a set (key as in `sync_keys`); raise MessageError if malformed.

        `what` prefixes error messages (default: the key's topic).
        """
        kind = key.rsplit('/', 1)[-1]
        return _DECODERS[kind](msg, what or self.topics[key])

    def state(self, joint_state, what=None):
        """JointState-like -> (state_dim,) float32 state vector (MessageError if unusable).

        `what` prefixes error messages (default: the state topic).
        """
        what = what or self.data_config.state_topic
        state = joint_state_to_vector(joint_state, self.state_names, what)
        if self.state_dim is not None and state.shape != (self.state_dim,):
            raise MessageError('joint_names', f'{what}: got {state.size} joint positions, '
                               f'expected state_dim={self.state_dim} (set action.names to '
                               'select joints by name)')
        return state

    def camera_points(self, camera, image_shape, camera_info, depth=None, cloud=None,
                      base_from_camera=None):
        """(H, W, 3) float32 base-frame xyz map of one camera at the colour size (H, W).

        camera_info: decoded (K, width, height); depth: decoded (H', W') metres; cloud:
        decoded (xyz, rgb, shape) (see `decode`); base_from_camera: (4, 4) mount (default:
        the config's).
        """
        height, width = image_shape[:2]
        K, info_w, info_h = camera_info
        T = self.base_from_camera[camera.name] if base_from_camera is None else base_from_camera
        rng = {'min_depth': self.min_depth, 'max_depth': self.max_depth}
        if depth is not None:
            dh, dw = depth.shape
            K_d = geometry.scale_intrinsics(K, (info_w, info_h), (dw, dh))
            xyz = geometry.depth_to_points(depth, K_d, T, **rng)
            xyz = geometry.resize_nearest(xyz, height, width)
            source = camera.depth_topic
        elif cloud is not None:
            pts, _, shape = cloud
            if shape is not None:
                xyz, _ = geometry.organized_cloud_to_xyz_map(pts.reshape(shape + (3,)), None, T,
                                                             **rng)
                xyz = geometry.resize_nearest(xyz, height, width)
            else:
                K_c = geometry.scale_intrinsics(K, (info_w, info_h), (width, height))
                xyz, _ = geometry.cloud_to_xyz_map(pts, None, K_c, height, width, T, **rng)
            source = camera.cloud_topic
        else:
            raise MessageError('frame', f'camera {camera.name!r}: got neither a depth image '
                               'nor a point cloud, expected one of them')
        if self.require_points and not np.isfinite(xyz[..., 2]).any():
            raise MessageError('frame', f'{source}: no valid 3D point within '
                               f'[{self.min_depth}, {self.max_depth}] m for camera '
                               f'{camera.name!r}')
        return xyz

    def assemble(self, arrays, state, instruction, stamp_ns, mounts=None):
        """One RawObservation from a decoded set; the result is valid by construction.

        Args:
            arrays: {key: `decode(key, msg)`} for every key of `sync_keys` (the camera_info
                key may be missing when `build` supplies latched infos).
            state: `state(joint_state)`, (state_dim,) float32.
            instruction: the task in words (non-empty str).
            stamp_ns: observation stamp [ns].
            mounts: {camera name: (4, 4) base_from_camera} in force (`CameraMounts.snapshot`);
                None: the config's mounts.
        """
        mounts = self.base_from_camera if mounts is None else mounts
        if not isinstance(instruction, str) or not instruction.strip():
            raise MessageError('invalid', f'instruction: got {instruction!r}, expected a '
                               'non-empty string')
        images, points = [], []
        for cam in self.cameras:
            rgb = self._get(arrays, cam, COLOR)
            depth = self._get(arrays, cam, DEPTH) if cam.depth_topic else None
            cloud = None if cam.depth_topic else self._get(arrays, cam, CLOUD)
            info = self._get(arrays, cam, CAMERA_INFO)
            points.append(self.camera_points(cam, rgb.shape, info, depth, cloud,
                                             mounts[cam.name]))
            images.append(rgb)
        return RawObservation(images=images, points=points, state=state, instruction=instruction,
                              stamp_ns=int(stamp_ns), camera_names=[c.name for c in self.cameras])

    def build(self, messages, joint_state, instruction, stamp_ns=None, camera_infos=None,
              mounts=None):
        """One RawObservation from synchronised `messages` {key: msg} (see `sync_keys`).

        Args:
            messages: e.g. MatchedSet.messages; keys '<camera>/color', '<camera>/depth' or
                '<camera>/cloud', and '<camera>/camera_info'.
            joint_state: JointState-like message (`name`, `position`).
            instruction: the task in words (str, or a std_msgs/String-like with `data`).
            stamp_ns: observation stamp; default the first camera's colour header stamp.
            camera_infos: {camera name: CameraInfo} used when messages lack the camera_info
                key (drivers that publish it latched, once).
            mounts: {camera name: (4, 4) base_from_camera} (None: the config's mounts).
        """
        messages = dict(messages)
        for cam in self.cameras:
            key = f'{cam.name}/{CAMERA_INFO}'
            if key not in messages and (camera_infos or {}).get(cam.name) is not None:
                messages[key] = camera_infos[cam.name]
            if key not in messages:
                raise MessageError('frame', f'{cam.camera_info_topic}: no CameraInfo for camera '
                                   f'{cam.name!r} (neither key {key} nor camera_infos has one)')
        if stamp_ns is None:
            stamp_ns = conversions.stamp_to_ns(
                self._get(messages, self.cameras[0], COLOR).header.stamp)
        arrays = {}
        for cam in self.cameras:
            for key in camera_keys(cam):
                arrays[key] = self.decode(key, self._get(messages, cam, key.rsplit('/', 1)[-1]))
        return self.assemble(arrays, self.state(joint_state),
                             getattr(instruction, 'data', instruction), stamp_ns, mounts)

    @staticmethod
    def _get(messages, camera, kind):
        key = f'{camera.name}/{kind}'
        if key not in messages:
            raise MessageError('frame', f"messages: no '{key}' for camera {camera.name!r} (got "
                               f'{sorted(messages)})')
        return messages[key]


__all__ = [
    'CAMERA_INFO',
    'CLOUD',
    'COLOR',
    'DEPTH',
    'ObservationBuilder',
    'camera_keys',
    'joint_state_to_vector',
    'key_topics',
    'sync_keys',
]

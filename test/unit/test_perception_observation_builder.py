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

"""Synchronised messages -> RawObservation: depth, clouds, resampling, joint order, errors."""

import dataclasses
import os

import numpy as np
import open3d as o3d
import pytest
from repo_paths import REPO_ROOT
from rosbags.typesys import get_typestore
from rosbags.typesys import Stores
import sensor_msgs.msg
from spatialvla_ros.perception import conversions as cv
from spatialvla_ros.perception import geometry
from spatialvla_ros.perception.conversions import MessageError
from spatialvla_ros.perception.messages import make_message
from spatialvla_ros.perception.observation_builder import joint_state_to_vector
from spatialvla_ros.perception.observation_builder import key_topics
from spatialvla_ros.perception.observation_builder import ObservationBuilder
from spatialvla_ros.perception.observation_builder import sync_keys
from spatialvla_ros.perception.sync import StampSynchronizer
from spatialvla_ros.policies.configuration_policy import PolicyConfig

CONFIG = os.path.join(REPO_ROOT, 'config',
                      'late_llama.yaml')
STORE = get_typestore(Stores.ROS2_LYRICAL)
FAMILIES = {
    'rclpy': {n: getattr(sensor_msgs.msg, n)
              for n in ('Image', 'CameraInfo', 'PointCloud2', 'JointState')},
    'rosbags': {n: STORE.types[f'sensor_msgs/msg/{n}']
                for n in ('Image', 'CameraInfo', 'PointCloud2', 'JointState')},
}
H, W = 48, 64
K = np.array([[52.0, 0, 31.7], [0, 50.0, 23.2], [0, 0, 1]])
STAMP = 1_700_000_000_123_456_789
TOL = 1e-5  # [m]


@pytest.fixture(scope='module')
def cfg():
    return PolicyConfig.from_yaml(CONFIG)


@pytest.fixture(params=sorted(FAMILIES))
def fam(request):
    return FAMILIES[request.param]


def _rotated(camera, **kw):
    # A camera looking down at the table: rotated about x and z, not an identity mount.
    q = np.array([0.8, -0.3, 0.2, 0.45])
    return dataclasses.replace(camera, base_from_camera_quat=tuple(q / np.linalg.norm(q)), **kw)


def _data(cfg, **kw):
    return dataclasses.replace(cfg.data, cameras=(_rotated(cfg.data.cameras[0], **kw),))


def _scene(seed=0, shape=(H, W)):
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.3, 4.5, shape).astype(np.float32)
    depth[rng.random(shape) < 0.1] = 0.0
    depth[rng.random(shape) < 0.05] = 6.0  # beyond encoder3d.max_depth = 5
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    return depth, rgb


def _open3d(depth, K, T):
    intr = o3d.camera.PinholeCameraIntrinsic(depth.shape[1], depth.shape[0], K[0, 0], K[1, 1],
                                             K[0, 2], K[1, 2])
    pcd = o3d.geometry.PointCloud.create_from_depth_image(
        o3d.geometry.Image(depth), intr, np.linalg.inv(T), depth_scale=1.0, depth_trunc=5.0,
        project_valid_depth_only=False)
    return np.asarray(pcd.points).reshape(depth.shape + (3,))


def _joint_state(fam, names, positions):
    return make_message(fam['JointState'], {'name': list(names),
                                            'position': np.asarray(positions, np.float64)})


def _messages(fam, rgb, depth=None, cloud=None, cam='front'):
    msgs = {
        f'{cam}/color': make_message(fam['Image'], cv.rgb_to_image_fields(rgb, 'bgr8', STAMP)),
        f'{cam}/camera_info': make_message(fam['CameraInfo'],
                                           cv.camera_info_fields(K, W, H, STAMP)),
    }
    if depth is not None:
        msgs[f'{cam}/depth'] = make_message(fam['Image'],
                                            cv.depth_to_image_fields(depth, '32FC1', STAMP))
    if cloud is not None:
        msgs[f'{cam}/cloud'] = make_message(fam['PointCloud2'], cloud)
    return msgs


def _builder(cfg, data):
    return ObservationBuilder(data, cfg.encoder3d, cfg.action.names, cfg.action.state_dim)


def _state(fam, cfg):
    return _joint_state(fam, cfg.action.names, np.arange(8) * 0.1)


def test_depth_camera_matches_open3d(cfg, fam):
    data = _data(cfg)
    depth, rgb = _scene(0)
    builder = _builder(cfg, data)
    obs = builder.build(_messages(fam, rgb, depth), _state(fam, cfg), 'pick up the cube')
    T = builder.base_from_camera['front']
    np.testing.assert_array_equal(obs.images[0], rgb)
    ref = _open3d(depth, K, T)
    np.testing.assert_allclose(obs.points[0], ref, atol=TOL, equal_nan=True)
    assert np.isnan(obs.points[0][..., 0]).mean() > 0.1
    assert obs.stamp_ns == STAMP and obs.camera_names == ['front']
    assert obs.instruction == 'pick up the cube'
    np.testing.assert_allclose(obs.state, np.arange(8) * 0.1, rtol=1e-6)


@pytest.mark.parametrize('organised', [False, True])
def test_cloud_camera_equals_depth_camera(cfg, fam, organised):
    depth, rgb = _scene(1)
    depth_data = _data(cfg)
    cloud_data = _data(cfg, depth_topic='', cloud_topic='/camera/depth/points')
    expected = _builder(cfg, depth_data).build(_messages(fam, rgb, depth), _state(fam, cfg),
                                               'x').points[0]
    # The sensor's own cloud, in the optical frame, computed by Open3D.
    cam = _open3d(depth, K, np.eye(4)).astype(np.float32)  # (H, W, 3), NaN invalid
    if organised:
        fields = cv.pointcloud2_fields_xyzrgb(cam, rgb)
    else:
        pts = cam.reshape(-1, 3)
        pts = pts[np.isfinite(pts).all(axis=1)]
        fields = cv.pointcloud2_fields_xyzrgb(pts[::-1])   # any order
    obs = _builder(cfg, cloud_data).build(_messages(fam, rgb, cloud=fields), _state(fam, cfg),
                                          'x')
    np.testing.assert_allclose(obs.points[0], expected, atol=TOL, equal_nan=True)
    np.testing.assert_array_equal(np.isnan(obs.points[0]), np.isnan(expected))


def test_half_resolution_depth_is_resampled_to_colour(cfg, fam):
    depth, rgb = _scene(2, shape=(H // 2, W // 2))
    builder = _builder(cfg, _data(cfg))
    obs = builder.build(_messages(fam, rgb, depth), _state(fam, cfg), 'x')
    assert obs.points[0].shape == (H, W, 3)
    K_half = geometry.scale_intrinsics(K, (W, H), (W // 2, H // 2))
    ref = _open3d(depth, K_half, builder.base_from_camera['front'])
    ref = np.repeat(np.repeat(ref, 2, axis=0), 2, axis=1)
    np.testing.assert_allclose(obs.points[0], ref, atol=TOL, equal_nan=True)


def test_joint_state_reordered_by_name(fam):
    names = ('j1', 'j2', 'j3')
    msg = _joint_state(fam, ['j3', 'extra', 'j1', 'j2'], [3.0, 9.0, 1.0, 2.0])
    np.testing.assert_array_equal(joint_state_to_vector(msg, names), [1.0, 2.0, 3.0])
    with pytest.raises(MessageError, match=r"/js\.name: missing joints \['j4'\]"):
        joint_state_to_vector(msg, names + ('j4',), '/js')
    with pytest.raises(MessageError, match=r'joint_state\.name: joint .j1. appears twice'):
        joint_state_to_vector(_joint_state(fam, ['j1', 'j1'], [0, 0]), ('j1',))
    with pytest.raises(MessageError, match=r"joint_state\.position\['j2'\]"):
        joint_state_to_vector(_joint_state(fam, ['j1', 'j2'], [0, np.nan]), ('j1', 'j2'))
    with pytest.raises(MessageError, match=r'joint_state\.position: got 1 values for 2'):
        joint_state_to_vector(_joint_state(fam, ['j1', 'j2'], [0]), ('j1', 'j2'))


def test_bad_inputs_raise_message_error(cfg, fam):
    depth, rgb = _scene(3)
    builder = _builder(cfg, _data(cfg))
    state = _state(fam, cfg)
    far = np.full_like(depth, 7.0)  # everything beyond max_depth
    with pytest.raises(MessageError, match='/camera/depth/image_raw: no valid 3D point'):
        builder.build(_messages(fam, rgb, far), state, 'x')
    msgs = _messages(fam, rgb, depth)
    del msgs['front/depth']
    with pytest.raises(MessageError, match="no 'front/depth'"):
        builder.build(msgs, state, 'x')
    with pytest.raises(MessageError, match='instruction'):
        builder.build(_messages(fam, rgb, depth), state, '  ')
    short = _joint_state(fam, cfg.action.names[:3], [0, 0, 0])
    with pytest.raises(MessageError, match='/joint_states.name: missing joints'):
        builder.build(_messages(fam, rgb, depth), short, 'x')
    bad_k = dict(cv.camera_info_fields(K * 0, W, H))
    msgs = _messages(fam, rgb, depth)
    msgs['front/camera_info'] = make_message(fam['CameraInfo'], bad_k)
    with pytest.raises(MessageError, match=r'/camera/color/camera_info\.k \(fx\)'):
        builder.build(msgs, state, 'x')


def test_synchronised_set_feeds_the_builder(cfg, fam):
    data = _data(cfg)
    keys = sync_keys(data)
    assert keys == ('front/color', 'front/depth', 'front/camera_info')
    assert key_topics(data)['front/depth'] == '/camera/depth/image_raw'
    sync = StampSynchronizer(keys, data.sync_slop)
    depth, rgb = _scene(4)
    msgs = _messages(fam, rgb, depth)
    matched = None
    for key in keys:
        matched = sync.add(key, cv.stamp_to_ns(msgs[key].header.stamp), msgs[key])
    obs = _builder(cfg, data).build(matched.messages, _state(fam, cfg), 'x',
                                    stamp_ns=matched.stamp_ns)
    assert obs.stamp_ns == STAMP and len(obs.points) == 1


def test_decode_then_assemble_equals_build(cfg, fam):
    """The live node's two steps (decode on arrival, assemble in the worker) equal `build`."""
    data = _data(cfg)
    builder = _builder(cfg, data)
    depth, rgb = _scene(5)
    msgs = _messages(fam, rgb, depth)
    expected = builder.build(msgs, _state(fam, cfg), 'x', STAMP)
    arrays = {key: builder.decode(key, msg) for key, msg in msgs.items()}
    assert arrays['front/depth'].dtype == np.float32 and arrays['front/color'].shape == (H, W, 3)
    obs = builder.assemble(arrays, builder.state(_state(fam, cfg)), 'x', STAMP)
    np.testing.assert_array_equal(obs.images[0], expected.images[0])
    np.testing.assert_array_equal(obs.points[0], expected.points[0])
    np.testing.assert_array_equal(obs.state, expected.state)
    with pytest.raises(MessageError, match='/camera/depth/image_raw.encoding') as info:
        builder.decode('front/depth', msgs['front/color'])
    assert info.value.reason == 'encoding'
    with pytest.raises(MessageError, match='state_dim=8') as info:
        ObservationBuilder(data, cfg.encoder3d, (), 8).state(
            _joint_state(fam, ['a', 'b'], [0.0, 1.0]))
    assert info.value.reason == 'joint_names'

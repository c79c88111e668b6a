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

"""Image / CameraInfo / PointCloud2 parsing with real rclpy AND rosbags message classes.

References are bytes laid out by hand with numpy in this file; messages are built directly
with each family's constructor (not with our builders), except where the builders and
`make_message` themselves are tested through real CDR serialisation.
"""

import array
from types import SimpleNamespace

import numpy as np
import pytest
from rclpy.serialization import deserialize_message
from rclpy.serialization import serialize_message
from rosbags.typesys import get_typestore
from rosbags.typesys import Stores
import sensor_msgs.msg

from spatialvla_ros.perception import conversions as cv
from spatialvla_ros.perception.conversions import MessageError
from spatialvla_ros.perception.messages import make_message

STORE = get_typestore(Stores.ROS2_LYRICAL)  # the newest ROS 2 store of rosbags 0.11.9
RNG = np.random.default_rng(0)
H, W = 5, 7
RGB = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)


def _rclpy_new(cls, fields):
    msg = cls()
    for name, value in fields.items():
        if name == 'data':
            value = array.array('B', bytes(value))
        elif name == 'fields':
            value = [sensor_msgs.msg.PointField(**f) for f in value]
        setattr(msg, name, value)
    return msg


def _rosbags_new(cls, fields):
    t = STORE.types
    header = t['std_msgs/msg/Header'](stamp=t['builtin_interfaces/msg/Time'](sec=1, nanosec=2),
                                      frame_id='cam')
    values = dict(fields, header=header)
    values['data'] = np.frombuffer(bytes(values['data']), np.uint8)
    if 'fields' in values:
        values['fields'] = [t['sensor_msgs/msg/PointField'](**f) for f in values['fields']]
    return cls(**values)


FAMILIES = {
    'rclpy': SimpleNamespace(new=_rclpy_new, Image=sensor_msgs.msg.Image,
                             PointCloud2=sensor_msgs.msg.PointCloud2,
                             CameraInfo=sensor_msgs.msg.CameraInfo),
    'rosbags': SimpleNamespace(new=_rosbags_new, Image=STORE.types['sensor_msgs/msg/Image'],
                               PointCloud2=STORE.types['sensor_msgs/msg/PointCloud2'],
                               CameraInfo=STORE.types['sensor_msgs/msg/CameraInfo']),
}


@pytest.fixture(params=sorted(FAMILIES))
def fam(request):
    return FAMILIES[request.param]


def _image(fam, pixels, encoding, padding=0, big=0, override=None):
    """Hand-made Image: (H, W, C) pixels of any dtype, rows padded with `padding` bytes."""
    rows = np.ascontiguousarray(pixels).view(np.uint8).reshape(pixels.shape[0], -1)
    rows = np.concatenate([rows, np.full((rows.shape[0], padding), 0xAB, np.uint8)], axis=1)
    fields = {'height': pixels.shape[0], 'width': pixels.shape[1], 'encoding': encoding,
              'is_bigendian': big, 'step': rows.shape[1], 'data': rows.tobytes()}
    fields.update(override or {})
    return fam.new(fam.Image, fields)


GRAY = ((RGB.astype(np.uint16).sum(axis=2) + 1) // 3).astype(np.uint8)
COLOR_CASES = {
    'rgb8': (RGB, RGB),
    'bgr8': (RGB[..., ::-1], RGB),
    'rgba8': (np.concatenate([RGB, np.full((H, W, 1), 9, np.uint8)], axis=2), RGB),
    'bgra8': (np.concatenate([RGB[..., ::-1], np.full((H, W, 1), 9, np.uint8)], axis=2), RGB),
    'mono8': (GRAY[..., None], np.repeat(GRAY[..., None], 3, axis=2)),
}


@pytest.mark.parametrize('padding', [0, 3])
@pytest.mark.parametrize('encoding', sorted(COLOR_CASES))
def test_color_encodings(fam, encoding, padding):
    pixels, expected = COLOR_CASES[encoding]
    msg = _image(fam, pixels, encoding, padding)
    out = cv.image_to_rgb(msg)
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    np.testing.assert_array_equal(out, expected)
    assert out.flags.writeable and out.flags.c_contiguous


@pytest.mark.parametrize('big', [0, 1])
def test_mono16_byte_order(fam, big):
    gray16 = RNG.integers(0, 65536, (H, W), dtype=np.uint16)
    pixels = gray16.astype('>u2' if big else '<u2')[..., None]
    out = cv.image_to_rgb(_image(fam, pixels, 'mono16', padding=2, big=big))
    np.testing.assert_array_equal(out, np.repeat((gray16 >> 8).astype(np.uint8)[..., None], 3, 2))


@pytest.mark.parametrize('big', [0, 1])
def test_depth_16uc1_millimetres(fam, big):
    mm = RNG.integers(0, 9000, (H, W), dtype=np.uint16)
    msg = _image(fam, mm.astype('>u2' if big else '<u2')[..., None], '16UC1', padding=1, big=big)
    out = cv.depth_to_meters(msg)
    assert out.dtype == np.float32 and out.shape == (H, W)
    np.testing.assert_allclose(out, mm / 1000.0, rtol=1e-6)


def test_depth_32fc1_metres_keeps_invalid_markers(fam):
    depth = RNG.uniform(0.2, 3.0, (H, W)).astype(np.float32)
    depth[0, 0], depth[1, 1], depth[2, 2] = np.nan, np.inf, 0.0
    out = cv.depth_to_meters(_image(fam, depth[..., None], '32FC1', padding=4))
    np.testing.assert_array_equal(out, depth)


def test_camera_info(fam):
    K = [500.0, 0.0, 320.5, 0.0, 501.0, 240.5, 0.0, 0.0, 1.0]
    if fam.CameraInfo is sensor_msgs.msg.CameraInfo:
        msg = sensor_msgs.msg.CameraInfo(width=640, height=480, k=K)
    else:
        msg = make_message(fam.CameraInfo, cv.camera_info_fields(np.reshape(K, (3, 3)), 640,
                                                                 480))
    Kout, width, height = cv.camera_info_to_K(msg)
    np.testing.assert_array_equal(Kout, np.reshape(K, (3, 3)))
    assert (width, height) == (640, 480)
    msg.k = np.array([0.0] * 9)
    with pytest.raises(MessageError, match=r'camera_info\.k \(fx\)') as info:
        cv.camera_info_to_K(msg)
    assert info.value.reason == 'camera_info'
    msg.k = np.array(K)
    msg.width = 0
    with pytest.raises(MessageError, match=r'camera_info\.width') as info:
        cv.camera_info_to_K(msg)
    assert info.value.reason == 'camera_info'


BAD_IMAGES = [
    ({'encoding': 'yuv422'}, 'image.encoding', cv.image_to_rgb, 'encoding'),
    ({'encoding': '32FC1'}, 'image.encoding', cv.image_to_rgb, 'encoding'),
    ({'step': W * 3 - 1}, 'image.step', cv.image_to_rgb, 'size'),
    ({'step': W * 3 + 1}, 'image.data', cv.image_to_rgb, 'size'),  # size != step * height
    ({'height': H + 1}, 'image.data', cv.image_to_rgb, 'size'),    # truncated
    ({'data': RGB.tobytes()[:-5]}, 'image.data', cv.image_to_rgb, 'size'),
    ({'height': 0, 'data': b''}, 'image.height', cv.image_to_rgb, 'size'),
    ({}, 'depth.encoding', cv.depth_to_meters, 'encoding'),     # rgb8 is no depth encoding
]


@pytest.mark.parametrize('override,field,parse,reason', BAD_IMAGES)
def test_malformed_images_raise_message_error(fam, override, field, parse, reason):
    msg = _image(fam, RGB, 'rgb8', override=override)
    with pytest.raises(MessageError) as info:
        parse(msg)
    assert str(info.value).startswith(field), str(info.value)
    assert info.value.reason == reason  # typed: the node counts it without reading the text


def test_wrong_message_type_raises_message_error(fam):
    image = _image(fam, RGB, 'rgb8')
    with pytest.raises(MessageError, match=r"/points: got a .*Image without \['fields'"):
        cv.pointcloud2_to_numpy(image, '/points')
    with pytest.raises(MessageError, match='expected a sensor_msgs/CameraInfo'):
        cv.camera_info_to_K(image)


@pytest.mark.parametrize('value', [np.nan, np.inf, 0.0])
def test_depth_without_any_valid_pixel_raises(fam, value):
    depth = np.full((H, W, 1), value, np.float32)
    with pytest.raises(MessageError, match=r'depth\.data: no valid depth') as info:
        cv.depth_to_meters(_image(fam, depth, '32FC1'))
    assert info.value.reason == 'nonfinite'


# ------------------------------------------------------------------ PointCloud2 layouts

def _cloud(fam, points, fields, height, width, big=False, row_padding=0, override=None):
    """Hand-made PointCloud2 from a numpy structured array (the reference layout)."""
    rows = points.view(np.uint8).reshape(height, -1)
    rows = np.concatenate([rows, np.zeros((height, row_padding), np.uint8)], axis=1)
    values = {'height': height, 'width': width, 'fields': fields, 'is_bigendian': big,
              'point_step': points.dtype.itemsize, 'row_step': rows.shape[1],
              'data': rows.tobytes(), 'is_dense': False}
    values.update(override or {})
    return fam.new(fam.PointCloud2, values)


def _pf(name, offset, datatype, count=1):
    return {'name': name, 'offset': offset, 'datatype': datatype, 'count': count}


def _xyz(n, nan_every=0):
    xyz = RNG.normal(size=(n, 3)).astype(np.float32)
    if nan_every:
        xyz[::nan_every, 1] = np.nan
    return xyz


def test_cloud_pcl_xyzrgb_unorganised_drops_nan(fam):
    n = 50
    xyz, col = _xyz(n, nan_every=7), RNG.integers(0, 256, (n, 3), dtype=np.uint8)
    dt = np.dtype({'names': ['x', 'y', 'z', 'rgb'], 'formats': ['<f4'] * 3 + ['<u4'],
                   'offsets': [0, 4, 8, 16], 'itemsize': 32})
    pts = np.zeros(n, dt)
    pts['x'], pts['y'], pts['z'] = xyz.T
    c = col.astype(np.uint32)
    pts['rgb'] = (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]  # PCL packing 0x00RRGGBB
    fields = [_pf('x', 0, 7), _pf('y', 4, 7), _pf('z', 8, 7), _pf('rgb', 16, 7)]
    out, rgb, shape = cv.pointcloud2_to_numpy(_cloud(fam, pts, fields, 1, n))
    keep = np.isfinite(xyz).all(axis=1)
    assert shape is None and out.shape == (keep.sum(), 3)
    np.testing.assert_array_equal(out, xyz[keep])
    np.testing.assert_array_equal(rgb, col[keep])


def test_cloud_float64_shuffled_fields_padding_organised(fam):
    h, w = 4, 6
    xyz = _xyz(h * w, nan_every=5).astype(np.float64)
    # z first, an intensity in the middle, 7 bytes of tail padding per point, padded rows.
    dt = np.dtype({'names': ['z', 'intensity', 'x', 'y'], 'formats': ['<f8', '<f4', '<f8', '<f8'],
                   'offsets': [0, 8, 12, 20], 'itemsize': 35})
    pts = np.zeros(h * w, dt)
    pts['x'], pts['y'], pts['z'] = xyz.T
    fields = [_pf('z', 0, 8), _pf('intensity', 8, 7), _pf('x', 12, 8), _pf('y', 20, 8)]
    out, rgb, shape = cv.pointcloud2_to_numpy(_cloud(fam, pts, fields, h, w, row_padding=5))
    assert rgb is None and shape == (h, w) and out.shape == (h * w, 3)
    expected = xyz.astype(np.float32)
    expected[~np.isfinite(expected).all(axis=1)] = np.nan
    np.testing.assert_array_equal(out, expected)
    flat, _, shape = cv.pointcloud2_to_numpy(_cloud(fam, pts, fields, h, w, row_padding=5),
                                             keep_organized=False)
    assert shape is None and flat.shape == (np.isfinite(xyz).all(axis=1).sum(), 3)


def test_cloud_big_endian_separate_rgb_fields(fam):
    h, w = 3, 5
    xyz, col = _xyz(h * w), RNG.integers(0, 256, (h * w, 3), dtype=np.uint8)
    dt = np.dtype({'names': ['x', 'y', 'z', 'b', 'g', 'r'], 'formats': ['>f4'] * 3 + ['u1'] * 3,
                   'offsets': [0, 4, 8, 12, 13, 14], 'itemsize': 16})
    pts = np.zeros(h * w, dt)
    pts['x'], pts['y'], pts['z'] = xyz.T
    pts['r'], pts['g'], pts['b'] = col.T
    fields = [_pf('x', 0, 7), _pf('y', 4, 7), _pf('z', 8, 7), _pf('b', 12, 2), _pf('g', 13, 2),
              _pf('r', 14, 2)]
    out, rgb, shape = cv.pointcloud2_to_numpy(_cloud(fam, pts, fields, h, w, big=True))
    assert shape == (h, w)
    np.testing.assert_array_equal(out, xyz)
    np.testing.assert_array_equal(rgb, col)


def test_cloud_big_endian_packed_rgba_uint32(fam):
    n = 9
    xyz = _xyz(n)
    packed = RNG.integers(0, 2 ** 32, n, dtype=np.uint64).astype(np.uint32)
    dt = np.dtype({'names': ['x', 'y', 'z', 'rgba'], 'formats': ['>f4'] * 3 + ['>u4'],
                   'offsets': [0, 4, 8, 12], 'itemsize': 16})
    pts = np.zeros(n, dt)
    pts['x'], pts['y'], pts['z'] = xyz.T
    pts['rgba'] = packed
    fields = [_pf('x', 0, 7), _pf('y', 4, 7), _pf('z', 8, 7), _pf('rgba', 12, 6)]
    out, rgb, _ = cv.pointcloud2_to_numpy(_cloud(fam, pts, fields, 1, n, big=True))
    np.testing.assert_array_equal(out, xyz)
    expected = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], 1)
    np.testing.assert_array_equal(rgb, expected.astype(np.uint8))


def _simple_cloud(fam, override, n=4):
    dt = np.dtype({'names': ['x', 'y', 'z'], 'formats': ['<f4'] * 3, 'offsets': [0, 4, 8],
                   'itemsize': 12})
    pts = np.zeros(n, dt)
    pts['x'], pts['y'], pts['z'] = _xyz(n).T
    fields = [_pf('x', 0, 7), _pf('y', 4, 7), _pf('z', 8, 7)]
    return _cloud(fam, pts, fields, 1, n, override=override)


BAD_CLOUDS = [
    ({'width': 0, 'data': b'', 'row_step': 0}, 'cloud: empty cloud', 'empty_cloud'),
    ({'fields': [_pf('x', 0, 7), _pf('y', 4, 7)]}, "cloud.fields: no 'z'", 'missing_field'),
    ({'fields': [_pf('x', 0, 7), _pf('y', 4, 7), _pf('z', 10, 7)]}, "cloud.fields['z']",
     'missing_field'),
    ({'fields': [_pf('x', 0, 7), _pf('y', 4, 42), _pf('z', 8, 7)]}, "cloud.fields['y']",
     'missing_field'),
    ({'row_step': 40}, 'cloud.row_step', 'size'),
    ({'data': bytes(47)}, 'cloud.data', 'size'),
    ({'height': 2}, 'cloud.data', 'size'),
]


@pytest.mark.parametrize('override,field,reason', BAD_CLOUDS)
def test_malformed_clouds_raise_message_error(fam, override, field, reason):
    with pytest.raises(MessageError) as info:
        cv.pointcloud2_to_numpy(_simple_cloud(fam, override))
    assert str(info.value).startswith(field), str(info.value)
    assert info.value.reason == reason


def test_cloud_without_finite_points_raises(fam):
    dt = np.dtype([('x', '<f4'), ('y', '<f4'), ('z', '<f4')])
    pts = np.full(3, np.nan, dt)
    fields = [_pf('x', 0, 7), _pf('y', 4, 7), _pf('z', 8, 7)]
    with pytest.raises(MessageError, match=r'cloud\.data: no finite point') as info:
        cv.pointcloud2_to_numpy(_cloud(fam, pts, fields, 1, 3))
    assert info.value.reason == 'nonfinite'


# ------------------------------------------- builders + make_message through real CDR bytes

def _through_cdr(msg, typename):
    """Serialise with the message's own library, deserialise with the other one."""
    if isinstance(msg, (sensor_msgs.msg.Image, sensor_msgs.msg.PointCloud2,
                        sensor_msgs.msg.CameraInfo)):
        return STORE.deserialize_cdr(serialize_message(msg), typename)
    cls = getattr(sensor_msgs.msg, typename.rsplit('/', 1)[1])
    return deserialize_message(bytes(STORE.serialize_cdr(msg, typename)), cls)


@pytest.mark.parametrize('encoding', sorted(cv.COLOR_ENCODINGS))
def test_image_builder_round_trip_through_cdr(fam, encoding):
    fields = cv.rgb_to_image_fields(RGB, encoding, stamp_ns=12_000_000_345, frame_id='cam',
                                    row_padding=2)
    msg = _through_cdr(make_message(fam.Image, fields), 'sensor_msgs/msg/Image')
    out = cv.image_to_rgb(msg)
    expected = RGB if not encoding.startswith('mono') else np.repeat(GRAY[..., None], 3, 2)
    np.testing.assert_array_equal(out, expected)
    assert cv.stamp_to_ns(msg.header.stamp) == 12_000_000_345 and msg.header.frame_id == 'cam'


@pytest.mark.parametrize('encoding,tol', [('32FC1', 0.0), ('16UC1', 5e-4)])
def test_depth_builder_round_trip_through_cdr(fam, encoding, tol):
    depth = RNG.uniform(0.2, 3.0, (H, W)).astype(np.float32)
    fields = cv.depth_to_image_fields(depth, encoding, big_endian=True)
    msg = _through_cdr(make_message(fam.Image, fields), 'sensor_msgs/msg/Image')
    np.testing.assert_allclose(cv.depth_to_meters(msg), depth, atol=tol + 1e-7)


def test_cloud_and_info_builders_round_trip_through_cdr(fam):
    xyz = _xyz(4 * 6, nan_every=5).reshape(4, 6, 3)
    col = RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    msg = make_message(fam.PointCloud2, cv.pointcloud2_fields_xyzrgb(xyz, col, big_endian=True))
    out, rgb, shape = cv.pointcloud2_to_numpy(_through_cdr(msg, 'sensor_msgs/msg/PointCloud2'))
    assert shape == (4, 6)
    expected = xyz.reshape(-1, 3).copy()
    expected[~np.isfinite(expected).all(axis=1)] = np.nan  # organised: invalid points all NaN
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(rgb, col.reshape(-1, 3))
    K = np.array([[400.0, 0, 100.5], [0, 410.0, 80.5], [0, 0, 1]])
    info = make_message(fam.CameraInfo, cv.camera_info_fields(K, 200, 160, frame_id='cam'))
    Kout, width, height = cv.camera_info_to_K(_through_cdr(info, 'sensor_msgs/msg/CameraInfo'))
    np.testing.assert_array_equal(Kout, K)
    assert (width, height) == (200, 160)


def test_make_message_uses_each_family_s_containers():
    fields = cv.rgb_to_image_fields(RGB)
    assert isinstance(make_message(sensor_msgs.msg.Image, fields).data, array.array)
    assert isinstance(make_message(FAMILIES['rosbags'].Image, fields).data, np.ndarray)
    with pytest.raises(TypeError, match='unknown field'):
        make_message(sensor_msgs.msg.Image, {'pixels': 1})
    with pytest.raises(TypeError, match='msg_cls'):
        make_message(dict, {})

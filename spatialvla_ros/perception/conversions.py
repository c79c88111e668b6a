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

"""sensor_msgs Image / CameraInfo / PointCloud2 <-> numpy, without rclpy or cv_bridge.

Camera mounts (geometry_msgs/TransformStamped, base frame -> optical frame) parse the same way.
The parsers are duck-typed: they read only the message fields by name, so the same code
converts live rclpy messages (`data` is an array.array) and messages deserialised by
`rosbags` (`data` is a numpy uint8 array). Buffers are wrapped with strided numpy views (no
copy while parsing); each parser returns arrays that own their memory (one copy at the end).
Every malformed message raises `MessageError` naming the field and what was expected, with a
`reason` key (REJECTION_REASONS) that the policy node counts without reading the text.

The builders go the other way (numpy -> plain field values: nested dicts, numpy arrays);
`spatialvla_ros.perception.messages.make_message` turns those values into an rclpy or a
rosbags message of the caller's class.
"""

from typing import NamedTuple

import numpy as np

from spatialvla_ros.core_types import ns_to_stamp
from spatialvla_ros.core_types import stamp_to_ns
from spatialvla_ros.perception import geometry


# Stable keys of the policy node's per-reason rejection counters (its DiagnosticArray).
REJECTION_REASONS = (
    'encoding',        # unsupported or mismatching image encoding
    'size',            # width/height/step/data length disagree, truncated data
    'nonfinite',       # NaN/inf where finite numbers are required (depth, joint state)
    'empty_cloud',     # PointCloud2 without points
    'missing_field',   # PointCloud2 lacks x/y/z (or a field is malformed)
    'camera_info',     # zero/invalid focal length, size or distortion model
    'future_stamp',    # header stamp later than now + tolerance
    'out_of_order',    # header stamp older than the previous message on that topic
    'joint_names',     # joint state without the configured joints (unknown names)
    'too_long',        # instruction longer than the node's max_instruction_chars
    'frame',           # the synchronised set cannot be turned into an observation
    'mount',           # camera mount (TransformStamped): non-unit quaternion, unknown frame
    'stale_mount',     # the camera's mount is older than the image allows
    'invalid',         # any other malformed content
)

# |norm - 1| a mount's quaternion may have (float32 round trips, 6-digit YAML values).
QUATERNION_TOLERANCE = 1e-3


class MessageError(ValueError):
    """
    A ROS message that cannot be used: names the field, what was got, what was expected.

    `reason` (one of REJECTION_REASONS) says why in one stable word; it travels with the error
    to the node's counters and status, so nothing parses it back out of the message.
    """

    def __init__(self, reason, message):
        assert reason in REJECTION_REASONS, reason
        super().__init__(message)
        self.reason = reason


# encoding -> (channels, numpy kind + itemsize, RGB channel order or None for mono)
COLOR_ENCODINGS = {
    'rgb8': (3, 'u1', (0, 1, 2)),
    'bgr8': (3, 'u1', (2, 1, 0)),
    'rgba8': (4, 'u1', (0, 1, 2)),
    'bgra8': (4, 'u1', (2, 1, 0)),
    'mono8': (1, 'u1', None),
    'mono16': (1, 'u2', None),
}
# encoding -> (numpy kind + itemsize, scale to metres)
DEPTH_ENCODINGS = {
    '16UC1': ('u2', 0.001),  # millimetres (REP 118); 0 = no return
    'mono16': ('u2', 0.001),
    '32FC1': ('f4', 1.0),    # metres; NaN/inf/0 = no return
}
# sensor_msgs/PointField datatypes (9-11 exist only in newer distros).
POINTFIELD_DTYPES = {1: 'i1', 2: 'u1', 3: 'i2', 4: 'u2', 5: 'i4', 6: 'u4', 7: 'f4', 8: 'f8',
                     9: 'i8', 10: 'u8', 11: 'u1'}
FLOAT32 = 7
UINT8 = 2


def header_fields(stamp_ns=0, frame_id=''):
    """Plain std_msgs/Header values for the builders."""
    return {'stamp': ns_to_stamp(stamp_ns)._asdict(), 'frame_id': frame_id}


_IMAGE_FIELDS = ('height', 'width', 'encoding', 'is_bigendian', 'step', 'data')
_CLOUD_FIELDS = ('height', 'width', 'fields', 'is_bigendian', 'point_step', 'row_step', 'data')


def require_fields(msg, names, what, expected):
    """Reject a message of the wrong type with MessageError, not an AttributeError."""
    missing = [n for n in names if not hasattr(msg, n)]
    if missing:
        raise MessageError('invalid', (
            f'{what}: got a {type(msg).__name__} without {missing}, expected '
            f'a {expected}'))


def _bytes(data, field):
    """Zero-copy flat uint8 view of a message's `data` (numpy, array.array, bytes, list)."""
    if isinstance(data, np.ndarray):
        flat = np.ascontiguousarray(data).reshape(-1)
        return flat if flat.dtype == np.uint8 else flat.view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        try:
            return np.asarray(data, dtype=np.uint8).reshape(-1)
        except (TypeError, ValueError):
            raise MessageError('invalid', f'{field}: got {type(data).__name__}, expected a byte '
                               'buffer') from None


def _rows(msg, what, step_field, step, height, width, item_bytes, item_name):
    """Flat uint8 view of `data` once its rows are checked: step fits a row, data all rows."""
    if step < width * item_bytes:
        raise MessageError('size', f'{what}.{step_field}: got {step}, expected >= width * '
                           f'{item_name} = {width} * {item_bytes} = {width * item_bytes}')
    buf = _bytes(msg.data, f'{what}.data')
    if buf.size != step * height:
        raise MessageError('size', f'{what}.data: got {buf.size} bytes, expected {step_field} * '
                           f'height = {step} * {height} = {step * height}')
    return buf


def _image_view(msg, what, channels, kind):
    """(H, W, C) strided view of an Image's pixels after checking size fields against data."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    encoding = msg.encoding
    if height <= 0 or width <= 0:
        raise MessageError('size', (
            f'{what}.height/width: got {height} x {width}, expected a non-empty '
            'image'))
    itemsize = int(kind[1])
    bpp = channels * itemsize
    buf = _rows(msg, what, 'step', step, height, width, bpp, f'bytes per {encoding} pixel')
    dtype = np.dtype(kind).newbyteorder('>' if msg.is_bigendian else '<')
    return np.ndarray((height, width, channels), dtype=dtype, buffer=buf,
                      strides=(step, bpp, itemsize))


class Mount(NamedTuple):
    """A camera mount: the pose of the camera's optical frame in the base frame, stamped."""

    stamp_ns: int
    frame_id: str             # the parent (base) frame
    child_frame_id: str       # the camera's optical frame
    base_from_camera: object  # (4, 4) float64 homogeneous transform


def transform_stamped_to_mount(msg, what='camera_pose'):
    """geometry_msgs/TransformStamped-like -> `Mount`, or MessageError naming the field.

    Rejected: a missing child_frame_id, a non-finite translation or rotation ('nonfinite'),
    a quaternion whose norm is off 1 by more than QUATERNION_TOLERANCE ('mount': it is not a
    rotation, and normalising it would hide a broken publisher). The rotation is then
    normalised exactly.
    """
    require_fields(msg, ('header', 'child_frame_id', 'transform'), what,
                   'geometry_msgs/TransformStamped')
    child = str(msg.child_frame_id)
    if not child:
        raise MessageError('mount', f'{what}.child_frame_id: got an empty frame, expected the '
                           "camera's optical frame")
    tr, rot = msg.transform.translation, msg.transform.rotation
    xyz = np.array([tr.x, tr.y, tr.z], dtype=np.float64)
    quat = np.array([rot.x, rot.y, rot.z, rot.w], dtype=np.float64)
    for field, value in (('translation', xyz), ('rotation', quat)):
        if not np.all(np.isfinite(value)):
            raise MessageError('nonfinite', f'{what}.transform.{field}: got {value.tolist()}, '
                               'expected finite numbers')
    norm = float(np.linalg.norm(quat))
    if abs(norm - 1.0) > QUATERNION_TOLERANCE:
        raise MessageError('mount', f'{what}.transform.rotation: got {quat.tolist()} (norm '
                           f'{norm:.6f}), expected a unit quaternion (x, y, z, w) within '
                           f'{QUATERNION_TOLERANCE}')
    return Mount(stamp_to_ns(msg.header.stamp), str(msg.header.frame_id), child,
                 geometry.transform_from_xyz_quat(xyz, quat, f'{what}.transform'))


def image_to_rgb(msg, what='image'):
    """sensor_msgs/Image-like -> (H, W, 3) uint8 RGB (mono is replicated, alpha dropped).

    `what` prefixes error messages (pass the topic name). mono16 keeps the 8 high bits.
    """
    require_fields(msg, _IMAGE_FIELDS, what, 'sensor_msgs/Image')
    encoding = msg.encoding
    if encoding not in COLOR_ENCODINGS:
        raise MessageError('encoding', f'{what}.encoding: got {encoding!r}, expected one of '
                           + ', '.join(COLOR_ENCODINGS))
    channels, kind, order = COLOR_ENCODINGS[encoding]
    view = _image_view(msg, what, channels, kind)
    if order is None:
        mono = view[..., 0]
        if kind == 'u2':
            mono = (mono >> 8).astype(np.uint8)
        return np.repeat(mono[..., None], 3, axis=2)
    if channels == 3 and order == (0, 1, 2):
        return np.array(view, dtype=np.uint8)
    out = np.empty(view.shape[:2] + (3,), dtype=np.uint8)
    for i, c in enumerate(order):  # channel by channel: long strided loops, not 3-wide ones
        out[..., i] = view[..., c]
    return out


def depth_to_meters(msg, what='depth'):
    """sensor_msgs/Image depth (16UC1 mm or 32FC1 m) -> (H, W) float32 metres.

    Invalid pixels keep their marker (0, NaN, inf); geometry.depth_to_points masks them.
    An image with no valid pixel at all raises: an observation built from it would be empty.
    """
    require_fields(msg, _IMAGE_FIELDS, what, 'sensor_msgs/Image')
    encoding = msg.encoding
    if encoding not in DEPTH_ENCODINGS:
        raise MessageError('encoding', f'{what}.encoding: got {encoding!r}, expected one of '
                           + ', '.join(DEPTH_ENCODINGS))
    kind, scale = DEPTH_ENCODINGS[encoding]
    view = _image_view(msg, what, 1, kind)[..., 0]
    depth = view.astype(np.float32)
    if scale != 1.0:
        depth *= np.float32(scale)
    with np.errstate(invalid='ignore'):
        if not np.any(np.isfinite(depth) & (depth > 0)):
            raise MessageError('nonfinite', (
                f'{what}.data: no valid depth pixel, every value is 0, NaN or '
                'inf (expected at least one finite depth > 0)'))
    return depth


def camera_info_to_K(msg, what='camera_info'):
    """sensor_msgs/CameraInfo-like -> (K (3, 3) float64, width, height).

    Distortion (d) is ignored: images are assumed rectified, or their distortion small
    against the model's patch size.
    """
    require_fields(msg, ('k', 'width', 'height'), what, 'sensor_msgs/CameraInfo')
    try:
        K = geometry.intrinsics_from_k(msg.k, f'{what}.k')
    except ValueError as exc:
        raise MessageError('camera_info', str(exc)) from None
    width, height = int(msg.width), int(msg.height)
    if width <= 0 or height <= 0:
        raise MessageError('camera_info', (
            f'{what}.width/height: got {width} x {height}, expected the '
            'calibrated image size (> 0)'))
    return K, width, height


def _field_error(what, name, message):
    return MessageError('missing_field', f"{what}.fields['{name}']: {message}")


def pointcloud2_to_numpy(msg, what='cloud', keep_organized=True):
    """sensor_msgs/PointCloud2-like -> (xyz (N, 3) float32, rgb (N, 3) uint8 | None, shape).

    Reads the layout from the message itself (fields' name/offset/datatype/count, point_step,
    row_step, is_bigendian), so padding and any field order work. Colour comes from a packed
    `rgb`/`rgba` field (float32 or uint32 holding 0x00RRGGBB, the PCL convention) or from
    separate uint8 `r`, `g`, `b` fields; None when there is none.

    Points with a non-finite coordinate are dropped, except for an organised cloud
    (height > 1) with keep_organized=True: then all height * width points are returned (the
    invalid ones as NaN) and shape = (height, width), so xyz.reshape(height, width, 3) is the
    organised map. Otherwise shape is None.
    """
    require_fields(msg, _CLOUD_FIELDS, what, 'sensor_msgs/PointCloud2')
    height, width = int(msg.height), int(msg.width)
    if height * width <= 0:
        raise MessageError('empty_cloud', (
            f'{what}: empty cloud (height * width = {height} * {width}), '
            'expected at least one point'))
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    fields = {}
    for f in msg.fields:
        fields.setdefault(f.name, f)
    missing = [a for a in 'xyz' if a not in fields]
    if missing:
        raise MessageError('missing_field', (
            f"{what}.fields: no {', '.join(repr(m) for m in missing)} field "
            f'(got {sorted(fields)}), expected x, y and z'))
    names, formats, offsets = [], [], []

    def add(name, kind=None):
        f = fields[name]
        if int(f.datatype) not in POINTFIELD_DTYPES:
            raise _field_error(what, name, f'datatype {f.datatype} is not a PointField type '
                               f'(expected one of {sorted(POINTFIELD_DTYPES)})')
        kind = kind or POINTFIELD_DTYPES[int(f.datatype)]
        if int(f.count) < 1:
            raise _field_error(what, name, f'count {f.count}, expected >= 1')
        size = np.dtype(kind).itemsize
        if int(f.offset) < 0 or int(f.offset) + size > point_step:
            raise _field_error(what, name, f'offset {f.offset} + size {size} exceeds '
                               f'point_step {point_step}')
        names.append(name)
        formats.append(np.dtype(kind).newbyteorder('>' if msg.is_bigendian else '<'))
        offsets.append(int(f.offset))

    for axis in 'xyz':
        add(axis)
    color = next((n for n in ('rgb', 'rgba') if n in fields), None)
    if color is not None:
        if int(fields[color].datatype) not in (FLOAT32, 6):
            raise _field_error(what, color, f'datatype {fields[color].datatype}, expected '
                               'FLOAT32 (7) or UINT32 (6) packing 0x00RRGGBB')
        add(color, 'u4')  # the float's bits are the packed colour
    elif all(c in fields for c in 'rgb'):
        for c in 'rgb':
            add(c, 'u1')
    buf = _rows(msg, what, 'row_step', row_step, height, width, point_step, 'point_step')
    try:
        dtype = np.dtype({'names': names, 'formats': formats, 'offsets': offsets,
                          'itemsize': point_step})
    except (TypeError, ValueError) as exc:
        raise MessageError('missing_field', (
            f'{what}.fields: invalid layout {list(zip(names, offsets))} for '
            f'point_step {point_step}: {exc}')) from None
    view = np.ndarray((height, width), dtype=dtype, buffer=buf,
                      strides=(row_step, point_step))  # (H, W) structured, no copy
    xyz = np.empty((height * width, 3), dtype=np.float32)
    for i, axis in enumerate('xyz'):
        xyz[:, i] = view[axis].reshape(-1)
    rgb = None
    if color is not None:
        packed = view[color].reshape(-1)
        rgb = np.empty((height * width, 3), dtype=np.uint8)
        for i, shift in enumerate((16, 8, 0)):
            rgb[:, i] = (packed >> shift) & 0xFF
    elif 'r' in names:
        rgb = np.stack([view[c].reshape(-1) for c in 'rgb'], axis=1)
    valid = np.isfinite(xyz).all(axis=1)
    if not valid.any():
        raise MessageError('nonfinite', (
            f'{what}.data: no finite point among {height * width} (expected at '
            'least one point with finite x, y, z)'))
    if height > 1 and keep_organized:
        xyz[~valid] = np.nan
        return xyz, rgb, (height, width)
    if not valid.all():
        xyz = xyz[valid]
        rgb = None if rgb is None else rgb[valid]
    return xyz, rgb, None


# ---------------------------------------------------------------- builders (numpy -> values)

def rgb_to_image_fields(rgb, encoding='rgb8', stamp_ns=0, frame_id='', row_padding=0):
    """(H, W, 3) uint8 RGB -> sensor_msgs/Image values in `encoding` (any COLOR_ENCODINGS).

    `row_padding` extra bytes per row exercise the `step` handling of consumers. mono is the
    mean of the channels (mono16 scales it by 257).
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'rgb: got {rgb.dtype} {rgb.shape}, expected uint8 (H, W, 3)')
    if encoding not in COLOR_ENCODINGS:
        raise ValueError(f'encoding: got {encoding!r}, expected one of '
                         + ', '.join(COLOR_ENCODINGS))
    channels, kind, order = COLOR_ENCODINGS[encoding]
    if order is None:
        mono = rgb.sum(axis=2, dtype=np.uint16)  # (H, W) exact sum, mean = sum / 3
        mono = (mono + 1) // 3
        pixels = (mono * 257 if kind == 'u2' else mono)[..., None].astype('<' + kind)
    elif channels == 3:
        pixels = rgb if order == (0, 1, 2) else rgb[..., ::-1]
    else:
        pixels = np.empty(rgb.shape[:2] + (4,), dtype=np.uint8)
        pixels[..., :3] = rgb if order == (0, 1, 2) else rgb[..., ::-1]
        pixels[..., 3] = 255
    return _pixel_fields(pixels, encoding, stamp_ns, frame_id, row_padding, False)


def depth_to_image_fields(depth_m, encoding='32FC1', stamp_ns=0, frame_id='', row_padding=0,
                          big_endian=False):
    """(H, W) metres -> sensor_msgs/Image values: 32FC1 metres or 16UC1 millimetres.

    For 16UC1 invalid depth (NaN, inf, <= 0) becomes 0 and values saturate at 65.535 m.
    """
    depth = np.asarray(depth_m, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f'depth_m: got shape {depth.shape}, expected (H, W)')
    order = '>' if big_endian else '<'
    if encoding == '32FC1':
        pixels = depth.astype(order + 'f4')
    elif encoding == '16UC1':
        mm = np.nan_to_num(depth * 1000.0, nan=0.0, posinf=0.0, neginf=0.0)
        pixels = np.clip(np.rint(mm), 0, 65535).astype(order + 'u2')
    else:
        raise ValueError(f"encoding: got {encoding!r}, expected '32FC1' or '16UC1'")
    return _pixel_fields(pixels[..., None], encoding, stamp_ns, frame_id, row_padding,
                         big_endian)


def _pixel_fields(pixels, encoding, stamp_ns, frame_id, row_padding, big_endian):
    h, w = pixels.shape[:2]
    rows = np.ascontiguousarray(pixels).view(np.uint8).reshape(h, -1)
    if row_padding:
        rows = np.concatenate([rows, np.zeros((h, row_padding), np.uint8)], axis=1)
    return {'header': header_fields(stamp_ns, frame_id), 'height': h, 'width': w,
            'encoding': encoding, 'is_bigendian': int(big_endian), 'step': rows.shape[1],
            'data': rows.reshape(-1)}


def camera_info_fields(K, width, height, stamp_ns=0, frame_id=''):
    """Build a rectified pinhole sensor_msgs/CameraInfo (no distortion, P = [K | 0])."""
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    P = np.zeros((3, 4))
    P[:, :3] = K
    return {'header': header_fields(stamp_ns, frame_id), 'height': int(height),
            'width': int(width), 'distortion_model': 'plumb_bob', 'd': np.zeros(5),
            'k': K.reshape(-1), 'r': np.eye(3).reshape(-1), 'p': P.reshape(-1),
            'binning_x': 0, 'binning_y': 0,
            'roi': {'x_offset': 0, 'y_offset': 0, 'height': 0, 'width': 0, 'do_rectify': False}}


def transform_stamped_fields(xyz, quat_xyzw, stamp_ns=0, frame_id='', child_frame_id=''):
    """Build geometry_msgs/TransformStamped values (a camera mount: base -> optical frame)."""
    return {'header': header_fields(stamp_ns, frame_id), 'child_frame_id': child_frame_id,
            'transform': {'translation': dict(zip('xyz', map(float, xyz))),
                          'rotation': dict(zip('xyzw', map(float, quat_xyzw)))}}


def pointcloud2_fields_xyzrgb(xyz, rgb=None, stamp_ns=0, frame_id='', big_endian=False):
    """Build sensor_msgs/PointCloud2 values from xyz (N, 3) or organised (H, W, 3) [+ RGB].

    The PCL layout: float32 x, y, z at 0, 4, 8 and, with colours, a packed float32 `rgb` at
    12; point_step 16 (4 bytes of padding without colour). Organised input keeps its H x W.
    """
    xyz = np.asarray(xyz, dtype=np.float32)
    if xyz.ndim not in (2, 3) or xyz.shape[-1] != 3:
        raise ValueError(f'xyz: got shape {xyz.shape}, expected (N, 3) or (H, W, 3)')
    height, width = xyz.shape[:2] if xyz.ndim == 3 else (1, xyz.shape[0])
    order = '>' if big_endian else '<'
    dtype = np.dtype({'names': ['x', 'y', 'z', 'rgb'],
                      'formats': [order + 'f4'] * 3 + [order + 'u4'],
                      'offsets': [0, 4, 8, 12], 'itemsize': 16})
    points = np.zeros(height * width, dtype=dtype)
    flat = xyz.reshape(-1, 3)
    for i, axis in enumerate('xyz'):
        points[axis] = flat[:, i]
    fields = [{'name': a, 'offset': 4 * i, 'datatype': FLOAT32, 'count': 1}
              for i, a in enumerate('xyz')]
    if rgb is not None:
        c = np.asarray(rgb, dtype=np.uint8).reshape(-1, 3).astype(np.uint32)
        if c.shape[0] != flat.shape[0]:
            raise ValueError(f'rgb: got {c.shape[0]} colours for {flat.shape[0]} points')
        points['rgb'] = (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]
        fields.append({'name': 'rgb', 'offset': 12, 'datatype': FLOAT32, 'count': 1})
    return {'header': header_fields(stamp_ns, frame_id), 'height': height, 'width': width,
            'fields': fields, 'is_bigendian': bool(big_endian), 'point_step': 16,
            'row_step': 16 * width, 'data': points.view(np.uint8).reshape(-1),
            'is_dense': bool(np.isfinite(flat).all())}


__all__ = [
    'COLOR_ENCODINGS',
    'DEPTH_ENCODINGS',
    'MessageError',
    'Mount',
    'QUATERNION_TOLERANCE',
    'camera_info_fields',
    'camera_info_to_K',
    'depth_to_image_fields',
    'depth_to_meters',
    'header_fields',
    'image_to_rgb',
    'pointcloud2_fields_xyzrgb',
    'pointcloud2_to_numpy',
    'require_fields',
    'rgb_to_image_fields',
    'stamp_to_ns',
    'transform_stamped_fields',
    'transform_stamped_to_mount',
]

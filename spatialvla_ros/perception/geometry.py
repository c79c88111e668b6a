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

"""Pinhole camera geometry: intrinsics, rigid transforms, depth unprojection, cloud projection.

Conventions (the ROS optical frame, REP 103/105): z forward, x right, y down; pixel (u, v) =
(column, row) and the integer index of a pixel is its coordinate, so x = (u - cx) z / fx and
y = (v - cy) z / fy (as in LLaVA-3D and Open3D; like them we ignore the skew K[0, 1]).
Every map this module returns is (H, W, 3) float32 in the target (base) frame with NaN where
there is no valid point, so a depth camera and a point-cloud sensor feed the model the same
kind of observation. Pure numpy, vectorised.
"""

import numpy as np


def intrinsics_from_k(k, field='k'):
    """Return the (3, 3) float64 pinhole matrix from a row-major 9-vector (CameraInfo.k).

    Raises ValueError naming `field` when the values cannot describe a camera: a wrong size,
    non-finite entries, or a focal length that is not > 0 (an uncalibrated CameraInfo is all
    zeros, and unprojecting with it would silently put every point at infinity).
    """
    try:
        K = np.asarray(k, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f'{field}: got {type(k).__name__}, expected 9 numbers') from None
    if K.size != 9:
        raise ValueError(f'{field}: got {K.size} values, expected 9 (3x3 row-major)')
    K = K.reshape(3, 3).copy()
    if not np.all(np.isfinite(K)):
        raise ValueError(f'{field}: got non-finite values {K.ravel().tolist()}, '
                         'expected finite numbers')
    for name, value in (('fx', K[0, 0]), ('fy', K[1, 1])):
        if not value > 0:
            raise ValueError(f'{field} ({name}): got focal length {value}, expected > 0 '
                             '(is the camera calibrated?)')
    return K


def scale_intrinsics(K, from_size, to_size):
    """Rescale K from an image of (width, height) `from_size` to `to_size`.

    Per axis independently (no landscape assumption, unlike LLaVA-3D's released code), with
    pixel centres at integer coordinates: u' = (u + 0.5) * s - 0.5.
    """
    (w0, h0), (w1, h1) = from_size, to_size
    sx, sy = w1 / w0, h1 / h0
    out = np.array(K, dtype=np.float64, copy=True)
    out[0, 0] *= sx
    out[0, 1] *= sx
    out[0, 2] = (out[0, 2] + 0.5) * sx - 0.5
    out[1, 1] *= sy
    out[1, 2] = (out[1, 2] + 0.5) * sy - 0.5
    return out


def rotation_from_quaternion(quat_xyzw, field='quaternion'):
    """Return the (3, 3) rotation of a quaternion given as (x, y, z, w) (ROS order)."""
    q = np.asarray(quat_xyzw, dtype=np.float64).reshape(-1)
    if q.size != 4 or not np.all(np.isfinite(q)):
        raise ValueError(f'{field}: got {q.tolist()}, expected 4 finite numbers (x, y, z, w)')
    norm = np.linalg.norm(q)
    if norm < 1e-9:
        raise ValueError(f'{field}: got a zero quaternion, expected a unit quaternion')
    x, y, z, w = q / norm
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def rotation_from_rpy(roll, pitch, yaw):
    """Return the (3, 3) rotation of fixed-axis roll, pitch, yaw [rad] (URDF / tf2 order).

    R = Rz(yaw) @ Ry(pitch) @ Rx(roll): roll about x first, then pitch about y, then yaw about
    z, all axes of the parent (base) frame.
    """
    cr, sr = np.cos(roll), np.sin(roll)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def rpy_from_rotation(R):
    """Return (roll, pitch, yaw) [rad] with rotation_from_rpy(roll, pitch, yaw) == R."""
    R = np.asarray(R, dtype=np.float64)
    pitch = float(np.arcsin(np.clip(-R[2, 0], -1.0, 1.0)))
    if abs(R[2, 0]) < 1.0 - 1e-9:
        return float(np.arctan2(R[2, 1], R[2, 2])), pitch, float(np.arctan2(R[1, 0], R[0, 0]))
    # Gimbal lock (pitch = +-90 deg): only roll -+ yaw is defined; yaw = 0 is the convention.
    return float(np.arctan2(-R[1, 2], R[1, 1])), pitch, 0.0


def transform_from_xyz_quat(xyz, quat_xyzw, field='transform'):
    """Return the (4, 4) homogeneous transform of a translation and an (x, y, z, w) quaternion."""
    t = np.asarray(xyz, dtype=np.float64).reshape(-1)
    if t.size != 3 or not np.all(np.isfinite(t)):
        raise ValueError(f'{field}.translation: got {t.tolist()}, expected 3 finite numbers')
    T = np.eye(4)
    T[:3, :3] = rotation_from_quaternion(quat_xyzw, f'{field}.rotation')
    T[:3, 3] = t
    return T


def _as_transform(T):
    if T is None:
        return np.eye(4)
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ValueError(f'base_from_camera: got shape {T.shape}, expected a finite (4, 4) '
                         'homogeneous transform')
    return T


def _transform_planes(T, x, y, z):
    """R @ (x, y, z) + t on separate coordinate arrays (float32 in, three float32 out)."""
    out = []
    with np.errstate(invalid='ignore'):  # NaN / inf points are expected and stay invalid
        for i in range(3):
            o = x * np.float32(T[i, 0])
            o += y * np.float32(T[i, 1])
            o += z * np.float32(T[i, 2])
            o += np.float32(T[i, 3])
            out.append(o)
    return out


def transform_points(T, points):
    """Apply a (4, 4) transform to (..., 3) points; NaN points stay NaN. Returns float32."""
    # Component by component on contiguous planes: (N, 3) @ (3, 3) goes to a multi-threaded
    # BLAS call whose threads spin badly on a loaded 2-core machine (10-100x slower).
    p = np.asarray(points, dtype=np.float32)
    planes = _transform_planes(_as_transform(T), *(np.ascontiguousarray(p[..., i])
                                                   for i in range(3)))
    return np.stack(planes, axis=-1)


def _valid_depth(z, min_depth, max_depth):
    # 0 is "no return" for every depth driver; NaN compares False; inf is no return either.
    # Two passes over the image instead of four (this runs on every live frame): the lower
    # bound is at least the smallest positive float, and inf fails a finite upper bound.
    lo = max(float(min_depth), float(np.nextafter(np.float32(0), np.float32(1))))
    with np.errstate(invalid='ignore'):
        valid = np.greater_equal(z, lo)
        valid &= np.less_equal(z, max_depth)
        if not np.isfinite(max_depth):
            valid &= np.isfinite(z)
    return valid


def depth_to_points(depth_m, K, base_from_camera=None, min_depth=0.0, max_depth=np.inf):
    """Unproject a metric depth image into an organised xyz map in the base frame.

    Args:
        depth_m: (H, W) depth along the optical axis [m].
        K: (3, 3) intrinsics of THIS depth image's resolution.
        base_from_camera: (4, 4) pose of the optical frame in the base frame (None: identity).
        min_depth, max_depth: depth outside [min_depth, max_depth] is invalid [m].

    Returns:
        (H, W, 3) float32 xyz [m]; NaN where depth is 0, NaN, inf or out of range.
    """
    z = np.asarray(depth_m)
    if z.ndim != 2:
        raise ValueError(f'depth_m: got shape {z.shape}, expected (H, W)')
    z = z.astype(np.float32, copy=False)
    K = np.asarray(K, dtype=np.float64)
    T = _as_transform(base_from_camera)
    h, w = z.shape
    xr = (np.arange(w) - K[0, 2]) / K[0, 0]  # (W,)
    yr = (np.arange(h) - K[1, 2]) / K[1, 1]  # (H,)
    # Ray of pixel (v, u) at z = 1 in the base frame: R @ (xr[u], yr[v], 1) = a[u] + b[v];
    # the point is then z * ray + t. Separable, so per component only (H, W) passes remain.
    R, t = T[:3, :3], T[:3, 3]
    a = (xr[:, None] * R[:, 0] + R[:, 2]).astype(np.float32)  # (W, 3)
    b = (yr[:, None] * R[:, 1]).astype(np.float32)            # (H, 3)
    z = np.where(_valid_depth(z, min_depth, max_depth), z, np.float32(np.nan))
    out = np.empty((h, w, 3), dtype=np.float32)
    for i in range(3):
        o = out[..., i]
        np.add(b[:, i, None], a[None, :, i], out=o)
        o *= z
        o += np.float32(t[i])
    return out


def cloud_to_xyz_map(points_cam, colors, K, height, width, base_from_camera=None,
                     min_depth=0.0, max_depth=np.inf):
    """Render an unorganised cloud into the camera's image plane with a z-buffer.

    Each point of the optical frame is projected with K to the nearest pixel; where several
    points land on one pixel the nearest to the camera wins (ties: the first in the cloud).
    Points behind the camera, outside the image or outside [min_depth, max_depth] are dropped.

    Args:
        points_cam: (N, 3) xyz in the camera's optical frame [m].
        colors: (N, 3) uint8 RGB per point, or None.
        K: (3, 3) intrinsics for an image of `height` x `width`.
        base_from_camera: (4, 4) pose of the optical frame in the base frame (None: identity).

    Returns:
        xyz map (H, W, 3) float32 in the base frame, NaN where no point landed, and the
        (H, W, 3) uint8 colour of the winning points (0 where empty) or None.
    """
    p = np.asarray(points_cam)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f'points_cam: got shape {p.shape}, expected (N, 3)')
    if colors is not None:
        colors = np.asarray(colors)
        if colors.shape != p.shape:
            raise ValueError(f'colors: got shape {colors.shape}, expected {p.shape} '
                             '(one RGB triple per point)')
    K = np.asarray(K, dtype=np.float64)
    x, y, z = (p[:, i].astype(np.float64) for i in range(3))  # contiguous planes, (N,) each
    with np.errstate(invalid='ignore', divide='ignore'):
        col = np.floor(K[0, 0] * x / z + K[0, 2] + 0.5)
        row = np.floor(K[1, 1] * y / z + K[1, 2] + 0.5)
        keep = _valid_depth(z, min_depth, max_depth) & np.isfinite(x) & np.isfinite(y)
        keep &= (col >= 0) & (col < width) & (row >= 0) & (row < height)
    src = np.flatnonzero(keep)  # (M,) cloud indices that land in the image, in cloud order
    pix = row[src].astype(np.int64) * width + col[src].astype(np.int64)  # (M,)
    depth = z[src]
    # z-buffer without sorting: the nearest depth per pixel, then among points at exactly that
    # depth the first in the cloud, so every pixel gets exactly one deterministic winner.
    zbuf = np.full(height * width, np.inf)
    np.minimum.at(zbuf, pix, depth)
    cand = np.flatnonzero(depth == zbuf[pix])
    first = np.full(height * width, src.size, dtype=np.int64)
    np.minimum.at(first, pix[cand], cand)
    winners = cand[first[pix[cand]] == cand]
    pix, src = pix[winners], src[winners]  # unique pixels, their points
    coords = (c[src].astype(np.float32) for c in (x, y, z))
    planes = np.full((3, height * width), np.nan, dtype=np.float32)  # (3, H * W)
    for plane, value in zip(planes, _transform_planes(_as_transform(base_from_camera),
                                                      *coords)):
        plane[pix] = value
    xyz_map = np.ascontiguousarray(planes.reshape(3, height, width).transpose(1, 2, 0))
    rgb_map = None
    if colors is not None:
        rgb_map = np.zeros((height * width, 3), dtype=np.uint8)
        rgb_map[pix] = colors[src]
        rgb_map = rgb_map.reshape(height, width, 3)
    return xyz_map, rgb_map


def organized_cloud_to_xyz_map(points_cam, colors=None, base_from_camera=None,
                               min_depth=0.0, max_depth=np.inf):
    """Transform an organised (H, W, 3) optical-frame cloud to the base frame, keeping its layout.

    Returns the (H, W, 3) float32 xyz map (NaN where a point is non-finite or its z is out of
    range) and the colours unchanged ((H, W, 3) uint8 or None).
    """
    p = np.asarray(points_cam, dtype=np.float32)
    if p.ndim != 3 or p.shape[2] != 3:
        raise ValueError(f'points_cam: got shape {p.shape}, expected (H, W, 3)')
    valid = _valid_depth(p[..., 2], min_depth, max_depth)
    valid &= np.isfinite(p[..., 0]) & np.isfinite(p[..., 1])
    out = transform_points(base_from_camera, p)
    out[~valid] = np.nan
    return out, colors


def resize_nearest(image, height, width):
    """Nearest-neighbour resample of an (H, W, ...) array to (height, width, ...).

    Pixel centres are aligned ((i + 0.5) * H / height), and NaN never mixes with valid values,
    which is why xyz maps are resampled this way rather than interpolated.
    """
    image = np.asarray(image)
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    rows = np.minimum(((np.arange(height) + 0.5) * (h / height)).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * (w / width)).astype(np.int64), w - 1)
    return image[rows[:, None], cols[None, :]]


__all__ = [
    'cloud_to_xyz_map',
    'depth_to_points',
    'intrinsics_from_k',
    'organized_cloud_to_xyz_map',
    'resize_nearest',
    'rotation_from_quaternion',
    'rotation_from_rpy',
    'rpy_from_rotation',
    'scale_intrinsics',
    'transform_from_xyz_quat',
    'transform_points',
]

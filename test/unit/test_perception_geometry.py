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

"""Camera geometry against Open3D: intrinsics, quaternions, unprojection, cloud projection."""

import numpy as np
import open3d as o3d
import pytest

from spatialvla_ros.perception import geometry

H, W = 48, 64          # non-square on purpose
FX, FY, CX, CY = 55.0, 61.5, 30.3, 25.8
TOL = 1e-5             # [m]


def _K():
    return np.array([[FX, 0, CX], [0, FY, CY], [0, 0, 1.0]])


def _pose(seed=0):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=4)
    return geometry.transform_from_xyz_quat(rng.uniform(-1.5, 1.5, 3), q / np.linalg.norm(q))


def _depth(seed=0, invalid=True):
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.3, 4.0, (H, W)).astype(np.float32)
    if invalid:
        depth[rng.random((H, W)) < 0.1] = 0.0
        depth[rng.random((H, W)) < 0.05] = np.nan
        depth[rng.random((H, W)) < 0.05] = np.inf
        depth[rng.random((H, W)) < 0.05] = 7.5  # beyond max_depth below
    return depth


def _open3d_points(depth, K, base_from_camera, depth_scale=1.0, trunc=5.0):
    intr = o3d.camera.PinholeCameraIntrinsic(depth.shape[1], depth.shape[0], K[0, 0], K[1, 1],
                                             K[0, 2], K[1, 2])
    # Open3D's extrinsic maps world -> camera: the inverse of our base_from_camera.
    pcd = o3d.geometry.PointCloud.create_from_depth_image(
        o3d.geometry.Image(depth), intr, np.linalg.inv(base_from_camera),
        depth_scale=depth_scale, depth_trunc=trunc, project_valid_depth_only=False)
    return np.asarray(pcd.points).reshape(depth.shape + (3,))


@pytest.mark.parametrize('k,field', [
    ([0, 0, 1, 0, 5, 1, 0, 0, 1], 'fx'),
    ([5, 0, 1, 0, -5, 1, 0, 0, 1], 'fy'),
    ([5, 0, np.nan, 0, 5, 1, 0, 0, 1], 'non-finite'),
    ([5, 0, 1, 0, 5, 1], '9'),
])
def test_intrinsics_validation_names_the_field(k, field):
    with pytest.raises(ValueError, match=field) as info:
        geometry.intrinsics_from_k(k, 'camera_info.k')
    assert 'camera_info.k' in str(info.value)


def test_intrinsics_from_k_row_major():
    K = geometry.intrinsics_from_k([FX, 0, CX, 0, FY, CY, 0, 0, 1])
    np.testing.assert_array_equal(K, _K())


def test_quaternion_matches_open3d():
    rng = np.random.default_rng(1)
    for _ in range(20):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        ours = geometry.rotation_from_quaternion(q)
        ref = o3d.geometry.get_rotation_matrix_from_quaternion([q[3], q[0], q[1], q[2]])
        np.testing.assert_allclose(ours, ref, atol=1e-12)
    with pytest.raises(ValueError, match='zero quaternion'):
        geometry.rotation_from_quaternion([0, 0, 0, 0])


def test_transform_points_matches_open3d():
    T = _pose(2)
    pts = np.random.default_rng(2).normal(size=(100, 3))
    ref = np.asarray(o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts)).transform(T).points)
    np.testing.assert_allclose(geometry.transform_points(T, pts), ref, atol=TOL)


@pytest.mark.parametrize('seed', [0, 1])
def test_depth_to_points_matches_open3d(seed):
    depth, T, K = _depth(seed), _pose(seed), _K()
    ours = geometry.depth_to_points(depth, K, T, min_depth=0.0, max_depth=5.0)
    ref = _open3d_points(depth, K, T)
    assert ours.dtype == np.float32 and ours.shape == (H, W, 3)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    assert np.isnan(ours).any(axis=2).sum() > 0.1 * H * W  # the invalid pixels are there
    np.testing.assert_allclose(ours, ref, atol=TOL, equal_nan=True)


def test_depth_to_points_millimetres_match_open3d():
    # The 16UC1 path: uint16 millimetres, scaled like Open3D's depth_scale=1000.
    mm = np.random.default_rng(3).integers(0, 6000, (H, W)).astype(np.uint16)
    mm[mm == 5000] = 4999  # Open3D drops depth == trunc, our range [min, max] keeps it
    T = _pose(3)
    ours = geometry.depth_to_points(mm.astype(np.float32) * np.float32(0.001), _K(), T,
                                    max_depth=5.0)
    ref = _open3d_points(mm, _K(), T, depth_scale=1000.0, trunc=5.0)
    np.testing.assert_allclose(ours, ref, atol=TOL, equal_nan=True)


def test_min_max_depth_masking():
    depth = np.array([[0.04, 0.05, 0.5, 9.9, 10.0, 10.1]], np.float32)
    pts = geometry.depth_to_points(depth, _K(), None, min_depth=0.05, max_depth=10.0)
    np.testing.assert_array_equal(np.isnan(pts[0, :, 2]),
                                  [True, False, False, False, False, True])
    np.testing.assert_allclose(pts[0, 1:5, 2], depth[0, 1:5])
    unbounded = geometry.depth_to_points(np.array([[np.inf, -1.0, 1.0]]), _K())
    np.testing.assert_array_equal(np.isnan(unbounded[0, :, 0]), [True, True, False])


def test_cloud_projection_round_trip():
    """Unproject, shuffle, add occluded points, project back: the map is recovered."""
    depth, T, K = _depth(4), _pose(4), _K()
    cam = geometry.depth_to_points(depth, K, None, max_depth=5.0).reshape(-1, 3)
    valid = np.isfinite(cam).all(axis=1)
    colors = np.random.default_rng(4).integers(0, 256, (H * W, 3), dtype=np.uint8)
    pts, cols = cam[valid], colors[valid]
    # The same rays 0.5 m further: hidden behind the real surface, the z-buffer must drop them.
    hidden = pts * ((pts[:, 2:] + 0.5) / pts[:, 2:])
    cloud = np.concatenate([hidden, pts])
    cloud_cols = np.concatenate([255 - cols, cols])
    perm = np.random.default_rng(5).permutation(len(cloud))
    xyz_map, rgb_map = geometry.cloud_to_xyz_map(cloud[perm], cloud_cols[perm], K, H, W, T,
                                                 max_depth=5.0)
    expected = geometry.depth_to_points(depth, K, T, max_depth=5.0)
    np.testing.assert_array_equal(np.isnan(xyz_map), np.isnan(expected))
    np.testing.assert_allclose(xyz_map, expected, atol=TOL, equal_nan=True)
    np.testing.assert_array_equal(rgb_map.reshape(-1, 3)[valid], cols)
    assert (rgb_map.reshape(-1, 3)[~valid] == 0).all()


def test_zbuffer_nearest_wins_and_out_of_view_dropped():
    K = _K()
    ray = np.array([(10 - CX) / FX, (20 - CY) / FY, 1.0])
    cloud = np.stack([ray * 2.0, ray * 1.0, ray * 3.0, [0.0, 0.0, -1.0], [100.0, 0.0, 1.0]])
    xyz_map, rgb = geometry.cloud_to_xyz_map(cloud, None, K, H, W)
    assert rgb is None
    np.testing.assert_allclose(xyz_map[20, 10], ray, atol=1e-6)
    assert np.isfinite(xyz_map[..., 0]).sum() == 1  # behind-camera / off-image points dropped


def test_organized_cloud_equals_depth_path():
    depth, T, K = _depth(6), _pose(6), _K()
    cam = geometry.depth_to_points(depth, K, None)  # (H, W, 3), NaN where invalid
    xyz_map, _ = geometry.organized_cloud_to_xyz_map(cam, None, T, max_depth=5.0)
    np.testing.assert_allclose(xyz_map, geometry.depth_to_points(depth, K, T, max_depth=5.0),
                               atol=TOL, equal_nan=True)


def test_scale_intrinsics_keeps_pixel_centres():
    K = _K()
    K2 = geometry.scale_intrinsics(K, (W, H), (W // 2, H // 2))
    p = np.array([0.3, -0.2, 1.7])
    u, v = (K @ p)[:2] / p[2]
    u2, v2 = (K2 @ p)[:2] / p[2]
    # Pixel u covers [u - 0.5, u + 0.5]; halving maps its centre to (u + 0.5) / 2 - 0.5.
    np.testing.assert_allclose([u2, v2], [(u + 0.5) / 2 - 0.5, (v + 0.5) / 2 - 0.5])


def test_resize_nearest():
    img = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(geometry.resize_nearest(img, 6, 8),
                                  np.repeat(np.repeat(img, 2, 0), 2, 1))
    np.testing.assert_array_equal(geometry.resize_nearest(img, 3, 2), img[:, [1, 3]])

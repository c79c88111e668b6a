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

"""A pinhole RGB-D camera rendered by pybullet, described the way a ROS driver describes it.

Conventions (the same as a real camera driver's):
- the pose is `base_from_camera` of the *optical* frame (z forward, x right, y down, REP 103),
  translation [m] + quaternion (x, y, z, w), in the robot base frame (`panda_link0`);
- intrinsics follow sensor_msgs/CameraInfo: u = fx * x / z + cx, v = fy * y / z + cy with pixel
  centres at integer coordinates;
- depth is metric z along the optical axis (32FC1 convention), NaN where nothing was hit.

pybullet's renderers do not put the principal point where the textbook says: TinyRenderer maps
the optical axis to (W/2, H/2 - 1), the EGL (OpenGL) renderer to (W/2 - 0.5, H/2 - 0.5). Using the
textbook value shifts every unprojected point by millimetres, so `intrinsics()` returns the
renderer's true values (checked against pybullet ray casts in test/test_sim_camera.py).
"""

from dataclasses import dataclass
from dataclasses import replace
import importlib.util
import logging
import math

import numpy as np
import pybullet as p

from spatialvla_ros.perception.geometry import rotation_from_rpy
from spatialvla_ros.sim.constants import CAMERA_TARGET
from spatialvla_ros.sim.constants import DEFAULT_CAMERA_QUAT
from spatialvla_ros.sim.constants import DEFAULT_CAMERA_XYZ
from spatialvla_ros.sim.constants import SIDE_CAMERA_QUAT
from spatialvla_ros.sim.constants import SIDE_CAMERA_XYZ
from spatialvla_ros.sim.constants import WORKSPACE_X
from spatialvla_ros.sim.constants import WORKSPACE_Y

logger = logging.getLogger(__name__)

RENDERERS = ('tiny', 'egl')
# The table's workspace (corners and centre, z = 0) that every randomised mount must see.
WORKSPACE_POINTS = tuple((x, y, 0.0) for x in WORKSPACE_X for y in WORKSPACE_Y) + (
    (sum(WORKSPACE_X) / 2, sum(WORKSPACE_Y) / 2, 0.0),)
_MOUNT_SALT = 51_966   # mount draws of a seed are independent of its layout draws


def quat_to_matrix(quat):
    """(x, y, z, w) -> (3, 3) rotation matrix; the quaternion is normalised first."""
    x, y, z, w = np.asarray(quat, dtype=np.float64) / np.linalg.norm(quat)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def matrix_to_quat(rot):
    """(3, 3) rotation matrix -> unit quaternion (x, y, z, w) with w >= 0."""
    m = np.asarray(rot, dtype=np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [s / 4, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, s / 4, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, s / 4, (m[1, 0] - m[0, 1]) / s]
    q = np.array(q) / np.linalg.norm(q)
    return tuple(float(v) for v in (q if q[3] >= 0 else -q))


def look_at(eye, target, up=(0.0, 0.0, 1.0)):
    """Return the optical-frame pose ((x, y, z), (qx, qy, qz, qw)) of a camera at `eye`."""
    eye = np.asarray(eye, dtype=np.float64)
    z = np.asarray(target, dtype=np.float64) - eye
    if np.linalg.norm(z) < 1e-9:
        raise ValueError(f'look_at: eye {eye.tolist()} and target coincide')
    z /= np.linalg.norm(z)
    x = np.cross(z, np.asarray(up, dtype=np.float64))
    if np.linalg.norm(x) < 1e-9:
        raise ValueError(f'look_at: viewing direction {z.tolist()} is parallel to up {up}')
    x /= np.linalg.norm(x)
    y = np.cross(z, x)                    # image rows grow downwards
    return tuple(float(v) for v in eye), matrix_to_quat(np.stack([x, y, z], axis=1))


@dataclass(frozen=True)
class CameraSpec:
    width: int = 128                  # image columns [px]
    height: int = 128                 # image rows [px]
    fov_deg: float = 60.0             # vertical field of view [deg]; square pixels (fx = fy)
    near: float = 0.05                # clipping planes of the renderer [m]
    far: float = 4.0
    xyz: tuple = DEFAULT_CAMERA_XYZ   # base_from_camera translation (optical frame) [m]
    quat: tuple = DEFAULT_CAMERA_QUAT  # base_from_camera rotation (x, y, z, w)
    renderer: str = 'tiny'            # 'tiny' (TinyRenderer, CPU) or 'egl' (EGL plugin)

    def validate(self):
        if self.width < 1 or self.height < 1:
            raise ValueError(f'camera size: got {self.width}x{self.height}, expected >= 1x1')
        if not 1.0 < self.fov_deg < 179.0:
            raise ValueError(f'camera fov_deg: got {self.fov_deg}, expected in (1, 179) deg')
        if not 0 < self.near < self.far:
            raise ValueError(f'camera near/far: got {self.near}/{self.far}, '
                             'expected 0 < near < far [m]')
        if len(self.xyz) != 3:
            raise ValueError(f'camera xyz: got {self.xyz!r}, expected three numbers [m]')
        if len(self.quat) != 4 or abs(np.linalg.norm(self.quat) - 1.0) > 1e-3:
            raise ValueError(f'camera quat: got {self.quat!r}, expected a unit quaternion '
                             '(x, y, z, w)')
        if self.renderer not in RENDERERS:
            raise ValueError(f'camera renderer: got {self.renderer!r}, expected one of '
                             f'{RENDERERS}')
        return self

    def base_from_camera(self):
        """(4, 4) homogeneous transform of the optical frame in the base frame."""
        mat = np.eye(4)
        mat[:3, :3] = quat_to_matrix(self.quat)
        mat[:3, 3] = self.xyz
        return mat

    def sees(self, points, margin=0.05):
        """Say whether every base-frame point (N, 3) is in front of the camera and in the image.

        At least `margin` (a share of the image size) from the border; textbook pinhole.
        """
        T = self.base_from_camera()
        cam = (np.asarray(points, dtype=np.float64) - T[:3, 3]) @ T[:3, :3]   # (N, 3) optical
        f = 0.5 * self.height / math.tan(math.radians(self.fov_deg) / 2.0)
        if not np.all(cam[:, 2] > self.near):
            return False
        u = f * cam[:, 0] / cam[:, 2] + self.width / 2.0
        v = f * cam[:, 1] / cam[:, 2] + self.height / 2.0
        mu, mv = margin * self.width, margin * self.height
        return bool(np.all((u >= mu) & (u <= self.width - mu) & (v >= mv)
                           & (v <= self.height - mv)))

    def jittered(self, seed, translation_m, rotation_deg, pivot=CAMERA_TARGET):
        """Return this camera on a random mount near its own, the same for the same seed.

        The camera turns by roll, pitch and yaw each uniform in +-rotation_deg (base-frame
        axes) about `pivot` (the point the default camera looks at, so the workspace stays in
        view), then moves by a translation uniform in +-translation_m per axis. Draws whose
        view misses part of the workspace (`WORKSPACE_POINTS`, `sees`) are drawn again. The
        draws depend on the seed only, not on any other random state or on which process
        asks. No jitter: this spec itself.
        """
        if translation_m < 0 or rotation_deg < 0:
            raise ValueError(f'camera jitter: got {translation_m} m / {rotation_deg} deg, '
                             'expected values >= 0')
        if translation_m == 0 and rotation_deg == 0:
            return self
        rng = np.random.default_rng([int(seed), _MOUNT_SALT])
        rot0, t0 = quat_to_matrix(self.quat), np.asarray(self.xyz, dtype=np.float64)
        pivot = np.asarray(pivot, dtype=np.float64)
        for _ in range(1000):
            turn = rotation_from_rpy(*np.radians(rng.uniform(-rotation_deg, rotation_deg, 3)))
            shift = rng.uniform(-translation_m, translation_m, 3)
            xyz = pivot + turn @ (t0 - pivot) + shift
            spec = replace(self, xyz=tuple(float(v) for v in xyz),
                           quat=matrix_to_quat(turn @ rot0))
            if spec.sees(WORKSPACE_POINTS):
                return spec
        raise ValueError(f'camera jitter: no mount within {translation_m} m / {rotation_deg} '
                         f'deg of the nominal one sees the whole workspace (seed {seed})')


def side_camera_spec(spec, xyz=SIDE_CAMERA_XYZ, quat=SIDE_CAMERA_QUAT):
    """Return the side camera: `spec`'s size, field of view, clipping and renderer at its mount."""
    return replace(spec, xyz=tuple(xyz), quat=tuple(quat)).validate()


def load_egl_plugin(client):
    """Load pybullet's EGL renderer into `client`; True on success.

    Must run before any body exists in the client: bodies created earlier are not uploaded to
    the GPU scene and render blank, without any error.
    """
    spec = importlib.util.find_spec('eglRenderer')
    if spec is None or spec.origin is None:
        logger.warning('EGL renderer plugin (eglRenderer) not found; using TinyRenderer')
        return False
    plugin = p.loadPlugin(spec.origin, '_eglRendererPlugin', physicsClientId=client)
    if plugin < 0:
        logger.warning('EGL renderer plugin failed to load; using TinyRenderer')
        return False
    return True


class Camera:
    """Renders RGB, metric depth and segmentation from a `CameraSpec` in one pybullet client."""

    def __init__(self, spec, client, egl_loaded=False):
        self.spec = spec.validate()
        self.client = client
        # The EGL principal point only applies when the plugin really renders.
        self.backend = 'egl' if (spec.renderer == 'egl' and egl_loaded) else 'tiny'
        gl_from_optical = np.diag([1.0, -1.0, -1.0])  # OpenGL camera: y up, looks along -z
        base_from_gl = spec.base_from_camera()
        base_from_gl[:3, :3] = base_from_gl[:3, :3] @ gl_from_optical
        view = np.linalg.inv(base_from_gl)
        self._view = view.T.reshape(-1).tolist()      # pybullet wants column-major
        self._proj = p.computeProjectionMatrixFOV(spec.fov_deg, spec.width / spec.height,
                                                  spec.near, spec.far)

    def intrinsics(self):
        """(fx, fy, cx, cy) of the rendered images, in pixels."""
        s = self.spec
        fy = 0.5 * s.height / math.tan(math.radians(s.fov_deg) / 2.0)
        if self.backend == 'egl':
            cx, cy = s.width / 2.0 - 0.5, s.height / 2.0 - 0.5
        else:
            cx, cy = s.width / 2.0, s.height / 2.0 - 1.0
        return fy, fy, cx, cy

    def render(self):
        """Render rgb (H, W, 3) uint8, depth (H, W) float32 z [m] (NaN = none), seg (H, W)."""
        s = self.spec
        renderer = p.ER_BULLET_HARDWARE_OPENGL if self.backend == 'egl' else p.ER_TINY_RENDERER
        _, _, rgba, zbuf, seg = p.getCameraImage(
            s.width, s.height, self._view, self._proj, renderer=renderer,
            physicsClientId=self.client)
        rgb = np.ascontiguousarray(np.reshape(rgba, (s.height, s.width, 4))[:, :, :3],
                                   dtype=np.uint8)
        zbuf = np.reshape(zbuf, (s.height, s.width)).astype(np.float64)
        depth = s.far * s.near / (s.far - (s.far - s.near) * zbuf)
        depth = depth.astype(np.float32)
        depth[zbuf >= 1.0 - 1e-7] = np.nan               # background: no surface within far
        return rgb, depth, np.reshape(seg, (s.height, s.width))

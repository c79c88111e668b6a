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

"""Which mount (base_from_camera) each camera has now: the config's, or the newest message's.

A camera mount can move between episodes (a repositioned tripod, a randomised simulator
camera): it comes as geometry_msgs/TransformStamped on `DataConfig.camera_pose_topic`, header
frame = the base frame, child frame = the camera's optical frame (`DataConfig.camera_frames`).
`CameraMounts` keeps the newest valid one per camera; a camera without one keeps the config's
mount. The policy node, the in-process runner and the bag reader all read mounts through it.
"""

from spatialvla_ros.core_types import NS_PER_S
from spatialvla_ros.perception import geometry
from spatialvla_ros.perception.conversions import MessageError
from spatialvla_ros.perception.conversions import transform_stamped_to_mount


class CameraMounts:
    """The mount of every camera of a DataConfig, updated by mount messages.

    Args:
        data_config: perception.configuration.DataConfig (cameras, frames, base frame, topic).
    """

    def __init__(self, data_config):
        self.topic = data_config.camera_pose_topic
        self.base_frame = data_config.base_frame
        self.static = {
            cam.name: geometry.transform_from_xyz_quat(
                cam.base_from_camera_xyz, cam.base_from_camera_quat,
                f'data.cameras[{cam.name}].base_from_camera')
            for cam in data_config.cameras}
        self.frames = {frame: name for name, frame in data_config.camera_frames().items()}
        self.latest = {}     # camera name -> conversions.Mount of the newest valid message

    def parse(self, msg, what=None):
        """Validate a mount message; return (camera name, Mount), or raise MessageError.

        Rejected besides what `transform_stamped_to_mount` rejects: a header frame that is not
        the base frame (the points would be in another frame) and a child frame that names no
        camera (reason 'mount').
        """
        what = what or self.topic or 'camera_pose'
        mount = transform_stamped_to_mount(msg, what)
        if self.base_frame and mount.frame_id != self.base_frame:
            raise MessageError('mount', f'{what}.header.frame_id: got {mount.frame_id!r}, '
                               f'expected the base frame {self.base_frame!r} (data.base_frame)')
        if mount.child_frame_id not in self.frames:
            raise MessageError('mount', f'{what}.child_frame_id: got {mount.child_frame_id!r}, '
                               f'expected the frame of a camera: {sorted(self.frames)} '
                               '(data.cameras[].frame_id)')
        return self.frames[mount.child_frame_id], mount

    def update(self, msg, what=None):
        """Take a mount message (MessageError if it is not valid); return the camera name."""
        camera, mount = self.parse(msg, what)
        self.latest[camera] = mount
        return camera

    def missing(self):
        """Names of the cameras with a frame that no valid mount message has set yet."""
        return [name for name in self.frames.values() if name not in self.latest]

    def snapshot(self, stamp_ns, max_age_s=0.0, what=None):
        """{camera name: (4, 4) base_from_camera} in force for an image stamped `stamp_ns`.

        A camera without a mount message has the config's mount. With max_age_s > 0 a mount
        stamped more than max_age_s before the image is stale: MessageError('stale_mount').
        """
        out = dict(self.static)
        for camera, mount in self.latest.items():
            age = (int(stamp_ns) - mount.stamp_ns) / NS_PER_S
            if max_age_s > 0 and age > max_age_s:
                raise MessageError('stale_mount', (
                    f'{what or self.topic}.header.stamp: the mount of camera {camera!r} '
                    f'({mount.child_frame_id}) is {age:.3f} s older than the image, expected '
                    f'at most {max_age_s:g} s (camera_pose_max_age_s)'))
            out[camera] = mount.base_from_camera
        return out


__all__ = ['CameraMounts']

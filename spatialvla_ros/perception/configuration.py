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

"""Which ROS topics are a policy's observation, state, instruction and action (ROS-free).

The `data:` section of an experiment's / checkpoint's `config.yaml`: read by the observation
builder, the bag reader, the policy node and the trainer alike. It also names the keys of a
LeRobot v3 dataset (`*_key`), read by the trainer and the converter where a bag has topics.
"""

from dataclasses import dataclass

from spatialvla_ros.typed_config import require

DEFAULT_FRAME = 'camera_color_optical_frame'   # the first camera's optical frame by default


@dataclass(frozen=True)
class CameraConfig:
    name: str = 'camera'
    color_topic: str = '/camera/color/image_raw'
    depth_topic: str = '/camera/depth/image_raw'      # '' when the camera gives a cloud
    camera_info_topic: str = '/camera/color/camera_info'
    cloud_topic: str = ''                             # PointCloud2 instead of depth ('' = off)
    # Camera-to-base transform: translation [m] and quaternion (x, y, z, w). The mount in
    # force until a mount message for `frame_id` arrives on DataConfig.camera_pose_topic.
    base_from_camera_xyz: tuple = (0.0, 0.0, 0.0)
    base_from_camera_quat: tuple = (0.0, 0.0, 0.0, 1.0)
    # LeRobot v3 dataset keys of this camera ('' = observation.images.<name> and
    # observation.depth.<name>), and the pinhole intrinsics (fx, fy, cx, cy) [px] used when the
    # dataset carries none (a dataset written by spatialvla_convert carries its camera_info).
    image_key: str = ''
    depth_key: str = ''
    intrinsics: tuple = ()

    @property
    def dataset_image_key(self):
        return self.image_key or f'observation.images.{self.name}'

    @property
    def dataset_depth_key(self):
        return self.depth_key or f'observation.depth.{self.name}'
    # The optical frame: the child_frame_id of this camera's mount messages. '': DEFAULT_FRAME
    # for cameras[0], the config's mount only for any other camera (DataConfig.camera_frames).
    frame_id: str = ''

    def validate(self, prefix):
        require(bool(self.color_topic), f'{prefix}.color_topic', self.color_topic,
                'a topic name')
        require(bool(self.depth_topic) != bool(self.cloud_topic), f'{prefix}.depth_topic',
                self.depth_topic, f'exactly one of depth_topic / cloud_topic '
                f'(cloud_topic={self.cloud_topic!r})')
        require(len(self.base_from_camera_xyz) == 3, f'{prefix}.base_from_camera_xyz',
                self.base_from_camera_xyz, 'three numbers')
        require(len(self.base_from_camera_quat) == 4, f'{prefix}.base_from_camera_quat',
                self.base_from_camera_quat, 'four numbers (x, y, z, w)')
        norm = sum(q * q for q in self.base_from_camera_quat) ** 0.5
        require(abs(norm - 1.0) < 1e-3, f'{prefix}.base_from_camera_quat',
                self.base_from_camera_quat, 'a unit quaternion')
        require(len(self.intrinsics) in (0, 4) and all(v > 0 for v in self.intrinsics[:2]),
                f'{prefix}.intrinsics', self.intrinsics,
                '[] (from the dataset) or [fx, fy, cx, cy] in pixels, fx, fy > 0')


@dataclass(frozen=True)
class DataConfig:
    """Which topics are the observation, the state, the instruction and the action."""

    cameras: tuple = (CameraConfig(),)
    state_topic: str = '/joint_states'
    instruction_topic: str = '/spatialvla/instruction'
    action_topic: str = '/spatialvla/expert_trajectory'  # JointTrajectory commanded in the demos
    sync_slop: float = 0.02          # max stamp difference inside one synchronised set [s]
    # LeRobot v3 dataset keys of the state and the action (the task string is the instruction).
    state_key: str = 'observation.state'
    action_key: str = 'action'
    # geometry_msgs/TransformStamped base_frame -> camera optical frame: each camera's mount
    # (the simulator publishes it per episode; the bag reader trains with each episode's own).
    camera_pose_topic: str = '/spatialvla/camera_pose'  # '' = the config's mounts only
    base_frame: str = 'panda_link0'  # frame of the mounts and the 3D points ('' = any)

    def validate(self, prefix):
        require(len(self.cameras) >= 1, f'{prefix}.cameras', self.cameras, 'at least one camera')
        names = [c.name for c in self.cameras]
        require(len(set(names)) == len(names), f'{prefix}.cameras', names, 'unique camera names')
        for i, cam in enumerate(self.cameras):
            cam.validate(f'{prefix}.cameras[{i}]')
        frames = list(self.camera_frames().values())
        for i, cam in enumerate(self.cameras):
            frame = self.camera_frames().get(cam.name)
            require(frame is None or frames.count(frame) == 1,
                    f'{prefix}.cameras[{i}].frame_id', cam.frame_id or frame,
                    'a frame no other camera has (a mount message names one camera)')
        require(self.sync_slop >= 0, f'{prefix}.sync_slop', self.sync_slop, 'a value >= 0 [s]')
        require(bool(self.state_key), f'{prefix}.state_key', self.state_key, 'a dataset key')
        require(bool(self.action_key), f'{prefix}.action_key', self.action_key, 'a dataset key')

    def camera_frames(self):
        """Return {camera name: optical frame of its mount messages} (cameras that have one).

        A camera's frame_id, else DEFAULT_FRAME for the first camera (the simulator's and a
        RealSense driver's colour optical frame); none without camera_pose_topic.
        """
        if not self.camera_pose_topic:
            return {}
        frames = {c.name: c.frame_id for c in self.cameras if c.frame_id}
        if not self.cameras[0].frame_id:
            frames[self.cameras[0].name] = DEFAULT_FRAME
        return frames

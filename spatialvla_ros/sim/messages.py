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

"""The simulator's ROS messages, built once as rosbags (Kilted) messages and CDR bytes.

The sim node publishes exactly these serialised bytes (rclpy `publish(bytes)`), and the demo
generator writes the same bytes into its bags, so a bag recorded offline and a live run carry
identical topics, types and stamps. Topics and frames are configurable through `SimTopics`.
"""

from dataclasses import dataclass
from dataclasses import replace
import json
from typing import NamedTuple

import numpy as np
from rosbags.typesys import get_typestore
from rosbags.typesys import Stores

from spatialvla_ros.core_types import ns_to_stamp
from spatialvla_ros.perception.conversions import camera_info_fields
from spatialvla_ros.perception.conversions import depth_to_image_fields
from spatialvla_ros.perception.conversions import header_fields
from spatialvla_ros.perception.conversions import pointcloud2_fields_xyzrgb
from spatialvla_ros.perception.conversions import rgb_to_image_fields
from spatialvla_ros.perception.conversions import transform_stamped_fields
from spatialvla_ros.perception.messages import make_message
from spatialvla_ros.sim.constants import DEFAULT_CAMERA_QUAT
from spatialvla_ros.sim.constants import DEFAULT_CAMERA_XYZ
from spatialvla_ros.sim.constants import SIDE_CAMERA_QUAT
from spatialvla_ros.sim.constants import SIDE_CAMERA_XYZ

IMAGE = 'sensor_msgs/msg/Image'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
POINT_CLOUD = 'sensor_msgs/msg/PointCloud2'
JOINT_STATE = 'sensor_msgs/msg/JointState'
TRAJECTORY = 'trajectory_msgs/msg/JointTrajectory'
TRANSFORM = 'geometry_msgs/msg/TransformStamped'
STRING = 'std_msgs/msg/String'
TF = 'tf2_msgs/msg/TFMessage'
# Fixed names, as every ROS tool expects them: robot_state_publisher's topics.
TF_TOPIC = '/tf'
TF_STATIC_TOPIC = '/tf_static'
ROBOT_DESCRIPTION_TOPIC = 'robot_description'    # the URDF, std_msgs/String, latched
LATCHED = 'latched'        # QoS class: reliable + transient local, depth 1
STREAM = 'stream'          # QoS class: reliable, volatile, keep last 10

_TYPESTORE = None


def typestore():
    """Return rosbags' ROS 2 Kilted types, the message definitions of the rclpy wheels."""
    global _TYPESTORE
    if _TYPESTORE is None:
        _TYPESTORE = get_typestore(Stores.ROS2_KILTED)
    return _TYPESTORE


@dataclass(frozen=True)
class SimTopics:
    color: str = '/camera/color/image_raw'
    depth: str = '/camera/depth/image_raw'
    camera_info: str = '/camera/color/camera_info'
    cloud: str = '/camera/depth/points'            # '' = do not publish the cloud
    joint_states: str = '/joint_states'
    instruction: str = '/spatialvla/instruction'
    outcome: str = '/spatialvla/episode_outcome'
    camera_pose: str = '/spatialvla/camera_pose'   # base_from_camera, TransformStamped, latched
    expert: str = '/spatialvla/expert_trajectory'
    command: str = '/joint_trajectory'             # subscribed: trajectories to execute
    base_frame: str = 'panda_link0'
    camera_frame: str = 'camera_color_optical_frame'
    # The optional side camera (PandaEnv side_camera_spec): the same messages on its own topics.
    side_color: str = '/side_camera/color/image_raw'
    side_depth: str = '/side_camera/depth/image_raw'
    side_camera_info: str = '/side_camera/color/camera_info'
    side_cloud: str = '/side_camera/depth/points'  # published when `cloud` is
    side_camera_pose: str = '/spatialvla/side_camera_pose'
    side_camera_frame: str = 'side_camera_color_optical_frame'

    def data_cameras(self, side_camera=False, xyz=DEFAULT_CAMERA_XYZ, quat=DEFAULT_CAMERA_QUAT):
        """Return the `data.cameras` entries (dicts) of a policy config for these topics.

        'front' is the main camera at mount (xyz, quat); with side_camera=True, 'side' follows
        at the side camera's fixed mount. Depth images, not clouds.
        """
        out = [{'name': 'front', 'color_topic': self.color, 'depth_topic': self.depth,
                'camera_info_topic': self.camera_info, 'base_from_camera_xyz': list(xyz),
                'base_from_camera_quat': list(quat)}]
        if side_camera:
            out.append({'name': 'side', 'color_topic': self.side_color,
                        'depth_topic': self.side_depth,
                        'camera_info_topic': self.side_camera_info,
                        'base_from_camera_xyz': list(SIDE_CAMERA_XYZ),
                        'base_from_camera_quat': list(SIDE_CAMERA_QUAT)})
        return out

    def side_view(self):
        """Return these topics with the side camera's in the camera fields (camera_messages)."""
        return replace(self, color=self.side_color, depth=self.side_depth,
                       camera_info=self.side_camera_info,
                       cloud=self.side_cloud if self.cloud else '',
                       camera_pose=self.side_camera_pose, camera_frame=self.side_camera_frame)


class Message(NamedTuple):
    topic: str
    msgtype: str
    msg: object           # rosbags message instance
    qos: str              # LATCHED or STREAM

    def serialize(self):
        """CDR bytes with the encapsulation header, as rclpy and rosbag2 store them."""
        return bytes(typestore().serialize_cdr(self.msg, self.msgtype))


def _camera_table(topics):
    table = [(topics.camera_pose, TRANSFORM, LATCHED), (topics.color, IMAGE, STREAM),
             (topics.depth, IMAGE, STREAM), (topics.camera_info, CAMERA_INFO, STREAM)]
    if topics.cloud:
        table.append((topics.cloud, POINT_CLOUD, STREAM))
    return table


# Topics of one episode in a fixed order, with their types and QoS class (the bag's schema).
def topic_table(topics, side_camera=False):
    """Return the episode's topics; with side_camera=True the side camera's too."""
    table = [(topics.instruction, STRING, LATCHED)] + _camera_table(topics)
    if side_camera:
        table += _camera_table(topics.side_view())
    table += [(topics.joint_states, JOINT_STATE, STREAM), (topics.expert, TRAJECTORY, STREAM),
              (topics.outcome, STRING, STREAM)]
    return table


def _make(msgtype, values):
    return make_message(typestore().types[msgtype], values)


def string_message(topic, text, qos=STREAM):
    return Message(topic, STRING, _make(STRING, {'data': text}), qos)


def outcome_message(topics, task, seed, success, steps, error=''):
    """Episode outcome as JSON; `error` (when not '') says why the episode was cut short."""
    values = {'task': task.name, 'seed': int(seed), 'success': bool(success),
              'steps': int(steps), 'instruction': task.instruction}
    if error:
        values['error'] = str(error)
    text = json.dumps(values)
    return string_message(topics.outcome, text)


def camera_pose_message(topics, stamp_ns, spec):
    values = transform_stamped_fields(spec.xyz, spec.quat, stamp_ns, topics.base_frame,
                                      topics.camera_frame)
    return Message(topics.camera_pose, TRANSFORM, _make(TRANSFORM, values), LATCHED)


def tf_message(topic, stamp_ns, transforms):
    """Return a TFMessage on `topic` (TF_TOPIC, or TF_STATIC_TOPIC: latched), one stamp.

    transforms: (parent frame, child frame, xyz (3,), quaternion xyzw (4,)) each.
    """
    values = {'transforms': [transform_stamped_fields(xyz, quat, stamp_ns, parent, child)
                             for parent, child, xyz, quat in transforms]}
    return Message(topic, TF, _make(TF, values), LATCHED if topic == TF_STATIC_TOPIC else STREAM)


def camera_messages(topics, stamp_ns, rgb, depth, intrinsics):
    """Colour, aligned metric depth, camera info and (optionally) the organised cloud.

    All share one stamp and the optical frame: the depth is rendered by the colour camera
    (like an RGB-D driver's aligned depth), so one CameraInfo serves both images. The cloud is
    organised (H x W, row-major like the images), xyz in the optical frame, NaN where the depth
    is invalid, colour packed PCL-style in float32 `rgb`.
    """
    fx, fy, cx, cy = intrinsics
    frame = topics.camera_frame
    h, w = depth.shape
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    out = [Message(topics.color, IMAGE, _make(IMAGE, rgb_to_image_fields(
               rgb, 'rgb8', stamp_ns, frame)), STREAM),
           Message(topics.depth, IMAGE, _make(IMAGE, depth_to_image_fields(
               depth, '32FC1', stamp_ns, frame)), STREAM),
           Message(topics.camera_info, CAMERA_INFO, _make(CAMERA_INFO, camera_info_fields(
               K, w, h, stamp_ns, frame)), STREAM)]
    if topics.cloud:
        v, u = np.mgrid[0:h, 0:w].astype(np.float32)
        z = depth.astype(np.float32)
        xyz = np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], axis=-1)   # (H, W, 3)
        out.append(Message(topics.cloud, POINT_CLOUD, _make(POINT_CLOUD, pointcloud2_fields_xyzrgb(
            xyz, rgb, stamp_ns, frame)), STREAM))
    return out


def joint_state_message(topics, stamp_ns, names, position, velocity, effort):
    values = {'header': header_fields(stamp_ns, ''), 'name': list(names),
              'position': np.asarray(position, np.float64),
              'velocity': np.asarray(velocity, np.float64),
              'effort': np.asarray(effort, np.float64)}
    return Message(topics.joint_states, JOINT_STATE, _make(JOINT_STATE, values), STREAM)


def trajectory_message(topic, stamp_ns, names, positions, offsets_ns):
    """JointTrajectory: positions (N, n) reached offsets_ns (N,) after the header stamp."""
    points = []
    for q, off in zip(np.asarray(positions, np.float64), offsets_ns):
        points.append({'positions': q, 'time_from_start': ns_to_stamp(off)._asdict()})
    values = {'header': header_fields(stamp_ns, ''), 'joint_names': list(names),
              'points': points}
    return Message(topic, TRAJECTORY, _make(TRAJECTORY, values), STREAM)

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

"""Camera mounts from geometry_msgs/TransformStamped: validation, staleness, live changes."""

import dataclasses
import os

from geometry_msgs.msg import TransformStamped
import numpy as np
from policy_scene import CX
from policy_scene import CY
from policy_scene import FX
from policy_scene import FY
from policy_scene import H
from policy_scene import INSTRUCTION
from policy_scene import scene
from policy_scene import W
import pytest
from repo_paths import REPO_ROOT
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import Image
from sensor_msgs.msg import JointState
from spatialvla_ros.core_types import NS_PER_S
from spatialvla_ros.nodes.policy_runtime import LiveInputs
from spatialvla_ros.perception import conversions as cv
from spatialvla_ros.perception.configuration import CameraConfig
from spatialvla_ros.perception.conversions import MessageError
from spatialvla_ros.perception.messages import make_message
from spatialvla_ros.perception.mounts import CameraMounts
from spatialvla_ros.perception.observation_builder import ObservationBuilder
from spatialvla_ros.perception.observation_builder import sync_keys
from spatialvla_ros.perception.sync import StampSynchronizer
from spatialvla_ros.policies.configuration_policy import PolicyConfig
from spatialvla_ros.sim import messages as sim_msgs
from spatialvla_ros.sim.camera import CameraSpec
from spatialvla_ros.typed_config import ConfigError

CONFIG = os.path.join(REPO_ROOT, 'config', 'late_gemma.yaml')
FRAME = 'camera_color_optical_frame'
QUAT = (0.0, 0.0, 0.0, 1.0)


def mount_msg(xyz, quat=QUAT, stamp_ns=NS_PER_S, frame='panda_link0', child=FRAME):
    return make_message(TransformStamped, cv.transform_stamped_fields(xyz, quat, stamp_ns,
                                                                      frame, child))


@pytest.fixture(scope='module')
def config():
    return PolicyConfig.from_yaml(CONFIG)


def test_mount_messages_are_validated_and_name_the_field(config):
    mounts = CameraMounts(config.data)
    assert mounts.topic == '/spatialvla/camera_pose' and mounts.frames == {FRAME: 'front'}
    # the simulator's own message (rosbags) and an rclpy one read the same
    spec = CameraSpec()
    sim = sim_msgs.camera_pose_message(sim_msgs.SimTopics(), 5 * NS_PER_S, spec).msg
    camera, mount = mounts.parse(sim)
    assert camera == 'front' and mount.stamp_ns == 5 * NS_PER_S
    np.testing.assert_allclose(mount.base_from_camera, spec.base_from_camera(), atol=1e-6)
    bad = {
        'nonfinite': (mount_msg((0.1, np.nan, 0.2)), r'camera_pose\.transform\.translation'),
        'mount': (mount_msg((0, 0, 0), (0.0, 0.0, 0.0, 1.1)), r'transform\.rotation.*unit'),
    }
    bad['nonfinite_rotation'] = (mount_msg((0, 0, 0), (np.inf, 0, 0, 1)),
                                 r'transform\.rotation')
    bad['unknown_frame'] = (mount_msg((0, 0, 0), child='side_optical_frame'),
                            r"child_frame_id: got 'side_optical_frame'")
    bad['base_frame'] = (mount_msg((0, 0, 0), frame='world'),
                         r"header\.frame_id: got 'world'.*panda_link0")
    bad['no_child'] = (mount_msg((0, 0, 0), child=''), r'child_frame_id: got an empty')
    reasons = {'nonfinite': 'nonfinite', 'mount': 'mount', 'nonfinite_rotation': 'nonfinite',
               'unknown_frame': 'mount', 'base_frame': 'mount', 'no_child': 'mount'}
    for name, (msg, field) in bad.items():
        with pytest.raises(MessageError, match=field) as info:
            mounts.update(msg, '/spatialvla/camera_pose')
        assert info.value.reason == reasons[name], name
        assert str(info.value).startswith('/spatialvla/camera_pose.'), name
    with pytest.raises(MessageError, match='TransformStamped'):
        mounts.update(make_message(Image, cv.rgb_to_image_fields(np.zeros((2, 2, 3), np.uint8))))
    assert mounts.latest == {} and mounts.missing() == ['front']
    # within the tolerance a quaternion is taken (and normalised exactly)
    mounts.update(mount_msg((0.5, 0, 1), (0.0, 0.0, 0.0, 1.0005)))
    np.testing.assert_allclose(mounts.snapshot(2 * NS_PER_S)['front'][:3, :3], np.eye(3))
    with pytest.raises(MessageError, match=r'header\.stamp.*camera_pose_max_age_s') as info:
        mounts.snapshot(3 * NS_PER_S, max_age_s=1.5)
    assert info.value.reason == 'stale_mount'
    assert mounts.snapshot(2 * NS_PER_S, max_age_s=1.5)['front'][0, 3] == 0.5


def test_live_inputs_take_a_changed_mount_without_restart(config):
    act, data = config.action, config.data
    builder = ObservationBuilder(data, config.encoder3d, act.names, act.state_dim)
    live = LiveInputs(builder, StampSynchronizer(sync_keys(data), 0.005),
                      ['/c', '/d', '/i', '/js'], clock=lambda: 0.0, require_mounts=True,
                      max_mount_age_s=0.0)
    live.reset(3600.0, 3600.0)
    live.set_instruction(INSTRUCTION)
    K = np.array([[FX, 0, CX], [0, FY, CY], [0, 0, 1]])
    rgb, depth = scene(0)

    def camera_set(t):
        live.joint_state('/js', make_message(JointState, {
            'header': cv.header_fields(t), 'name': list(act.names),
            'position': np.zeros(len(act.names))}), t, t)
        jobs = [live.camera(f'front/{kind}', topic, make_message(cls, values), t, t, 0.0)
                for kind, topic, cls, values in (
                    ('color', '/c', Image, cv.rgb_to_image_fields(rgb, 'rgb8', t)),
                    ('depth', '/d', Image, cv.depth_to_image_fields(depth, '32FC1', t)),
                    ('camera_info', '/i', CameraInfo, cv.camera_info_fields(K, W, H, t)))]
        job = jobs[-1]
        if job is None:
            return None
        return builder.assemble(job.arrays, job.state, job.instruction, job.stamp_ns,
                                job.mounts).points[0]

    t = 10 * NS_PER_S
    topic = '/spatialvla/camera_pose'
    assert camera_set(t) is None                       # no mount yet: nothing to act on
    assert 'no camera mount yet on /spatialvla/camera_pose for front' in \
        live.waiting_reason('/instruction')
    assert live.camera_pose(topic, mount_msg((0.9, 0.0, 0.85), stamp_ns=t)) == 'front'
    assert live.waiting_reason('/instruction') == ''
    first = camera_set(t + NS_PER_S)
    ok = np.isfinite(first).all(-1)
    np.testing.assert_allclose(first[ok].mean(0)[:2], (0.9, 0.0), atol=0.05)
    # the tripod moved: the next set is unprojected with the new mount, no restart
    live.camera_pose(topic, mount_msg((1.0, -0.2, 0.85), stamp_ns=t + 2 * NS_PER_S))
    second = camera_set(t + 3 * NS_PER_S)
    np.testing.assert_allclose(second[ok] - first[ok], np.broadcast_to((0.1, -0.2, 0.0),
                                                                       first[ok].shape),
                               atol=1e-5)
    # a malformed or older mount is rejected and changes nothing
    with pytest.raises(MessageError) as info:
        live.camera_pose(topic, mount_msg((0, 0, 0), (0.0, 0.0, 0.3, 0.5),
                                          stamp_ns=t + 4 * NS_PER_S))
    assert info.value.reason == 'mount'
    with pytest.raises(MessageError) as info:
        live.camera_pose(topic, mount_msg((0, 0, 0), stamp_ns=t))
    assert info.value.reason == 'out_of_order'
    np.testing.assert_allclose(camera_set(t + 5 * NS_PER_S)[ok], second[ok], atol=1e-6)
    # a mount older than camera_pose_max_age_s relative to the images: the set is rejected
    live.max_mount_age_s = 2.5
    with pytest.raises(MessageError, match='camera_pose.header.stamp') as info:
        camera_set(t + 6 * NS_PER_S)
    assert info.value.reason == 'stale_mount'


def test_mount_frames_of_the_cameras(config):
    side = CameraConfig(name='side', color_topic='/side/color', depth_topic='/side/depth',
                        camera_info_topic='/side/info')
    data = dataclasses.replace(config.data, cameras=config.data.cameras + (side,))
    # the first camera has the default optical frame, another one only its configured mount
    assert data.camera_frames() == {'front': 'camera_color_optical_frame'}
    moved = dataclasses.replace(side, frame_id='side_optical_frame')
    data = dataclasses.replace(data, cameras=(data.cameras[0], moved))
    assert CameraMounts(data).frames == {'camera_color_optical_frame': 'front',
                                         'side_optical_frame': 'side'}
    assert dataclasses.replace(data, camera_pose_topic='').camera_frames() == {}
    twice = dataclasses.replace(side, frame_id='camera_color_optical_frame')
    with pytest.raises(ConfigError, match=r'data\.cameras\[0\]\.frame_id'):
        dataclasses.replace(data, cameras=(data.cameras[0], twice)).validate('data')

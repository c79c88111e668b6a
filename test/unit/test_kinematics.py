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

"""Forward kinematics from the published URDF (Pinocchio) against the simulator (pybullet)."""

import os
import re

import numpy as np
import pybullet as p
import pybullet_data
import pytest

from spatialvla_ros.perception.kinematics import RobotKinematics
from spatialvla_ros.sim.panda_env import ACTION_NAMES
from spatialvla_ros.sim.panda_env import HOME
from spatialvla_ros.sim.panda_env import LOWER_LIMITS
from spatialvla_ros.sim.panda_env import PANDA_URDF
from spatialvla_ros.sim.panda_env import panda_urdf
from spatialvla_ros.sim.panda_env import STATE_NAMES
from spatialvla_ros.sim.panda_env import TCP_FRAME
from spatialvla_ros.sim.panda_env import TCP_LINK
from spatialvla_ros.sim.panda_env import UPPER_LIMITS

CONFIGURATIONS = 200


@pytest.fixture(scope='module')
def kinematics():
    return RobotKinematics(panda_urdf())


@pytest.fixture(scope='module')
def bullet():
    """Load the simulator's robot: the same URDF file, as PandaEnv loads it into pybullet."""
    client = p.connect(p.DIRECT)
    p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=client)
    robot = p.loadURDF(PANDA_URDF, [0, 0, 0], useFixedBase=True, physicsClientId=client)
    yield client, robot
    p.disconnect(physicsClientId=client)


def _random_states(rng, count):
    """(count, 9) joint values in STATE_NAMES order within the Panda's limits."""
    arm = rng.uniform(LOWER_LIMITS[:7], UPPER_LIMITS[:7], size=(count, 7))
    finger = rng.uniform(0.0, 0.04, size=(count, 1))
    return np.hstack([arm, finger, finger])


def _same_rotation(qa, qb):
    """Quaternions (xyzw) of one rotation up to sign: |<qa, qb>| = 1."""
    return np.abs(np.sum(qa * qb, axis=-1))


def test_fk_matches_the_simulator_for_random_configurations(kinematics, bullet):
    client, robot = bullet
    joints = {p.getJointInfo(robot, j, physicsClientId=client)[1].decode(): j
              for j in range(p.getNumJoints(robot, physicsClientId=client))}
    links = {p.getJointInfo(robot, j, physicsClientId=client)[12].decode(): j
             for j in joints.values()}
    assert links[TCP_FRAME] == TCP_LINK                  # the sim's TCP is this URDF link
    states = _random_states(np.random.default_rng(0), CONFIGURATIONS)
    fk = {link: kinematics.link_poses(link, STATE_NAMES, states) for link in links}
    worst = 0.0
    for i, q in enumerate(states):
        for name, value in zip(STATE_NAMES, q):
            p.resetJointState(robot, joints[name], value, physicsClientId=client)
        for link, index in links.items():
            state = p.getLinkState(robot, index, computeForwardKinematics=True,
                                   physicsClientId=client)
            error = np.linalg.norm(fk[link][0][i] - state[4])
            worst = max(worst, error)
            assert error < 1e-3, (link, q, fk[link][0][i], state[4])
            assert _same_rotation(fk[link][1][i], np.array(state[5])) > 1 - 1e-6, (link, q)
    assert worst < 1e-6                            # float rounding only: the same model


def test_poses_follow_named_joints_only(kinematics):
    home = kinematics.link_poses(TCP_FRAME, ACTION_NAMES, [HOME])
    # Extra joints (another robot's) are ignored; the order of the columns is the names'.
    names = ['other_joint'] + list(reversed(ACTION_NAMES))
    again = kinematics.link_poses(TCP_FRAME, names, [[5.0] + list(reversed(HOME))])
    np.testing.assert_allclose(again[0], home[0])
    moved = kinematics.link_poses(TCP_FRAME, ['panda_joint1'], [[np.pi / 2]])
    assert moved[0][0, 0] == pytest.approx(0.0, abs=1e-9) and moved[0][0, 1] > 0.05
    assert kinematics.chain_joints(TCP_FRAME) == list(ACTION_NAMES[:7])
    assert kinematics.root_link == 'panda_link0'


def test_tree_transforms_compose_to_the_link_poses(kinematics):
    """The per-joint transforms (what /tf carries) chain up to the forward kinematics."""
    q = _random_states(np.random.default_rng(1), 1)[0]
    tree = {child: (parent, xyz, quat) for parent, child, xyz, quat, _ in
            kinematics.joint_transforms(STATE_NAMES, q)}
    assert set(tree) == set(kinematics.links) - {'panda_link0'}
    fixed = {child for _, child, _, _, is_fixed in kinematics.joint_transforms([], []) if is_fixed}
    assert fixed == {'panda_link8', 'panda_hand', 'panda_grasptarget'}

    def matrix(xyz, quat):
        x, y, z, w = quat
        rot = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        out = np.eye(4)
        out[:3, :3], out[:3, 3] = rot, xyz
        return out

    link, pose = TCP_FRAME, np.eye(4)
    while link in tree:
        parent, xyz, quat = tree[link]
        pose, link = matrix(xyz, quat) @ pose, parent
    assert link == 'panda_link0'
    np.testing.assert_allclose(pose[:3, 3], kinematics.link_poses(TCP_FRAME, STATE_NAMES,
                                                                  [q])[0][0], atol=1e-9)


def test_bad_input_names_what_is_wrong(kinematics):
    with pytest.raises(ValueError, match='robot_description: expected URDF'):
        RobotKinematics('')
    with pytest.raises(ValueError, match='my_urdf: not a valid URDF'):
        RobotKinematics('<robot name="x"><joint name="j" type="revolute"/></robot>', 'my_urdf')
    with pytest.raises(ValueError, match="link 'tool0'.*panda_grasptarget"):
        kinematics.link_poses('tool0', ACTION_NAMES, [HOME])
    with pytest.raises(ValueError, match=r'positions: expected shape \(N, 8\)'):
        kinematics.link_poses(TCP_FRAME, ACTION_NAMES, [HOME[:7]])
    with pytest.raises(ValueError, match='finite'):
        kinematics.link_poses(TCP_FRAME, ACTION_NAMES, [[np.nan] * 8])


def test_published_urdf_is_self_contained():
    """Meshes as absolute file:// URIs that exist (pybullet_data's package:// has no package)."""
    text = panda_urdf()
    assert 'package://' not in text
    meshes = re.findall(r'filename="file://([^"]+)"', text)
    assert meshes and all(os.path.isfile(m) for m in meshes)

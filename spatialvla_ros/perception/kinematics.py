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

"""Forward kinematics of a robot described by URDF text, with Pinocchio (no rclpy).

The robot model comes from the standard `robot_description` (the URDF as text: a parameter or
the latched topic), so any arm works; joint values are given by name, as JointState and
JointTrajectory carry them. Poses are in the URDF's root link frame (the robot base).
"""

import numpy as np
import pinocchio

_SINGLE_DOF = ('JointModelRX', 'JointModelRY', 'JointModelRZ', 'JointModelRevoluteUnaligned',
               'JointModelPX', 'JointModelPY', 'JointModelPZ', 'JointModelPrismaticUnaligned')


class RobotKinematics:
    """Link poses of a URDF robot for joint vectors given by joint name."""

    def __init__(self, urdf_xml, what='robot_description'):
        """Parse `urdf_xml` (URDF text); ValueError naming `what` when it is not a robot."""
        if not isinstance(urdf_xml, str) or '<robot' not in urdf_xml:
            raise ValueError(f'{what}: expected URDF text (<robot ...>), got '
                             f'{str(urdf_xml)[:60]!r}')
        try:
            self.model = pinocchio.buildModelFromXML(urdf_xml)
        except (RuntimeError, ValueError) as exc:
            raise ValueError(f'{what}: not a valid URDF: {exc}') from None
        self._data = self.model.createData()
        self.root_link = self.model.frames[1].name if len(self.model.frames) > 1 else ''
        # joint name -> index in q, for the one-degree-of-freedom joints (revolute, prismatic).
        self.joint_index = {}
        for jid in range(1, self.model.njoints):
            joint = self.model.joints[jid]
            if joint.shortname() in _SINGLE_DOF:
                self.joint_index[self.model.names[jid]] = joint.idx_q

    @property
    def links(self):
        """Names of the URDF links."""
        return [f.name for f in self.model.frames if f.type == pinocchio.FrameType.BODY]

    def frame_id(self, link):
        """Pinocchio frame index of `link`; ValueError listing the links when there is none."""
        if not self.model.existFrame(link):
            raise ValueError(f'link {link!r}: not in the robot model; links: '
                             f'{", ".join(self.links)}')
        return self.model.getFrameId(link)

    def chain_joints(self, link):
        """Names of the movable joints between the root and `link`, root first."""
        joint = self.model.frames[self.frame_id(link)].parentJoint
        return [self.model.names[j] for j in self.model.supports[joint]
                if self.model.names[j] in self.joint_index]

    def configurations(self, names, positions, what='positions'):
        """(N, nq) configurations from (N, len(names)) values; absent joints stay at zero.

        Names the model does not have are ignored (a JointState may carry other joints).
        """
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] != len(names):
            raise ValueError(f'{what}: expected shape (N, {len(names)}) (one column per joint '
                             f'name), got {positions.shape}')
        if not np.all(np.isfinite(positions)):
            raise ValueError(f'{what}: expected finite joint values')
        q = np.tile(pinocchio.neutral(self.model), (len(positions), 1))
        for col, name in enumerate(names):
            if name in self.joint_index:
                q[:, self.joint_index[name]] = positions[:, col]
        return q

    def link_poses(self, link, names, positions):
        """Poses of `link` in the root frame: (N, 3) positions and (N, 4) quaternions (xyzw).

        names: the joint names of the columns of `positions` (N, len(names)).
        """
        fid = self.frame_id(link)
        qs = self.configurations(names, positions)
        xyz = np.empty((len(qs), 3))
        quat = np.empty((len(qs), 4))
        for i, q in enumerate(qs):
            pinocchio.framesForwardKinematics(self.model, self._data, q)
            placement = self._data.oMf[fid]
            xyz[i] = placement.translation
            quat[i] = pinocchio.Quaternion(placement.rotation).coeffs()   # x, y, z, w
        return xyz, quat

    def joint_transforms(self, names, position):
        """Return the URDF tree's transforms at one joint vector, as robot_state_publisher would.

        Returns [(parent link, child link, xyz (3,), quat xyzw (4,), fixed)], one per URDF
        joint; `fixed` joints do not move (they belong on /tf_static).
        """
        q = self.configurations(names, np.asarray(position, np.float64)[None])[0]
        pinocchio.framesForwardKinematics(self.model, self._data, q)
        out = []
        for index, frame in enumerate(self.model.frames):
            if frame.type != pinocchio.FrameType.BODY:
                continue
            joint_frame = self.model.frames[frame.parentFrame]
            if joint_frame.parentFrame == 0:
                continue                              # the root link: hangs from 'universe'
            parent = joint_frame.parentFrame
            rel = self._data.oMf[parent].actInv(self._data.oMf[index])
            out.append((self.model.frames[parent].name, frame.name, np.array(rel.translation),
                        pinocchio.Quaternion(rel.rotation).coeffs().copy(),
                        joint_frame.type == pinocchio.FrameType.FIXED_JOINT))
        return out

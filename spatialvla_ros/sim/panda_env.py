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

"""The simulated workcell: a Franka Panda on a table with coloured objects and a tray.

Frames: the robot base `panda_link0` is the world origin, x forward (away from the robot),
y to the robot's left, z up (REP 103); the table top is the plane z = 0. Time is simulated and
kept in integer nanoseconds (`time_ns`), starting at the `t0_ns` given to `reset`; everything the
simulator reports is stamped with it. No rclpy here: the node and the offline demo generator
drive the same class.
"""

from dataclasses import dataclass
import math
import os

import numpy as np
import pybullet as p
import pybullet_data

from spatialvla_ros.core_types import NS_PER_S
from spatialvla_ros.sim.camera import Camera
from spatialvla_ros.sim.camera import load_egl_plugin
from spatialvla_ros.sim.constants import ACTION_NAMES
from spatialvla_ros.sim.constants import ARM_JOINTS
from spatialvla_ros.sim.constants import FINGER_JOINTS
from spatialvla_ros.sim.constants import LOWER_LIMITS
from spatialvla_ros.sim.constants import UPPER_LIMITS
from spatialvla_ros.sim.constants import WORKSPACE_X
from spatialvla_ros.sim.constants import WORKSPACE_Y
from spatialvla_ros.sim.trajectory import TrajectoryExecutor

STATE_NAMES = ARM_JOINTS + FINGER_JOINTS          # what /joint_states carries, like a real Panda
HOME = (0.0, -0.6, 0.0, -2.4, 0.0, 1.8, 0.785, 0.04)
MAX_FORCES = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0, 40.0, 40.0)
PANDA_URDF = 'franka_panda/panda.urdf'           # in pybullet_data
TCP_LINK = 11                                    # panda_grasptarget: between the finger pads
TCP_FRAME = 'panda_grasptarget'                  # its URDF link name

COLOURS = {'red': (0.85, 0.12, 0.12, 1.0), 'green': (0.15, 0.7, 0.2, 1.0),
           'blue': (0.12, 0.3, 0.9, 1.0), 'yellow': (0.95, 0.82, 0.1, 1.0)}
SHAPES = ('cube', 'sphere')
OBJECT_HALF = 0.025               # cube half edge = sphere radius [m]
OBJECT_MASS = 0.08                  # [kg]
TRAY_INNER_HALF = 0.08              # inner half size of the tray [m]
TRAY_WALL = (0.01, 0.035)           # wall thickness, height [m]
TRAY_FLOOR = 0.008                  # thickness of the tray's floor [m]
PARKING_Z = -0.72                   # floor height under the table (unused objects) [m]
MIN_OBJECT_DISTANCE = 0.10          # centre-to-centre [m]


def panda_urdf():
    """Return the Panda's URDF as the simulator loads it, as text for `robot_description`.

    pybullet_data's file names its meshes `package://meshes/...`, relative to the URDF's own
    folder (no ROS package of that name exists); they become absolute file:// URIs, so a viewer
    on this machine finds them. Kinematics (links, joints, limits) needs no mesh: the text is
    complete for it anywhere.
    """
    path = os.path.join(pybullet_data.getDataPath(), PANDA_URDF)
    with open(path, encoding='utf-8') as f:
        text = f.read()
    return text.replace('package://', 'file://' + os.path.dirname(path) + '/')


@dataclass(frozen=True)
class ObjectSpec:
    colour: str
    shape: str
    xy: tuple
    yaw: float

    @property
    def name(self):
        return f'{self.colour} {self.shape}'


@dataclass(frozen=True)
class Layout:
    objects: tuple                  # ObjectSpec, one per colour
    tray_xy: tuple


def _tray_clearance(xy, tray_xy):
    """Distance from `xy` to the tray's outer square (0 inside)."""
    half = TRAY_INNER_HALF + TRAY_WALL[0]
    d = np.maximum(np.abs(np.subtract(xy, tray_xy)) - half, 0.0)
    return float(np.linalg.norm(d))


def sample_layout(rng, num_objects=4):
    """Random tray and object placement (rejection sampling; deterministic for a given rng)."""
    if not 1 <= num_objects <= len(COLOURS):
        raise ValueError(f'num_objects: got {num_objects}, expected 1..{len(COLOURS)}')
    for _ in range(1000):
        tray = (rng.uniform(*WORKSPACE_X), rng.uniform(*WORKSPACE_Y))
        colours = rng.permutation(list(COLOURS))[:num_objects]
        objects = []
        for colour in colours:
            for _ in range(200):
                xy = (rng.uniform(*WORKSPACE_X), rng.uniform(*WORKSPACE_Y))
                if _tray_clearance(xy, tray) < 0.06:
                    continue
                if all(math.dist(xy, o.xy) >= MIN_OBJECT_DISTANCE for o in objects):
                    break
            else:
                break
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            objects.append(ObjectSpec(str(colour), shape, xy, float(rng.uniform(-0.7, 0.7))))
        if len(objects) == num_objects:
            return Layout(tuple(objects), tray)
    raise RuntimeError('sample_layout: no placement found in 1000 tries')


class PandaEnv:
    """pybullet DIRECT world with the Panda under interpolated position control."""

    def __init__(self, camera_spec=None, physics_hz=240, side_camera_spec=None):
        """camera_spec: the main camera (None: none); side_camera_spec: an optional second one."""
        if side_camera_spec is not None and camera_spec is None:
            raise ValueError('side_camera_spec: given without camera_spec (the side camera is '
                             'a second camera, expected a main camera too)')
        self.physics_hz = int(physics_hz)
        self.client = p.connect(p.DIRECT)
        egl = False
        if any(s is not None and s.renderer == 'egl' for s in (camera_spec, side_camera_spec)):
            egl = load_egl_plugin(self.client)      # before any body exists
        cid = self.client
        p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=cid)
        p.setGravity(0, 0, -9.81, physicsClientId=cid)
        p.setPhysicsEngineParameter(fixedTimeStep=1.0 / self.physics_hz, numSolverIterations=80,
                                    deterministicOverlappingPairs=1,
                                    physicsClientId=cid)
        p.loadURDF('plane.urdf', [0, 0, PARKING_Z], physicsClientId=cid)
        self.table = self._make_table()
        self.robot = p.loadURDF(PANDA_URDF, [0, 0, 0], useFixedBase=True,
                                flags=p.URDF_ENABLE_CACHED_GRAPHICS_SHAPES,
                                physicsClientId=cid)
        self._arm_ids = list(range(7))
        self._motor_ids = self._arm_ids + [9, 10]
        for j in (9, 10):
            p.changeDynamics(self.robot, j, lateralFriction=1.5, spinningFriction=0.01,
                             physicsClientId=cid)
        self._egl = egl
        self.camera = Camera(camera_spec, cid, egl) if camera_spec is not None else None
        self.side_camera = (Camera(side_camera_spec, cid, egl)
                            if side_camera_spec is not None else None)
        self._pool = {}               # name -> body id of every possible object
        self._saved = None            # pybullet state id of the parked scene
        self.objects = {}             # name -> body id (this episode's objects)
        self.specs = {}               # name -> ObjectSpec
        self.tray = None
        self.time_ns = 0
        self._step_index = 0
        self._t0_ns = 0
        self.executor = TrajectoryExecutor(ACTION_NAMES, HOME)

    def set_camera(self, spec):
        """Mount the camera anew (e.g. a randomised mount per episode); no body is reloaded."""
        self.camera = Camera(spec, self.client, self._egl)

    # --- scene ---------------------------------------------------------------------------
    def _compound(self, boxes, rgba, mass=0.0, pos=(0, 0, 0)):
        """Create a static body of boxes [(half_extents, centre)] (visual = collision)."""
        cid = self.client
        halves = [list(b[0]) for b in boxes]
        centres = [list(b[1]) for b in boxes]
        col = p.createCollisionShapeArray([p.GEOM_BOX] * len(boxes), halfExtents=halves,
                                          collisionFramePositions=centres, physicsClientId=cid)
        vis = p.createVisualShapeArray([p.GEOM_BOX] * len(boxes), halfExtents=halves,
                                       visualFramePositions=centres,
                                       rgbaColors=[list(rgba)] * len(boxes), physicsClientId=cid)
        return p.createMultiBody(mass, col, vis, basePosition=list(pos), physicsClientId=cid)

    def _make_table(self):
        top = ((0.6, 0.6, 0.02), (0.4, 0.0, -0.02))
        legs = [((0.03, 0.03, 0.34), (0.4 + sx * 0.52, sy * 0.52, -0.38))
                for sx in (-1, 1) for sy in (-1, 1)]
        body = self._compound([top] + legs, (0.72, 0.58, 0.42, 1.0))
        p.changeDynamics(body, -1, lateralFriction=0.6, physicsClientId=self.client)
        return body

    def _make_tray(self, xy):
        h, (t, wall_h) = TRAY_INNER_HALF, TRAY_WALL
        boxes = [((h + t, h + t, TRAY_FLOOR / 2), (0, 0, TRAY_FLOOR / 2))]
        for sx, sy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            half = (t / 2, h + t, wall_h / 2) if sx else (h + t, t / 2, wall_h / 2)
            boxes.append((half, (sx * (h + t / 2), sy * (h + t / 2), wall_h / 2)))
        return self._compound(boxes, (0.55, 0.55, 0.6, 1.0), pos=(xy[0], xy[1], 0.0))

    def _make_object(self, colour, shape, parking_xy):
        cid, half = self.client, OBJECT_HALF
        if shape == 'cube':
            geom = {'shapeType': p.GEOM_BOX, 'halfExtents': [half] * 3}
        else:
            geom = {'shapeType': p.GEOM_SPHERE, 'radius': half}
        col = p.createCollisionShape(physicsClientId=cid, **geom)
        vis = p.createVisualShape(rgbaColor=COLOURS[colour], physicsClientId=cid, **geom)
        body = p.createMultiBody(OBJECT_MASS, col, vis,
                                 basePosition=[*parking_xy, PARKING_Z + half],
                                 physicsClientId=cid)
        # Rolling resistance keeps pushed spheres from rolling off the table.
        p.changeDynamics(body, -1, lateralFriction=1.0, spinningFriction=0.002,
                         rollingFriction=0.002 if shape == 'sphere' else 0.0,
                         physicsClientId=cid)
        return body

    def _build_pool(self):
        """Every (colour, shape) object and the tray exist once, parked under the table.

        Episodes move them into place after restoring the state saved here, instead of creating
        and removing bodies: removal changes pybullet's internal ordering, and an episode would
        then depend (at the 1e-3 level) on the episodes the process ran before it.
        """
        self._pool = {}
        kinds = [(c, s) for c in COLOURS for s in SHAPES]
        for i, (colour, shape) in enumerate(kinds):
            parking = (0.1 + 0.1 * (i % 4), -0.3 + 0.2 * (i // 4))
            self._pool[f'{colour} {shape}'] = self._make_object(colour, shape, parking)
        self.tray = self._make_tray((0.4, 0.0))
        p.resetBasePositionAndOrientation(self.tray, [0.4, 0.3, PARKING_Z], [0, 0, 0, 1],
                                          physicsClientId=self.client)
        for _ in range(self.physics_hz):                  # parked objects come to rest
            p.stepSimulation(physicsClientId=self.client)
        self._saved = p.saveState(physicsClientId=self.client)

    def reset(self, layout, t0_ns=0):
        """Place `layout`, put the arm at HOME, hold it, and restart the clock at `t0_ns`.

        The same layout gives the same episode whatever the env simulated before.
        """
        cid = self.client
        if self._saved is None:
            self._build_pool()
        p.restoreState(self._saved, physicsClientId=cid)
        p.resetBasePositionAndOrientation(self.tray, [*layout.tray_xy, 0.0], [0, 0, 0, 1],
                                          physicsClientId=cid)
        self.objects, self.specs = {}, {}
        for spec in layout.objects:
            body = self._pool[spec.name]
            p.resetBasePositionAndOrientation(
                body, [*spec.xy, OBJECT_HALF + 1e-4],
                p.getQuaternionFromEuler([0, 0, spec.yaw]), physicsClientId=cid)
            p.resetBaseVelocity(body, [0, 0, 0], [0, 0, 0], physicsClientId=cid)
            self.objects[spec.name], self.specs[spec.name] = body, spec
        for j, q in zip(self._arm_ids, HOME[:7]):
            p.resetJointState(self.robot, j, q, 0.0, physicsClientId=cid)
        for j in (9, 10):
            p.resetJointState(self.robot, j, HOME[7], 0.0, physicsClientId=cid)
        self._t0_ns, self._step_index, self.time_ns = int(t0_ns), 0, int(t0_ns)
        self.executor.hold(HOME, self.time_ns)
        for _ in range(int(0.2 * self.physics_hz)):      # let objects settle (clock not advanced)
            self._apply_command(np.asarray(HOME))
            p.stepSimulation(physicsClientId=cid)

    def close(self):
        if self.client is not None:
            p.disconnect(physicsClientId=self.client)
            self.client = None

    # --- time and control --------------------------------------------------------------------
    def _apply_command(self, command, velocity=None):
        lo, hi = np.asarray(LOWER_LIMITS), np.asarray(UPPER_LIMITS)
        q = np.clip(command, lo, hi)
        qd = np.zeros(8) if velocity is None else np.where((q > lo) & (q < hi), velocity, 0.0)
        p.setJointMotorControlArray(self.robot, self._motor_ids, p.POSITION_CONTROL,
                                    targetPositions=list(q[:7]) + [q[7], q[7]],
                                    targetVelocities=list(qd[:7]) + [qd[7], qd[7]],
                                    forces=list(MAX_FORCES), physicsClientId=self.client)

    def _time_at(self, step_index):
        return self._t0_ns + (step_index * NS_PER_S) // self.physics_hz

    def substeps(self, period_s):
        """Physics steps in one control period; the period must be a whole number of steps."""
        n = period_s * self.physics_hz
        if n < 1 or abs(n - round(n)) > 1e-6:
            raise ValueError(f'control period: got {period_s} s, expected a multiple of the '
                             f'physics step 1/{self.physics_hz} s')
        return int(round(n))

    def step(self, num_substeps):
        """Advance the physics by `num_substeps`, tracking the commanded trajectory."""
        for _ in range(num_substeps):
            t_next = self._time_at(self._step_index + 1)
            self._apply_command(self.executor.evaluate(t_next), self.executor.velocity(t_next))
            p.stepSimulation(physicsClientId=self.client)
            self._step_index += 1
            self.time_ns = t_next

    def skip_time(self, delta_ns):
        """Move the clock forward without physics (used by the node to catch up wall time)."""
        self._t0_ns += int(delta_ns)
        self.time_ns = self._time_at(self._step_index)

    # --- state ---------------------------------------------------------------------------
    def joint_state(self):
        """(positions, velocities, efforts) of STATE_NAMES, each (9,) float64."""
        states = p.getJointStates(self.robot, self._motor_ids, physicsClientId=self.client)
        pos = np.array([s[0] for s in states])
        vel = np.array([s[1] for s in states])
        eff = np.array([s[3] for s in states])
        return pos, vel, eff

    def measured_action_state(self):
        """(8,) measured positions in ACTION_NAMES order."""
        return self.joint_state()[0][:8].copy()

    def tcp_pose(self):
        state = p.getLinkState(self.robot, TCP_LINK, computeForwardKinematics=True,
                               physicsClientId=self.client)
        return np.array(state[4]), np.array(state[5])

    def object_pose(self, name):
        pos, quat = p.getBasePositionAndOrientation(self.objects[name],
                                                    physicsClientId=self.client)
        return np.array(pos), np.array(quat)

    def object_yaw(self, name):
        return p.getEulerFromQuaternion(self.object_pose(name)[1])[2]

    def tray_xy(self):
        pos, _ = p.getBasePositionAndOrientation(self.tray, physicsClientId=self.client)
        return np.array(pos[:2])

    def touching(self, name):
        """Tell whether a finger or the hand touches the object now."""
        return len(p.getContactPoints(self.robot, self.objects[name],
                                      physicsClientId=self.client)) > 0

    def render(self):
        if self.camera is None:
            raise ValueError('render: this PandaEnv was built without a camera_spec')
        return self.camera.render()

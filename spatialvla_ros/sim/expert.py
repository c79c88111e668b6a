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

"""A scripted expert that solves every task from the simulator's true state.

The expert plans a few Cartesian waypoints for the grasp point (gripper pointing down, yaw
aligned with the object), each waypoint's goal being computed from the live object poses when
the segment starts. At every control tick it returns the joint target for t + dt: the point of
the current segment at that time (smooth-step profile) solved by inverse kinematics on a private
kinematic copy of the Panda, so the live robot is never touched by the solver. A failed grasp
(object not lifted) is retried.
"""

from dataclasses import dataclass
import math
from typing import Callable

import numpy as np
import pybullet as p
import pybullet_data

from spatialvla_ros.sim.panda_env import HOME
from spatialvla_ros.sim.panda_env import LOWER_LIMITS
from spatialvla_ros.sim.panda_env import OBJECT_HALF
from spatialvla_ros.sim.panda_env import PANDA_URDF
from spatialvla_ros.sim.panda_env import TCP_LINK
from spatialvla_ros.sim.panda_env import TRAY_FLOOR
from spatialvla_ros.sim.panda_env import UPPER_LIMITS
from spatialvla_ros.sim.tasks import DIRECTIONS
from spatialvla_ros.sim.tasks import PUSH_DISTANCE

OPEN, CLOSED = 0.04, 0.0          # finger command [m]
SAFE_Z = 0.14                     # travel height of the grasp point [m]
FAST, SLOW = 0.3, 0.12            # Cartesian speeds [m/s]
YAW_WEIGHT = 0.08                 # metres of travel one radian of wrist yaw is worth [m/rad]


def _wrap(angle):
    return (angle + math.pi) % (2 * math.pi) - math.pi


def _grasp_yaw(env, name):
    """Gripper yaw for an object: a cube's faces repeat every 90 deg, choose the one nearest 0."""
    if env.specs[name].shape != 'cube':
        return 0.0
    yaw = env.object_yaw(name)
    return (yaw + math.pi / 4) % (math.pi / 2) - math.pi / 4


class PandaIK:
    """Inverse kinematics of the grasp point on a private kinematic copy of the Panda."""

    def __init__(self):
        self.client = p.connect(p.DIRECT)
        p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=self.client)
        self.robot = p.loadURDF(PANDA_URDF, useFixedBase=True,
                                physicsClientId=self.client)
        lo, hi = list(LOWER_LIMITS[:7]) + [0.0, 0.0], list(UPPER_LIMITS[:7]) + [0.04, 0.04]
        self._null = {'lowerLimits': lo, 'upperLimits': hi,
                      'jointRanges': [h - low for low, h in zip(lo, hi)],
                      'restPoses': list(HOME[:7]) + [0.04, 0.04]}

    def _set(self, q7):
        for j, q in enumerate(q7):
            p.resetJointState(self.robot, j, q, physicsClientId=self.client)

    def forward(self, q7):
        self._set(q7)
        state = p.getLinkState(self.robot, TCP_LINK, computeForwardKinematics=True,
                               physicsClientId=self.client)
        return np.array(state[4]), np.array(state[5])

    def solve(self, pos, yaw, seed, iterations=4, tolerance=5e-4):
        """Joint angles (7,) putting the grasp point at `pos`, pointing down, rotated by `yaw`."""
        quat = p.getQuaternionFromEuler([math.pi, 0.0, yaw])
        q = np.asarray(seed, dtype=np.float64)[:7]
        for _ in range(iterations):
            self._set(q)
            sol = p.calculateInverseKinematics(self.robot, TCP_LINK, list(pos), quat,
                                               maxNumIterations=60, residualThreshold=1e-5,
                                               physicsClientId=self.client, **self._null)
            q = np.clip(np.array(sol[:7]), LOWER_LIMITS[:7], UPPER_LIMITS[:7])
            if np.linalg.norm(self.forward(q)[0] - pos) < tolerance:
                break
        return q

    def close(self):
        if self.client is not None:
            p.disconnect(physicsClientId=self.client)
            self.client = None


@dataclass
class _Step:
    goal: Callable                # env -> (xyz (3,), yaw): evaluated when the step starts
    gripper: float                # finger command during the step [m]
    speed: float = FAST           # [m/s]
    hold: float = 0.0             # wait at the goal afterwards [s]
    check: Callable = None        # env -> bool, evaluated at the end; False -> retry
    retry_to: int = 0


def _at(name, dz, yaw=True):
    def goal(env):
        pos = env.object_pose(name)[0]
        return pos + np.array([0.0, 0.0, dz]), _grasp_yaw(env, name) if yaw else 0.0
    return goal


def _stay(dz=0.0, z=None):
    """Goal relative to the previous target (set at run time through `_Expert._last`)."""
    def goal(env, last):
        pos = np.array(last[0], dtype=np.float64)
        pos[2] = z if z is not None else pos[2] + dz
        return pos, last[1]
    goal.relative = True
    return goal


def plan_task(task):
    """Build the expert's waypoints for one task instance."""
    name = task.target
    if task.name == 'reach':
        return [_Step(_at(name, SAFE_Z - OBJECT_HALF), OPEN),
                _Step(_at(name, 0.02), OPEN, SLOW, hold=0.5)]
    if task.name == 'push':
        d = np.array(list(DIRECTIONS[task.direction]) + [0.0])
        start = {}

        def behind(z):
            def goal(env):
                start.setdefault('pos', env.object_pose(name)[0])
                pos = start['pos'] - 0.09 * d
                pos[2] = z
                return pos, 0.0
            return goal

        def through(env):
            pos = start['pos'] + (PUSH_DISTANCE - 0.035) * d
            pos[2] = 0.025
            return pos, 0.0
        return [_Step(behind(SAFE_Z), CLOSED), _Step(behind(0.025), CLOSED, SLOW),
                _Step(through, CLOSED, 0.1), _Step(_stay(z=SAFE_Z), CLOSED, SLOW)]

    def lifted(env):
        return env.object_pose(name)[0][2] > 0.06

    if task.destination == 'tray':
        def place(z):
            def goal(env):
                xy = env.tray_xy()
                return np.array([xy[0], xy[1], z]), _grasp_yaw(env, name)
            return goal
        release = TRAY_FLOOR + OBJECT_HALF + 0.015
    else:
        def place(z):
            def goal(env):
                pos = env.object_pose(task.destination)[0]
                return np.array([pos[0], pos[1], z]), _grasp_yaw(env, task.destination)
            return goal
        release = 3 * OBJECT_HALF + 0.008
    return [_Step(_at(name, SAFE_Z - OBJECT_HALF), OPEN),
            _Step(_at(name, 0.0), OPEN, SLOW),
            _Step(_stay(), CLOSED, hold=0.5),
            _Step(_stay(z=SAFE_Z), CLOSED, SLOW, check=lifted, retry_to=0),
            _Step(place(SAFE_Z), CLOSED),
            _Step(place(release), CLOSED, SLOW),
            _Step(_stay(), OPEN, hold=0.4),
            _Step(_stay(z=SAFE_Z), OPEN, FAST)]


class ScriptedExpert:
    """Closed-loop waypoint follower: `act()` gives the 8-dim joint target for t + dt."""

    def __init__(self, task, env, dt=0.1, ik=None, max_retries=2):
        self.env = env
        self.dt_ns = int(round(dt * 1e9))
        self.plan = plan_task(task)
        self.ik = ik if ik is not None else PandaIK()
        self._own_ik = ik is None
        self._retries = max_retries
        self._index = -1
        self._q = np.asarray(env.measured_action_state()[:7])
        pos, quat = env.tcp_pose()
        self._last = (pos, p.getEulerFromQuaternion(quat)[2])   # last Cartesian target
        self._seg = None
        self.done = False

    def _start(self, index, t_ns):
        self._index = index
        if index >= len(self.plan):
            self.done = True
            return
        step = self.plan[index]
        start = self._last
        if getattr(step.goal, 'relative', False):
            goal = step.goal(self.env, start)
        else:
            goal = step.goal(self.env)
        dist = np.linalg.norm(goal[0] - start[0]) + YAW_WEIGHT * abs(_wrap(goal[1] - start[1]))
        duration = max(dist / step.speed, 0.3)
        self._seg = {'t0': t_ns, 'start': start, 'goal': goal, 'duration': duration,
                     'end': duration + step.hold}

    def act(self):
        """Joint target (8,) for env.time_ns + dt, in ACTION_NAMES order."""
        t_cmd = self.env.time_ns + self.dt_ns
        if self._index < 0:
            self._start(0, self.env.time_ns)
        while not self.done and (t_cmd - self._seg['t0']) / 1e9 > self._seg['end']:
            step = self.plan[self._index]
            self._last = self._seg['goal']
            nxt = self._index + 1
            if step.check is not None and not step.check(self.env) and self._retries > 0:
                self._retries -= 1
                nxt = step.retry_to
            self._start(nxt, self.env.time_ns)
        if self.done:
            pos, yaw = self._last
            gripper = self.plan[-1].gripper
        else:
            seg = self._seg
            s = min(max((t_cmd - seg['t0']) / 1e9 / seg['duration'], 0.0), 1.0)
            s = s * s * (3.0 - 2.0 * s)                       # smooth start and stop
            (p0, y0), (p1, y1) = seg['start'], seg['goal']
            pos, yaw = p0 + s * (p1 - p0), y0 + s * _wrap(y1 - y0)
            gripper = self.plan[self._index].gripper
        self._q = self.ik.solve(pos, yaw, self._q)
        return np.concatenate([self._q, [gripper]])

    def close(self):
        if self._own_ik:
            self.ik.close()

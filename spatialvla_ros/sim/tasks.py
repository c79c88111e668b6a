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

"""Language-conditioned tasks on the Panda workcell and their success checks.

Tasks (instructions are exactly these templates):
- reach:      "reach the <colour> <shape>": the gripper's grasp point comes within
              REACH_RADIUS of the object's centre without moving it more than 3 cm.
- push:       "push the <colour> <shape> <left|right|forward|backward>": the object moves at
              least PUSH_MIN_DISTANCE along the direction, at most PUSH_MAX_LATERAL sideways, and
              stays on the table. Directions are in the robot base frame (panda_link0, REP 103):
              forward = +x (away from the robot base), backward = -x, left = +y, right = -y.
- pick_place: "put the <colour> <shape> in the tray" or "put the <colour> cube on the
              <colour> cube": the object rests inside the tray (or centred on top of the other
              cube), released (no contact with the robot) and nearly still.
"""

from dataclasses import dataclass
import math

import numpy as np
import pybullet as p

from spatialvla_ros.sim.constants import TASKS
from spatialvla_ros.sim.panda_env import OBJECT_HALF
from spatialvla_ros.sim.panda_env import sample_layout
from spatialvla_ros.sim.panda_env import TRAY_FLOOR
from spatialvla_ros.sim.panda_env import TRAY_INNER_HALF
from spatialvla_ros.sim.panda_env import TRAY_WALL

DIRECTIONS = {'forward': (1.0, 0.0), 'backward': (-1.0, 0.0),
              'left': (0.0, 1.0), 'right': (0.0, -1.0)}
MAX_STEPS = {'reach': 60, 'push': 120, 'pick_place': 200}   # control ticks (10 Hz)
REACH_RADIUS = 0.05          # [m]
PUSH_DISTANCE = 0.15         # how far the expert pushes [m]
PUSH_MIN_DISTANCE = 0.10     # success threshold along the direction [m]
PUSH_MAX_LATERAL = 0.04      # [m]
PUSH_X = (0.28, 0.76)        # where a pushed object may end up [m]
PUSH_Y = (-0.34, 0.34)


@dataclass(frozen=True)
class Task:
    name: str                 # one of TASKS
    instruction: str
    target: str               # object name, e.g. 'red cube'
    direction: str = ''       # push only: key of DIRECTIONS
    destination: str = ''     # pick_place only: 'tray' or another object's name
    max_steps: int = 100      # episode length limit [control ticks]


def _push_ok(layout, spec, direction):
    """Check that the push path (fingers to final object position) is free and reachable."""
    d = np.array(DIRECTIONS[direction])
    start = np.array(spec.xy)
    end = start + PUSH_DISTANCE * d
    if not (PUSH_X[0] <= end[0] <= PUSH_X[1] and PUSH_Y[0] <= end[1] <= PUSH_Y[1]):
        return False
    behind = start - 0.09 * d                   # where the fingers go down
    samples = [behind + s * (end + 0.03 * d - behind) for s in np.linspace(0, 1, 15)]
    half = TRAY_INNER_HALF + TRAY_WALL[0]
    for pt in samples:
        gap = np.maximum(np.abs(pt - np.array(layout.tray_xy)) - half, 0.0)
        if np.linalg.norm(gap) < OBJECT_HALF + 0.03:
            return False
        for other in layout.objects:
            if other is not spec and math.dist(pt, other.xy) < 2 * OBJECT_HALF + 0.03:
                return False
    return True


def reach_task(target):
    """Return the reach task for the object named `target` (e.g. 'red cube')."""
    return Task('reach', f'reach the {target}', target, max_steps=MAX_STEPS['reach'])


def sample_task(name, layout, rng):
    """Pick a task instance of kind `name` for `layout` (deterministic for a given rng)."""
    if name not in TASKS:
        raise ValueError(f'task: got {name!r}, expected one of {TASKS}')
    specs = list(layout.objects)
    if name == 'reach':
        return reach_task(specs[int(rng.integers(len(specs)))].name)
    if name == 'push':
        options = [(s, d) for s in specs for d in DIRECTIONS if _push_ok(layout, s, d)]
        if not options:
            return None                          # caller re-samples the layout
        spec, direction = options[int(rng.integers(len(options)))]
        return Task(name, f'push the {spec.name} {direction}', spec.name, direction=direction,
                    max_steps=MAX_STEPS[name])
    spec = specs[int(rng.integers(len(specs)))]
    cubes = [s for s in specs if s.shape == 'cube' and s is not spec]
    if spec.shape == 'cube' and cubes and rng.uniform() < 0.5:
        base = cubes[int(rng.integers(len(cubes)))]
        return Task(name, f'put the {spec.name} on the {base.name}', spec.name,
                    destination=base.name, max_steps=MAX_STEPS[name])
    return Task(name, f'put the {spec.name} in the tray', spec.name, destination='tray',
                max_steps=MAX_STEPS[name])


def sample_episode(name, seed):
    """(layout, task) of episode `seed`: the same seed always gives the same episode."""
    rng = np.random.default_rng(seed)
    for _ in range(100):
        layout = sample_layout(rng)
        task = sample_task(name, layout, rng)
        if task is not None:
            return layout, task
    raise RuntimeError(f'sample_episode: no feasible {name} episode for seed {seed}')


def goal_point(task, env):
    """Base-frame point (3,) [m] where the task wants the named object to end up.

    reach: the object itself; push: the object moved PUSH_DISTANCE along the direction;
    pick_place: the object's centre resting in the tray or on the other cube. Pre-training
    the VLM to point at it (training.grounding) grounds the direction and destination words.
    """
    pos = np.asarray(env.object_pose(task.target)[0], dtype=np.float64)
    if task.name == 'push':
        return pos + PUSH_DISTANCE * np.array([*DIRECTIONS[task.direction], 0.0])
    if task.name == 'pick_place' and task.destination == 'tray':
        return np.array([*env.tray_xy(), TRAY_FLOOR + OBJECT_HALF])
    if task.name == 'pick_place':
        return np.asarray(env.object_pose(task.destination)[0]) + [0.0, 0.0, 2 * OBJECT_HALF]
    return pos


class SuccessChecker:
    """Evaluates a task's success condition on the live simulation."""

    def __init__(self, task, env):
        self.task = task
        self.env = env
        self.start = {n: env.object_pose(n)[0] for n in env.objects}

    def _speed(self, name):
        lin, _ = p.getBaseVelocity(self.env.objects[name], physicsClientId=self.env.client)
        return float(np.linalg.norm(lin))

    def __call__(self):
        task, env = self.task, self.env
        pos = env.object_pose(task.target)[0]
        if task.name == 'reach':
            moved = np.linalg.norm(pos - self.start[task.target])
            return bool(np.linalg.norm(env.tcp_pose()[0] - pos) < REACH_RADIUS and moved < 0.03)
        if task.name == 'push':
            d = np.array(DIRECTIONS[task.direction])
            delta = (pos - self.start[task.target])[:2]
            along, lateral = float(delta @ d), abs(float(delta @ np.array([-d[1], d[0]])))
            return bool(along >= PUSH_MIN_DISTANCE and lateral <= PUSH_MAX_LATERAL
                        and pos[2] < OBJECT_HALF + 0.01)
        if env.touching(task.target) or self._speed(task.target) > 0.05:
            return False
        if task.destination == 'tray':
            rel = np.abs(pos[:2] - env.tray_xy())
            return bool(np.all(rel < TRAY_INNER_HALF - 0.01)
                        and pos[2] < TRAY_FLOOR + 2 * OBJECT_HALF + 0.005)
        base = env.object_pose(task.destination)[0]
        rel = pos - base
        return bool(np.linalg.norm(rel[:2]) < 0.6 * OBJECT_HALF
                    and abs(rel[2] - 2 * OBJECT_HALF) < 0.01)

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

"""One episode of the simulator, as both the live node and the offline generator run it.

A control tick at time t (every 1 / rate_hz seconds of simulated time):
  1. `observe()`: camera images, camera info, cloud and joint state, all stamped t;
  2. the command for the tick: the expert's trajectory (first point = target at t + dt) or
     whatever arrived on the command topic, replacing the rest of the previous trajectory;
  3. `advance()`: physics to t + dt under interpolated position control, then the success
     check. The episode ends at the first success or after the task's max_steps ticks, and its
     outcome is stamped with the time it ended.

`run_episode` is the one expert episode loop: the demo generator (`tools.generate_demos`, also
used by the default-checkpoint recipe) records it, the expert benchmark counts it.
"""

import numpy as np

from spatialvla_ros.core_types import NS_PER_S
from spatialvla_ros.sim import messages as sim_msgs
from spatialvla_ros.sim.expert import ScriptedExpert
from spatialvla_ros.sim.panda_env import ACTION_NAMES
from spatialvla_ros.sim.panda_env import STATE_NAMES
from spatialvla_ros.sim.tasks import reach_task
from spatialvla_ros.sim.tasks import sample_episode
from spatialvla_ros.sim.tasks import SuccessChecker

# Stamp of every recorded episode's first tick (fixed: reproducible).
T0_NS = 1_700_000_000 * NS_PER_S


class SimEpisode:
    """Drives a `PandaEnv` through one seeded task episode and builds its messages."""

    def __init__(self, env, task_name, seed, t0_ns, rate_hz=10.0, topics=None, expert=False,
                 ik=None, max_steps=0):
        if t0_ns <= 0:
            raise ValueError(f't0_ns: got {t0_ns}, expected > 0 (stamp 0 means "now" in ROS)')
        self.env = env
        self.topics = topics or sim_msgs.SimTopics()
        self.seed = int(seed)
        self.layout, self.task = sample_episode(task_name, self.seed)
        self.max_steps = int(max_steps) if max_steps > 0 else self.task.max_steps
        self.dt = 1.0 / float(rate_hz)
        self.dt_ns = int(round(self.dt * NS_PER_S))
        self.substeps = env.substeps(self.dt)
        env.reset(self.layout, t0_ns)
        self.checker = SuccessChecker(self.task, env)
        self.ik = ik
        self._max_steps = int(max_steps)
        self.expert = ScriptedExpert(self.task, env, self.dt, ik=ik) if expert else None
        self.steps = 0
        self.success = False
        self.done = False

    # --- messages ----------------------------------------------------------------------------
    def start_messages(self):
        """Latched messages of the episode: the instruction and each camera's pose."""
        out = [sim_msgs.string_message(self.topics.instruction, self.task.instruction,
                                       sim_msgs.LATCHED)]
        for topics, camera in self._cameras():
            out.append(sim_msgs.camera_pose_message(topics, self.env.time_ns, camera.spec))
        return out

    def _cameras(self):
        """(topics, Camera) of every camera of the env: the main one, then the side one."""
        out = []
        if self.env.camera is not None:
            out.append((self.topics, self.env.camera))
        if self.env.side_camera is not None:
            out.append((self.topics.side_view(), self.env.side_camera))
        return out

    def observe(self, camera=True):
        """Messages of the current tick (camera ones only with camera=True), one stamp."""
        stamp = self.env.time_ns
        out = []
        for topics, cam in self._cameras() if camera else ():
            rgb, depth, _ = cam.render()
            out += sim_msgs.camera_messages(topics, stamp, rgb, depth, cam.intrinsics())
        pos, vel, eff = self.env.joint_state()
        out.append(sim_msgs.joint_state_message(self.topics, stamp, STATE_NAMES, pos, vel, eff))
        return out

    def outcome_message(self, error=''):
        return sim_msgs.outcome_message(self.topics, self.task, self.seed, self.success,
                                        self.steps, error)

    # --- commands ----------------------------------------------------------------------------
    def expert_command(self):
        """Return the expert's trajectory for this tick (already applied to the robot)."""
        target = self.expert.act()
        stamp = self.env.time_ns
        self.env.executor.set_trajectory(ACTION_NAMES, stamp, [self.dt_ns], target[None], stamp)
        return sim_msgs.trajectory_message(self.topics.expert, stamp, ACTION_NAMES, target[None],
                                           [self.dt_ns])

    def apply_trajectory(self, joint_names, stamp_ns, offsets_ns, positions):
        """Execute an incoming JointTrajectory; stamp 0 means "now". Returns dropped points.

        panda_finger_joint2 mirrors panda_finger_joint1 and is ignored when both are given.
        """
        names = list(joint_names)
        positions = np.asarray(positions, dtype=np.float64).reshape(len(offsets_ns), len(names))
        if 'panda_finger_joint2' in names:
            col = names.index('panda_finger_joint2')
            if 'panda_finger_joint1' not in names:
                names[col] = 'panda_finger_joint1'
            else:
                names.pop(col)
                positions = np.delete(positions, col, axis=1)
        now = self.env.time_ns
        start = now if stamp_ns == 0 else int(stamp_ns)
        return self.env.executor.set_trajectory(names, start, offsets_ns, positions, now)

    def reach_object(self, target, detour=0.0, detour_ticks=(3, 12)):
        """Make this a reach of object number `target` of the scene, driven by the expert.

        The scene (layout) stays the seed's; the target is chosen by the caller, so one scene
        can be demonstrated with every object as the target: the same image with different
        instructions and motions is what teaches a policy to read the instruction. With
        probability `detour` (drawn from the seed and target), the arm first heads for another
        object for a few ticks that are not part of the episode: from HOME, frames after the
        first give the target away through where the arm is heading; after a detour only the
        instruction tells where to go (and the policy sees how to recover).
        """
        objects = self.layout.objects
        rng = np.random.default_rng([self.seed, target, 20260])
        if rng.uniform() < detour:
            other = objects[(target + 1 + int(rng.integers(len(objects) - 1))) % len(objects)]
            self.expert = ScriptedExpert(reach_task(other.name), self.env, self.dt, ik=self.ik)
            for _ in range(int(rng.integers(detour_ticks[0], detour_ticks[1] + 1))):
                self.expert_command()           # applied to the robot, not recorded
                self.env.step(self.substeps)
            self.expert.close()
        self.task = reach_task(objects[target % len(objects)].name)
        self.max_steps = self._max_steps if self._max_steps > 0 else self.task.max_steps
        self.checker = SuccessChecker(self.task, self.env)
        self.expert = ScriptedExpert(self.task, self.env, self.dt, ik=self.ik)

    # --- time --------------------------------------------------------------------------------
    def advance(self):
        """Physics for one control period, then the success check; True when the episode ends."""
        self.env.step(self.substeps)
        self.steps += 1
        if not self.done:
            self.success = self.checker()
            self.done = self.success or self.steps >= self.max_steps
            return self.done
        return False

    def close(self):
        if self.expert is not None:
            self.expert.close()


def run_episode(env, task_name, seed, t0_ns=T0_NS, rate_hz=10.0, topics=None, ik=None,
                sink=None, camera=True, max_steps=0, target=None, detour=0.0, settle_ticks=0):
    """Run one expert episode; `sink(log_time_ns, messages)` receives each tick's messages.

    Returns (task, success, steps). Without a sink (benchmarks) nothing is rendered. With
    `target` (reach only) the expert reaches object number `target` of the seed's scene,
    after a detour with probability `detour` (`SimEpisode.reach_object`). A successful episode
    goes on for `settle_ticks` more ticks: the success check fires while the arm is still
    descending, and without what follows a policy never sees how the reach ends (it learns to
    hover).
    """
    if target is not None and task_name != 'reach':
        raise ValueError(f'target: only a reach has an object number as its target, got task '
                         f'{task_name!r}')
    episode = SimEpisode(env, task_name, seed, t0_ns, rate_hz, topics, expert=target is None,
                         ik=ik, max_steps=max_steps)
    render = camera and sink is not None
    try:
        if target is not None:
            episode.reach_object(target, detour)
        if sink is not None:
            sink(env.time_ns, episode.start_messages())
        settled = 0
        while True:
            tick = episode.observe(render) if sink is not None else []
            command = episode.expert_command()
            if sink is not None:
                sink(env.time_ns, tick + [command])
            episode.advance()
            if episode.done and (not episode.success or settled >= settle_ticks):
                break
            settled += 1 if episode.done else 0
        if sink is not None:
            sink(env.time_ns, [episode.outcome_message()])
        return episode.task, episode.success, episode.steps
    finally:
        episode.close()

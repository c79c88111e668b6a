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

"""Tasks, success checks and the scripted expert, on a reduced seeded set.

The full 100-episode success figure is printed by bench/expert_success.py.
"""

import re

import numpy as np
import pytest

from spatialvla_ros.sim.constants import TASKS
from spatialvla_ros.sim.expert import PandaIK
from spatialvla_ros.sim.panda_env import ACTION_NAMES
from spatialvla_ros.sim.panda_env import HOME
from spatialvla_ros.sim.panda_env import PandaEnv
from spatialvla_ros.sim.rollout import run_episode
from spatialvla_ros.sim.rollout import SimEpisode
from spatialvla_ros.sim.tasks import DIRECTIONS
from spatialvla_ros.sim.tasks import sample_episode
from spatialvla_ros.sim.tasks import Task

T0 = 1_700_000_000 * 10**9
EPISODES = 5                   # per task in CI


@pytest.fixture(scope='module')
def sim():
    env, ik = PandaEnv(None), PandaIK()
    yield env, ik
    ik.close()
    env.close()


@pytest.mark.parametrize('task_name', TASKS)
def test_expert_solves_reduced_seeded_set(sim, task_name):
    env, ik = sim
    results = [run_episode(env, task_name, seed, T0, ik=ik)[1:] for seed in range(EPISODES)]
    successes = sum(ok for ok, _ in results)
    # >= 95 % on 5 episodes means all of them.
    assert successes >= int(np.ceil(0.95 * EPISODES)), f'{task_name}: {results}'


def _final_positions(env, task_name, seed):
    final = {}

    def sink(stamp, messages):
        for name in env.objects:
            final[name] = env.object_pose(name)[0]
    task, success, steps = run_episode(env, task_name, seed, T0, sink=sink, camera=False)
    return task, success, steps, final


def test_push_directions_are_in_the_base_frame(sim):
    env, _ = sim
    seen = set()
    for seed in range(40):
        layout, task = sample_episode('push', seed)
        if task.direction in seen:
            continue
        seen.add(task.direction)
        start = np.array(next(o.xy for o in layout.objects if o.name == task.target))
        task, success, _, final = _final_positions(env, 'push', seed)
        moved = final[task.target][:2] - start
        # REP 103 base frame: x forward (away from the robot), y to the robot's left.
        expected = {'forward': (0, 1), 'backward': (0, -1), 'left': (1, 1), 'right': (1, -1)}
        axis, sign = expected[task.direction]
        assert success and sign * moved[axis] > 0.08, (task.instruction, moved)
        if len(seen) == 4:
            break
    assert seen == set(DIRECTIONS)


def test_success_checks_fail_when_nothing_or_the_wrong_thing_happens(sim):
    env, _ = sim
    for name in TASKS:
        episode = SimEpisode(env, name, 1, T0, max_steps=15)
        while not episode.advance():          # the arm holds HOME: nothing is achieved
            pass
        assert not episode.success and episode.steps == 15, name
    # Pushing the right object the opposite way must not count.
    layout, task = sample_episode('push', 2)
    opposite = {'left': 'right', 'right': 'left', 'forward': 'backward',
                'backward': 'forward'}[task.direction]
    wrong = Task('push', task.instruction, task.target, direction=opposite, max_steps=80)
    episode = SimEpisode(env, 'push', 2, T0, expert=True)
    episode.checker.task = wrong
    while not episode.advance():
        episode.expert_command()
    assert not episode.success
    episode.close()


def test_episodes_are_seeded_and_instructions_follow_the_templates():
    patterns = {
        'reach': r'^reach the (red|green|blue|yellow) (cube|sphere)$',
        'push': r'^push the (red|green|blue|yellow) (cube|sphere) (left|right|forward|backward)$',
        'pick_place': r'^put the (red|green|blue|yellow) (cube|sphere) '
                      r'(in the tray|on the (red|green|blue|yellow) cube)$',
    }
    for name in TASKS:
        instructions = set()
        for seed in range(12):
            layout, task = sample_episode(name, seed)
            assert sample_episode(name, seed) == (layout, task)
            assert re.match(patterns[name], task.instruction), task.instruction
            instructions.add(task.instruction)
            xy = np.array([o.xy for o in layout.objects])
            gaps = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(len(xy))
            assert gaps.min() >= 0.1
        assert len(instructions) > 4, f'{name}: seeds do not vary the episode'
    with pytest.raises(ValueError, match='task'):
        sample_episode('fly', 0)


def test_same_seed_same_episode_whatever_ran_before(sim):
    env, ik = sim
    commands = []
    for warmup in ([], [('push', 0), ('reach', 1)]):
        for task_name, seed in warmup:
            run_episode(env, task_name, seed, T0, ik=ik)
        out = []
        run_episode(env, 'pick_place', 3, T0, ik=ik, camera=False,
                    sink=lambda stamp, msgs: out.extend(
                        np.asarray(m.msg.points[0].positions) for m in msgs
                        if m.msgtype.endswith('JointTrajectory')))
        commands.append(np.array(out))
    assert commands[0].shape == commands[1].shape
    np.testing.assert_array_equal(commands[0], commands[1])


def test_expert_commands_are_reachable_joint_targets(sim):
    env, ik = sim
    episode = SimEpisode(env, 'pick_place', 5, T0, expert=True, ik=ik)
    targets = []
    while True:
        targets.append(np.asarray(episode.expert_command().msg.points[0].positions))
        if episode.advance():
            break
    targets = np.array(targets)
    assert episode.success and targets.shape[1] == len(ACTION_NAMES) == 8
    assert np.all(targets[:, 7] >= 0.0) and np.all(targets[:, 7] <= 0.04)
    # 10 Hz commands of a smooth plan: no jump larger than the Panda's joint speed allows.
    assert np.abs(np.diff(targets[:, :7], axis=0)).max() < 2.175 * 0.1
    assert np.abs(targets[0, :7] - np.array(HOME[:7])).max() < 0.1

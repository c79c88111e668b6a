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

"""The default-checkpoint recipe runs end to end; the shipped weights do what recipe.json says.

The shipped checkpoint is evaluated here, in closed loop (simulator node and policy node over
DDS, the recipe's camera and chunk execution), on held-out seeds that its stated evaluation
did not use: the weights, not the numbers written beside them, must be consistent with the
stated success of every task.
"""

import argparse
import copy
import json
import os

from repo_paths import REPO_ROOT
from spatialvla_ros.evaluation.closed_loop import ClosedLoopOptions
from spatialvla_ros.evaluation.closed_loop import HELD_OUT_SEED_START
from spatialvla_ros.evaluation.closed_loop import recipe_camera
from spatialvla_ros.evaluation.closed_loop import summarize
from spatialvla_ros.evaluation.in_process import run as run_in_process
from spatialvla_ros.policies.policy_spatialvla import SpatialVLAPolicy
from spatialvla_ros.tools import make_default_checkpoint as recipe_tool
from spatialvla_ros.tools.closed_loop import run_closed_loop

REPO = REPO_ROOT
SHIPPED = os.path.join(REPO, 'checkpoints', 'default')
FRESH_SEEDS = 5          # held-out episodes per task evaluated here over DDS
IN_PROCESS_SEEDS = 20    # and in one process (about a second per episode)


def test_recipe_runs_end_to_end_on_a_tiny_budget(tmp_path):
    recipe = copy.deepcopy(recipe_tool.RECIPE)
    recipe.update(scenes=2, episodes={'push': 1, 'pick_place': 1}, grounding_steps=3,
                  grounding_val_scenes=3, grounding_goal=True)
    recipe['config']['train'].update(steps=3, warmup_steps=1, checkpoint_every=3,
                                     batch_size=4, val_fraction=0.25)
    work = tmp_path / 'work'
    ns = argparse.Namespace(plan='', scenes=0, steps=0, threads=1, workers=1, eval_episodes=0,
                            work_dir=str(work), out=str(tmp_path / 'ckpt'))
    out = recipe_tool.make(ns, recipe, progress=False)
    info = json.load(open(os.path.join(out, 'recipe.json'), encoding='utf-8'))
    assert info['recipe'] == json.loads(json.dumps(recipe))
    assert info['grounding']['steps'] == 3 and info['train']['steps'] == 3
    assert info['grounding']['val_goal_median_error_m'] >= 0     # a goal point was regressed
    assert os.path.isdir(work / 'grounded')
    # Demonstrations: reach, one per object of each scene, and the seeded push and pick_place
    # episodes (failed expert episodes are not kept).
    demos, rows = recipe_tool.record_demonstrations(recipe, str(work), workers=1,
                                                    progress=False)
    bags = {b for b in os.listdir(demos) if b != 'summary.json'}
    expected = {f'reach_{s:06d}_{t}' for s in range(2) for t in range(4)}
    assert bags and bags <= expected | {'push_000000', 'pick_place_000000'}
    assert {'push_000000', 'pick_place_000000'} <= bags
    assert {r['bag'] for r in rows if r['kept']} == bags
    # The second call recorded nothing: the demonstrations are cached by their settings ...
    stamps = {b: os.stat(os.path.join(demos, b)).st_mtime_ns for b in bags}
    recipe['config']['train']['steps'] = 5          # a change of training only
    assert recipe_tool.record_demonstrations(recipe, str(work), 1, False)[0] == demos
    assert stamps == {b: os.stat(os.path.join(demos, b)).st_mtime_ns for b in bags}
    # ... and a change of how they are recorded goes to another folder.
    recipe['settle_ticks'] += 1
    other = recipe_tool.record_demonstrations(dict(recipe, tasks=['reach'], scenes=0),
                                              str(work), 1, False)[0]
    assert other != demos
    policy = SpatialVLAPolicy.from_pretrained(out)
    assert policy.config.plan == recipe['plan']
    # The policy was fine-tuned from the grounded VLM, so it kept the grounding tokenizer.
    grounded = SpatialVLAPolicy.from_pretrained(str(work / 'grounded'))
    text = 'reach the yellow sphere'
    ids = policy.processor.tokenizer(text)['input_ids']
    assert ids == grounded.processor.tokenizer(text)['input_ids']
    assert policy.processor.tokenizer.unk_token_id not in ids


def test_shipped_checkpoint_reaches_its_stated_success_on_fresh_held_out_seeds(tmp_path, ros_env):
    """Per task: the fresh seeds' 95% interval must reach the stated evaluation's interval."""
    info = json.load(open(os.path.join(SHIPPED, 'recipe.json'), encoding='utf-8'))
    assert info['recipe'] == json.loads(json.dumps(recipe_tool.RECIPE)), (
        'checkpoints/default was made with another recipe: rerun '
        'python -m spatialvla_ros.tools.make_default_checkpoint')
    stated = info['closed_loop']
    assert set(stated) == set(info['recipe']['tasks'])
    # Seeds after the stated evaluation's: never demonstrated, never evaluated before.
    seed_start = max(max(row['seeds']) for row in stated.values()) + 1
    assert seed_start > HELD_OUT_SEED_START
    camera = recipe_camera(SHIPPED)
    options = ClosedLoopOptions(tasks=camera['tasks'], episodes=FRESH_SEEDS,
                                seed_start=seed_start, image_size=camera['image_size'],
                                fov_deg=camera['fov_deg'], execute_steps=camera['execute_steps'],
                                lockstep=True)
    dds = run_closed_loop(SHIPPED, options, str(tmp_path), env=ros_env)
    policy = SpatialVLAPolicy.from_pretrained(SHIPPED)
    seeds = range(seed_start, seed_start + IN_PROCESS_SEEDS)
    in_process = run_in_process(policy, options.tasks, seeds, options)
    for loop, results in (('DDS', dds), ('in-process', in_process)):
        for task, row in summarize(results, options.tasks).items():
            claimed_low = stated[task]['success_ci95'][0]
            assert row['success_ci95'][1] >= claimed_low, (
                f'{loop} {task}: {row["successes"]}/{row["episodes"]} successful on seeds '
                f'{row["seeds"]}, below the {100 * claimed_low:.0f}% lower bound of the stated '
                f'{stated[task]["successes"]}/{stated[task]["episodes"]}')

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

"""The default-checkpoint recipe: it runs end to end, and the shipped checkpoint is its output."""

import argparse
import copy
import json
import os

import numpy as np
from spatialvla_ros.tools import make_default_checkpoint as recipe_tool

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(REPO, 'checkpoints', 'default')


def test_recipe_runs_end_to_end_on_a_tiny_budget(tmp_path):
    from spatialvla_ros.policies.policy_spatialvla import SpatialVLAPolicy

    recipe = copy.deepcopy(recipe_tool.RECIPE)
    recipe.update(scenes=2, grounding_steps=3, grounding_val_scenes=1)
    recipe['config']['train'].update(steps=3, warmup_steps=1, checkpoint_every=3,
                                     batch_size=4, val_fraction=0.25)
    ns = argparse.Namespace(plan='', scenes=0, steps=0, threads=1, workers=1, eval_episodes=0,
                            work_dir=str(tmp_path / 'work'), out=str(tmp_path / 'ckpt'))
    out = recipe_tool.make(ns, recipe, progress=False)
    info = json.load(open(os.path.join(out, 'recipe.json'), encoding='utf-8'))
    assert info['recipe'] == json.loads(json.dumps(recipe))
    assert info['grounding']['steps'] == 3 and info['train']['steps'] == 3
    assert os.path.isdir(tmp_path / 'work' / 'grounded')
    # Demonstrations: one per object of each scene (failed expert episodes are not kept).
    bags = set(os.listdir(tmp_path / 'work' / 'demos'))
    assert bags and bags <= {f'reach_{s:06d}_{t}' for s in range(2) for t in range(4)}
    policy = SpatialVLAPolicy.from_pretrained(out)
    assert policy.config.plan == recipe['plan']
    # The policy was fine-tuned from the grounded VLM, so it kept the grounding tokenizer.
    grounded = SpatialVLAPolicy.from_pretrained(str(tmp_path / 'work' / 'grounded'))
    text = 'reach the yellow sphere'
    ids = policy.processor.tokenizer(text)['input_ids']
    assert ids == grounded.processor.tokenizer(text)['input_ids']
    assert policy.processor.tokenizer.unk_token_id not in ids


def test_shipped_checkpoint_is_what_the_recipe_makes():
    info = json.load(open(os.path.join(SHIPPED, 'recipe.json'), encoding='utf-8'))
    assert info['recipe'] == json.loads(json.dumps(recipe_tool.RECIPE)), (
        'checkpoints/default was made with another recipe: rerun '
        'python -m spatialvla_ros.tools.make_default_checkpoint')
    closed_loop = info['closed_loop']
    assert closed_loop['seeds'][0] >= 1_000_000      # held-out seeds, never demonstrated
    assert closed_loop['episodes'] >= 20 and closed_loop['success_rate'] >= 0.6
    assert np.isclose(closed_loop['success_rate'],
                      closed_loop['successes'] / closed_loop['episodes'])

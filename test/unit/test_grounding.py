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

"""3D grounding pre-training: it trains what the policy runs, learns, and spares the expert."""

import os

import numpy as np
import pytest
from repo_paths import REPO_ROOT
from spatialvla_ros.core_types import NormalizationStats
from spatialvla_ros.core_types import RawObservation
from spatialvla_ros.models.modeling_spatialvla import SpatialVLAModel
from spatialvla_ros.models.tokenizer import build_word_tokenizer
from spatialvla_ros.policies.configuration_policy import PolicyConfig
from spatialvla_ros.policies.processor_spatialvla import SpatialVLAProcessor
from spatialvla_ros.training.grounding import GroundingSample
from spatialvla_ros.training.grounding import instruction_hidden
from spatialvla_ros.training.grounding import pretrain_grounding
import torch

CONFIG_DIR = os.path.join(REPO_ROOT, 'config')
CENTRES = {'red': (0.45, 0.15, 0.03), 'blue': (0.6, -0.2, 0.03)}


def setup(plan, tmp_path):
    config = PolicyConfig.from_yaml(os.path.join(CONFIG_DIR, f'{plan}.yaml'))
    torch.manual_seed(0)
    model = SpatialVLAModel(config)
    words = ['reach', 'the', 'cube'] + list(CENTRES)
    tokenizer = build_word_tokenizer(words, str(tmp_path / 'tokenizer'))
    act = config.action
    stats = NormalizationStats.identity(act.state_dim, act.action_dim)
    return config, model, SpatialVLAProcessor(config, tokenizer, stats)


def samples(config, n, seed):
    """Random RGB-D scenes; the instruction names a colour whose centre is fixed."""
    rng = np.random.default_rng(seed)
    size = 32
    out = []
    for i in range(n):
        colour = list(CENTRES)[i % 2]
        points = rng.uniform([0.3, -0.3, 0.0], [0.7, 0.3, 0.1], (size, size, 3))
        obs = RawObservation(images=[rng.integers(0, 256, (size, size, 3), dtype=np.uint8)],
                             points=[points.astype(np.float32)],
                             state=np.zeros(config.action.state_dim, np.float32),
                             instruction=f'reach the {colour} cube')
        out.append(GroundingSample(obs, np.asarray(CENTRES[colour], np.float32)))
    return out


@pytest.mark.parametrize('plan', ['late_llama', 'late_gemma', 'deep_fusion'])
def test_grounding_trains_the_prefix_states_the_expert_reads(plan, tmp_path):
    """Late fusion: the VLM's output (the expert's context); deep fusion: last layer's input."""
    config, model, processor = setup(plan, tmp_path)
    obs = processor.observations_to_model([s.observation for s in samples(config, 3, 0)])
    seen = {}

    def keep_output(module, args, kwargs, out):
        seen.setdefault('hidden', out.last_hidden_state)   # returns None: output unchanged

    def keep_last_layer_input(module, args, kwargs):
        seen.setdefault('hidden', args[0] if args else kwargs['hidden_states'])

    if plan == 'deep_fusion':
        hook = model.vlm.layers[-1].register_forward_pre_hook(keep_last_layer_input,
                                                              with_kwargs=True)
    else:
        hook = model.vlm.register_forward_hook(keep_output, with_kwargs=True)
    try:
        model.eval()
        with torch.no_grad():
            model.sample_actions(obs, num_steps=1)
            ours = instruction_hidden(model, obs)
    finally:
        hook.remove()
    n = model.encoder3d.num_tokens
    torch.testing.assert_close(ours, seen['hidden'][:, n:], rtol=0, atol=1e-6)


def test_grounding_learns_and_leaves_the_expert_untouched(tmp_path):
    config, model, processor = setup('late_llama', tmp_path)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = pretrain_grounding(model, processor, samples(config, 32, 1),
                                samples(config, 8, 2), steps=60, batch_size=8,
                                learning_rate=3e-3, log=None)
    after = model.state_dict()
    # The two centres are 0.39 m apart: predicting their mean is ~0.19 m off.
    assert result.baseline_median_error_m == pytest.approx(0.195, abs=0.01)
    assert result.val_median_error_m < 0.25 * result.baseline_median_error_m, result
    for name, value in after.items():
        if not name.startswith(('vlm.', 'encoder3d.', 'backbone.vlm.')):
            assert torch.equal(before[name], value), f'{name} moved during grounding'
    assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith('vlm.'))


def test_grounding_rejects_empty_sets(tmp_path):
    config, model, processor = setup('late_llama', tmp_path)
    with pytest.raises(ValueError, match='train/val'):
        pretrain_grounding(model, processor, samples(config, 2, 0), [], steps=1, log=None)

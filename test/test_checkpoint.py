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

"""Checkpoint round trips, strict and named errors, and LLaVA-3D weight mapping."""

import json
import os

import numpy as np
import pytest
from safetensors.torch import load_file
from safetensors.torch import save_file
from spatialvla_ros.config import load_config
from spatialvla_ros.core_types import NormalizationStats
from spatialvla_ros.core_types import RawObservation
from spatialvla_ros.models.checkpoint import CheckpointError
from spatialvla_ros.models.checkpoint import load_checkpoint
from spatialvla_ros.models.checkpoint import load_llava3d_weights
from spatialvla_ros.models.checkpoint import save_checkpoint
from spatialvla_ros.models.modeling_spatialvla import ModelObservation
from spatialvla_ros.models.modeling_spatialvla import SpatialVLAModel
from spatialvla_ros.policies.policy_spatialvla import SpatialVLAPolicy
from spatialvla_ros.policies.processor_spatialvla import SpatialVLAProcessor
from spatialvla_ros.sim.vocabulary import build_demo_tokenizer
import torch
from torch import nn
import transformers

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'config')
LAYOUT = ['config.yaml', 'model.safetensors', 'normalization.safetensors', 'tokenizer']


def tiny(plan='late_llama', seed=0):
    cfg = load_config(os.path.join(CONFIG_DIR, f'{plan}.yaml'))
    torch.manual_seed(seed)
    return SpatialVLAModel(cfg).eval(), cfg


def observation(cfg, batch=2):
    g = torch.Generator().manual_seed(1)
    points = torch.rand(batch, 1, 64, 64, 3, generator=g) * 0.5 + 0.2
    points[:, :, :10] = float('nan')
    mask = torch.arange(cfg.language_model.max_text_tokens)[None] < torch.tensor([[9], [5]])
    return ModelObservation(
        images=torch.rand(batch, 1, 3, 64, 64, generator=g), points=points,
        state=torch.randn(batch, cfg.action.state_dim, generator=g),
        input_ids=torch.randint(3, 50, mask.shape, generator=g) * mask, attention_mask=mask)


def stats(cfg):
    rng = np.random.default_rng(0)
    return NormalizationStats.from_arrays(rng.normal(size=(64, cfg.action.state_dim)),
                                          rng.normal(size=(64, cfg.action.action_dim)))


@pytest.fixture(scope='module')
def tokenizer(tmp_path_factory):
    return build_demo_tokenizer(str(tmp_path_factory.mktemp('tok')))


@pytest.fixture
def saved(tmp_path, tokenizer):
    model, cfg = tiny()
    directory = save_checkpoint(tmp_path / 'ckpt', model, cfg, stats(cfg), tokenizer)
    return directory, model, cfg


@pytest.mark.parametrize('plan', ['late_gemma', 'late_llama', 'deep_fusion'])
def test_round_trip_gives_identical_actions(plan, tmp_path, tokenizer):
    model, cfg = tiny(plan)
    directory = tmp_path / 'ckpt'
    save_checkpoint(directory, model, cfg, stats(cfg), tokenizer)
    save_checkpoint(directory, model, cfg, stats(cfg), tokenizer)   # overwrite in place
    assert sorted(os.listdir(directory)) == LAYOUT
    assert os.listdir(tmp_path) == ['ckpt']                        # no temp dir left behind
    loaded, cfg2, stats2, tok2 = load_checkpoint(directory)
    assert cfg2 == cfg and not loaded.training
    np.testing.assert_array_equal(stats2.action_std, stats(cfg).action_std)
    assert tok2('pick the red cube')['input_ids'] == tokenizer('pick the red cube')['input_ids']
    obs = observation(cfg)
    expected = model.sample_actions(obs, generator=torch.Generator().manual_seed(3))
    got = loaded.sample_actions(obs, generator=torch.Generator().manual_seed(3))
    assert torch.equal(expected, got)
    half, *_ = load_checkpoint(directory, dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16


def test_policy_from_pretrained_matches_in_memory_policy(saved, tokenizer):
    directory, model, cfg = saved
    rng = np.random.default_rng(0)
    raw = RawObservation(images=[rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)],
                         points=[rng.uniform(0.2, 0.7, (64, 64, 3)).astype(np.float32)],
                         state=rng.normal(size=8).astype(np.float32),
                         instruction='push the green block left')
    reference = SpatialVLAPolicy(model, SpatialVLAProcessor(cfg, tokenizer, stats(cfg)))
    policy = SpatialVLAPolicy.from_pretrained(directory)
    np.testing.assert_array_equal(policy.predict_chunk(raw, seed=4),
                                  reference.predict_chunk(raw, seed=4))


def test_failed_save_keeps_the_old_checkpoint(saved):
    directory, model, cfg = saved
    with pytest.raises(TypeError, match='tokenizer'):
        save_checkpoint(directory, model, cfg, stats(cfg), tokenizer=object())
    assert sorted(os.listdir(directory)) == LAYOUT
    assert os.listdir(os.path.dirname(directory)) == ['ckpt']
    load_checkpoint(directory)


def _rewrite(directory, edit):
    path = os.path.join(directory, 'model.safetensors')
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path)
    return path


def test_missing_unexpected_and_misshaped_tensors_are_named(saved):
    directory, _, _ = saved
    original = load_file(os.path.join(directory, 'model.safetensors'))
    name = 'vlm.layers.1.mlp.down_proj.weight'
    path = _rewrite(directory, lambda t: t.pop(name))
    with pytest.raises(CheckpointError, match='missing tensors') as err:
        load_checkpoint(directory)
    assert name in str(err.value) and path in str(err.value)

    def extra(t):
        t.update(original)
        t['backbone.bogus.weight'] = torch.zeros(2)
    _rewrite(directory, extra)
    with pytest.raises(CheckpointError, match='unexpected tensors: backbone.bogus.weight'):
        load_checkpoint(directory)

    def misshape(t):
        t.pop('backbone.bogus.weight')
        t['action_head.proj.weight'] = torch.zeros(3, 3)
    _rewrite(directory, misshape)
    with pytest.raises(CheckpointError, match=r'mis-shaped.*action_head\.proj\.weight \(file '
                                              r'\(3, 3\)'):
        load_checkpoint(directory)


def test_corrupt_or_missing_files_are_named(saved):
    directory, _, _ = saved
    path = os.path.join(directory, 'model.safetensors')
    size = os.path.getsize(path)
    with open(path, 'r+b') as f:
        f.truncate(size // 2)
    with pytest.raises(CheckpointError, match='model.safetensors') as err:
        load_checkpoint(directory)
    assert path in str(err.value)
    with open(path, 'wb') as f:
        f.write(b'\xff' * 64)
    with pytest.raises(CheckpointError, match='model.safetensors'):
        load_checkpoint(directory)
    os.remove(os.path.join(directory, 'normalization.safetensors'))
    with pytest.raises(CheckpointError, match='normalization.safetensors'):
        load_checkpoint(directory)
    with pytest.raises(CheckpointError, match='not found'):
        load_checkpoint(os.path.join(directory, 'nope'))


def _llava3d_source(cfg, seed=7):
    """Tensors named like a LLaVA-3D checkpoint, from real transformers / torch modules."""
    torch.manual_seed(seed)
    lm, vis = cfg.language_model, cfg.vision
    llama = transformers.LlamaModel(transformers.LlamaConfig(
        vocab_size=lm.vocab_size, hidden_size=lm.hidden_size,
        intermediate_size=lm.intermediate_size, num_hidden_layers=lm.num_hidden_layers,
        num_attention_heads=lm.num_attention_heads, num_key_value_heads=lm.num_key_value_heads,
        head_dim=lm.head_dim, rms_norm_eps=lm.rms_norm_eps,
        max_position_embeddings=lm.max_position_embeddings)).eval()
    clip = transformers.CLIPVisionModel(transformers.CLIPVisionConfig(
        hidden_size=vis.hidden_size, intermediate_size=vis.intermediate_size,
        num_hidden_layers=vis.num_hidden_layers, num_attention_heads=vis.num_attention_heads,
        image_size=vis.image_size, patch_size=vis.patch_size))
    c, d = vis.hidden_size, lm.hidden_size
    # LLaVA-3D's PositionEmbeddingLearnedMLP head and mlp2x_gelu projector layouts
    pos_head = nn.Sequential(nn.Linear(3, c), nn.LayerNorm(c), nn.ReLU(), nn.Linear(c, c))
    projector = nn.Sequential(nn.Linear(c, d), nn.GELU(), nn.Linear(d, d))
    shard1 = {f'model.{k}': v for k, v in llama.state_dict().items()}
    shard2 = {f'model.vision_tower.vision_tower.{k}': v for k, v in clip.state_dict().items()}
    shard2.update({'model.video_tower.video_tower.positional_embedding.position_embedding_head.'
                   f'{k}': v for k, v in pos_head.state_dict().items()})
    shard2.update({f'model.mm_projector.{k}': v for k, v in projector.state_dict().items()})
    unused = {'lm_head.weight': torch.randn(lm.vocab_size, d),
              'model.video_tower.prompt_encoder.pos_emb3d.position_embedding_head.0.weight':
              torch.randn(d, 3)}
    shard2.update(unused)
    return llama, clip, (pos_head, projector), (shard1, shard2), sorted(unused)


def test_llava3d_weights_map_onto_encoder_and_vlm(tmp_path):
    model, cfg = tiny('deep_fusion')
    llama, clip, (pos_head, projector), shards, unused = _llava3d_source(cfg)
    weight_map = {}
    for i, shard in enumerate(shards):
        name = f'model-0000{i + 1}-of-00002.safetensors'
        save_file({k: v.contiguous() for k, v in shard.items()}, tmp_path / name)
        weight_map.update({k: name for k in shard})
    with open(tmp_path / 'model.safetensors.index.json', 'w') as f:
        json.dump({'metadata': {}, 'weight_map': weight_map}, f)
    report = load_llava3d_weights(model, tmp_path, strict=True)
    assert report['unmapped'] == unused and report['missing'] == []
    for ours, ref in ((model.vlm, llama), (model.encoder3d.vision_tower, clip),
                      (model.encoder3d.position_embedding.position_embedding_head, pos_head),
                      (model.encoder3d.mm_projector, projector)):
        ref_sd = ref.state_dict()
        for key, value in ours.state_dict().items():
            assert torch.equal(value, ref_sd[key]), key
    # the mapped VLM computes what the transformers reference computes
    ids = torch.randint(0, cfg.language_model.vocab_size, (1, 7))
    with torch.no_grad():
        torch.testing.assert_close(model.vlm(input_ids=ids).last_hidden_state,
                                   llama(input_ids=ids).last_hidden_state, rtol=0, atol=0)
    # one shard without an index; a wrong shape is named, not silently skipped
    single = tmp_path / 'single'
    single.mkdir()
    save_file({'model.norm.weight': torch.ones(cfg.language_model.hidden_size + 1)},
              single / 'model.safetensors')
    with pytest.raises(CheckpointError, match=r'model\.norm\.weight -> vlm\.norm\.weight'):
        load_llava3d_weights(model, single)
    # a checkpoint without the CLIP tower (LLaVA-3D loads it from its own folder): reported
    only_llm = tmp_path / 'only_llm'
    only_llm.mkdir()
    save_file({k: v.contiguous() for k, v in shards[0].items()}, only_llm / 'model.safetensors')
    report = load_llava3d_weights(model, only_llm)
    assert report['missing'] and all(n.startswith('encoder3d.') for n in report['missing'])
    assert len(report['loaded']) == len(shards[0])
    with pytest.raises(CheckpointError, match='missing tensors: encoder3d'):
        load_llava3d_weights(model, only_llm, strict=True)
    with pytest.raises(CheckpointError, match='not found'):
        load_llava3d_weights(model, tmp_path / 'missing_dir')

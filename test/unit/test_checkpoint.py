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

"""Checkpoint round trips, strict and named errors, pointer files, file modes, plan mismatch."""

import dataclasses
import os

import numpy as np
import pytest
from repo_paths import REPO_ROOT
from safetensors.torch import load_file
from safetensors.torch import save_file
from spatialvla_ros.core_types import NormalizationStats
from spatialvla_ros.core_types import RawObservation
from spatialvla_ros.models.checkpoint import CheckpointError
from spatialvla_ros.models.checkpoint import load_checkpoint
from spatialvla_ros.models.checkpoint import save_checkpoint
from spatialvla_ros.models.modeling_spatialvla import ModelObservation
from spatialvla_ros.models.modeling_spatialvla import SpatialVLAModel
from spatialvla_ros.policies.policy_spatialvla import SpatialVLAPolicy
from spatialvla_ros.policies.processor_spatialvla import SpatialVLAProcessor
from spatialvla_ros.sim.vocabulary import build_demo_tokenizer
from spatialvla_ros.training.configuration_training import TrainingConfig
import torch

CONFIG_DIR = os.path.join(REPO_ROOT, 'config')
LAYOUT = ['config.yaml', 'model.safetensors', 'normalization.safetensors', 'tokenizer']


def tiny(plan='late_llama', seed=0):
    cfg = TrainingConfig.from_yaml(os.path.join(CONFIG_DIR, f'{plan}.yaml'))
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
    loaded, cfg2, stats2, tok2 = load_checkpoint(directory, config_class=TrainingConfig)
    assert cfg2 == cfg and not loaded.training
    np.testing.assert_array_equal(stats2.action_std, stats(cfg).action_std)
    assert tok2('pick the red cube')['input_ids'] == tokenizer('pick the red cube')['input_ids']
    obs = observation(cfg)
    expected = model.sample_actions(obs, generator=torch.Generator().manual_seed(3))
    got = loaded.sample_actions(obs, generator=torch.Generator().manual_seed(3))
    assert torch.equal(expected, got)
    half, *_ = load_checkpoint(directory, dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16


@pytest.mark.parametrize('plan', ['late_gemma', 'late_llama', 'deep_fusion'])
def test_2d_ablation_round_trips_and_ignores_the_points(plan, tmp_path, tokenizer):
    """encoder3d.position_encoding none: saved and loaded like any model, blind to xyz."""
    model3d, cfg3d = tiny(plan)
    cfg = dataclasses.replace(cfg3d, encoder3d=dataclasses.replace(
        cfg3d.encoder3d, position_encoding='none')).validate()
    torch.manual_seed(0)
    model = SpatialVLAModel(cfg).eval()
    directory = save_checkpoint(tmp_path / 'ckpt', model, cfg, stats(cfg), tokenizer)
    loaded, cfg2, _, _ = load_checkpoint(directory, config_class=TrainingConfig)
    assert cfg2.encoder3d.position_encoding == 'none'
    assert not any(n.startswith('encoder3d.position_embedding.')
                   for n in loaded.state_dict())
    obs = observation(cfg)
    g = torch.Generator().manual_seed(7)
    moved = dataclasses.replace(obs, points=torch.rand(obs.points.shape, generator=g) * 3 - 1)

    def sample(net, o):
        return net.sample_actions(o, generator=torch.Generator().manual_seed(3))

    expected = sample(model, obs)
    assert torch.equal(sample(loaded, obs), expected)
    assert torch.equal(sample(loaded, moved), expected)
    assert not torch.equal(sample(model3d, moved), sample(model3d, obs))
    # 3D weights under a 2D config are refused with the tensors named, not silently dropped.
    directory3d = save_checkpoint(tmp_path / 'ckpt3d', model3d, cfg3d, stats(cfg3d), tokenizer)
    cfg.save_yaml(os.path.join(directory3d, 'config.yaml'))
    with pytest.raises(CheckpointError, match='encoder3d.position_embedding'):
        load_checkpoint(directory3d, config_class=TrainingConfig)


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


def test_a_pointer_file_stands_for_the_checkpoint_it_names(saved):
    directory, _, cfg = saved
    root = os.path.dirname(directory)
    pointer = os.path.join(root, 'latest')   # what a training run writes beside its steps
    with open(pointer, 'w', encoding='utf-8') as f:
        f.write('ckpt\n')
    model, cfg2, _, _ = load_checkpoint(pointer, config_class=TrainingConfig)
    assert cfg2 == cfg
    policy = SpatialVLAPolicy.from_pretrained(pointer)   # the node's loader
    assert policy.config.plan == cfg.plan and policy.config.data == cfg.data
    for content in (b'step_missing\n', b'', b'\xff\xfe\x00', b'../ckpt\n'):
        with open(pointer, 'wb') as f:
            f.write(content)
        with pytest.raises(CheckpointError, match='pointer file') as err:
            load_checkpoint(pointer)
        assert pointer in str(err.value)


def _modes(root):
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            out[os.path.relpath(path, root)] = os.stat(path).st_mode & 0o777
    out['.'] = os.stat(root).st_mode & 0o777
    return out


@pytest.mark.parametrize('umask, file_mode, dir_mode', [(0o022, 0o644, 0o755),
                                                        (0o027, 0o640, 0o750)])
def test_checkpoint_modes_honour_the_umask(umask, file_mode, dir_mode, tmp_path, tokenizer):
    from spatialvla_ros.training import train_state
    from spatialvla_ros.training.distributed import DistContext
    from spatialvla_ros.training.loss import FlowLossModule
    from spatialvla_ros.training.schedule import WarmupCosineSchedule

    model, cfg = tiny()
    old = os.umask(umask)
    try:
        directory = save_checkpoint(tmp_path / 'ckpt', model, cfg, stats(cfg), tokenizer)
        loss_module = FlowLossModule(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        scheduler = WarmupCosineSchedule(optimizer, 1, 10)
        ctx = DistContext('single', 0, 1, 0, torch.device('cpu'))
        step_dir = train_state.save_training_checkpoint(
            tmp_path / 'run', 3, loss_module, optimizer, scheduler, stats(cfg), tokenizer, ctx)
    finally:
        os.umask(old)
    for root in (directory, step_dir):
        modes = _modes(root)
        assert 'model.safetensors' in modes and modes['.'] == dir_mode
        for name, mode in modes.items():
            is_dir = os.path.isdir(os.path.join(root, name))
            assert mode == (dir_mode if is_dir else file_mode), (root, name, oct(mode))
    assert 'training/optimizer.safetensors' in _modes(step_dir)
    pointer = os.path.join(tmp_path, 'run', 'checkpoints', 'latest')
    assert os.stat(pointer).st_mode & 0o777 == file_mode


def test_weights_of_another_plan_are_named_with_the_key_to_fix(tmp_path, tokenizer):
    import yaml

    model, cfg = tiny('deep_fusion')
    directory = save_checkpoint(tmp_path / 'ckpt', model, cfg, stats(cfg), tokenizer)
    config_path = os.path.join(directory, 'config.yaml')
    with open(config_path, encoding='utf-8') as f:
        data = yaml.safe_load(f)
    data['plan'] = 'late_llama'   # the expert section is a valid Llama expert as it stands
    with open(config_path, 'w', encoding='utf-8') as f:
        yaml.safe_dump(data, f)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(directory)
    message = str(err.value)
    assert 'deep_fusion model' in message and "'plan'" in message and config_path in message
    assert 'missing tensors' not in message

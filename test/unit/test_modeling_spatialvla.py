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

"""SpatialVLAModel on the three tiny configs: loss, gradients, sampling, batching, bf16."""

import dataclasses
import os

import pytest
from repo_paths import REPO_ROOT
from spatialvla_ros.models.configuration_spatialvla import PLANS
from spatialvla_ros.models.configuration_spatialvla import SpatialVLAConfig
from spatialvla_ros.models.modeling_spatialvla import ModelBatch
from spatialvla_ros.models.modeling_spatialvla import ModelObservation
from spatialvla_ros.models.modeling_spatialvla import SpatialVLAModel
import torch

CONFIG_DIR = os.path.join(REPO_ROOT, 'config')


def tiny_config(plan, freeze=False):
    cfg = SpatialVLAConfig.from_yaml(os.path.join(CONFIG_DIR, f'{plan}.yaml'))
    if freeze:
        cfg = dataclasses.replace(cfg, freeze_vlm=True)
    return cfg.validate()


def make_observation(cfg, batch, seed=0, size=64):
    """Random observation; samples have different invalid-point shares and text lengths."""
    g = torch.Generator().manual_seed(seed)
    lm = cfg.language_model
    points = torch.rand(batch, 1, size, size, 3, generator=g) * torch.tensor([0.6, 0.6, 0.3])
    points = points + torch.tensor([0.3, -0.3, 0.0])
    for b in range(batch):
        points[b, :, : 8 * b] = float('nan')             # more invalid rows -> fewer voxels
    input_ids = torch.randint(3, lm.vocab_size, (batch, lm.max_text_tokens), generator=g)
    lengths = torch.tensor([lm.max_text_tokens - 3 * (b % 4) for b in range(batch)])
    attention_mask = torch.arange(lm.max_text_tokens)[None] < lengths[:, None]
    return ModelObservation(
        images=torch.rand(batch, 1, 3, size, size, generator=g), points=points,
        state=torch.randn(batch, cfg.action.state_dim, generator=g),
        input_ids=input_ids.masked_fill(~attention_mask, 0), attention_mask=attention_mask)


def make_batch(cfg, batch, seed=0):
    g = torch.Generator().manual_seed(seed + 100)
    h, a = cfg.action.chunk_size, cfg.action.action_dim
    mask = torch.ones(batch, h, dtype=torch.bool)
    mask[0, h - 3:] = False
    return ModelBatch(make_observation(cfg, batch, seed), torch.randn(batch, h, a, generator=g),
                      mask)


def build(plan, freeze=False, seed=0):
    torch.manual_seed(seed)
    return SpatialVLAModel(tiny_config(plan, freeze))


def _grads(module):
    return [p.grad for p in module.parameters()]


def _expert_params(model):
    skip = {id(p) for p in model.encoder3d.parameters()} | {id(p) for p in model.vlm.parameters()}
    return [p for p in model.parameters() if id(p) not in skip]


@pytest.mark.parametrize('plan', PLANS)
def test_loss_backprops_into_every_part(plan):
    model = build(plan).train()
    batch = make_batch(model.config, 2)
    loss = model.compute_loss(batch, torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    with torch.no_grad():  # per-step losses: the scalar is their mean over valid steps
        per_step = model.compute_loss(batch, torch.Generator().manual_seed(0), reduce=False)
    assert per_step.shape == batch.action_mask.shape
    torch.testing.assert_close(per_step[batch.action_mask].mean(), loss.detach())
    # explicit noise / time give the loss of the openpi formula on the model's own velocity
    noise, t = torch.randn(batch.actions.shape), torch.tensor([0.3, 0.9])
    with torch.no_grad():
        given = model.compute_loss(batch, noise=noise, time=t, reduce=False)
        x_t = t[:, None, None] * noise + (1 - t[:, None, None]) * batch.actions
        prefix, prefix_mask = model.embed_prefix(batch.observation)
        suffix = model.suffix_embedding(x_t, t, batch.observation.state)
        pred = model.action_head(model.backbone(prefix, prefix_mask, suffix,
                                                model._suffix_ar))
    torch.testing.assert_close(given, ((pred - (noise - batch.actions)) ** 2).mean(-1))
    loss.backward()
    for name, part in (('encoder', model.encoder3d), ('vlm', model.vlm)):
        got = [g for g in _grads(part) if g is not None]
        assert got and any(g.abs().sum() > 0 for g in got), f'no gradient reached {name}'
    expert = _expert_params(model)
    assert all(p.grad is not None for p in model.action_head.parameters())
    assert sum(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in expert) > \
        0.8 * len(expert)
    counts = model.num_parameters()
    assert counts['encoder'] + counts['vlm'] + counts['expert'] == counts['total']


@pytest.mark.parametrize('plan', PLANS)
def test_frozen_vlm_gets_no_gradient(plan):
    model = build(plan, freeze=True).train()
    assert not model.encoder3d.training and not model.vlm.training
    loss = model.compute_loss(make_batch(model.config, 2), torch.Generator().manual_seed(0))
    loss.backward()
    assert all(g is None for g in _grads(model.encoder3d))
    assert all(g is None for g in _grads(model.vlm))
    assert all(p.grad is not None for p in model.action_head.parameters())
    assert all(p.grad is not None for p in model.suffix_embedding.parameters())
    counts = model.num_parameters()
    assert counts['trainable'] == counts['expert']


@pytest.mark.parametrize('plan', PLANS)
def test_sampling_is_seeded_batched_and_prefix_runs_once(plan):
    model = build(plan).eval()
    cfg = model.config
    obs = make_observation(cfg, 3, seed=1)
    calls = []
    hook = model.vlm.layers[0].self_attn.q_proj.register_forward_hook(
        lambda *args: calls.append(1))
    actions = model.sample_actions(obs, generator=torch.Generator().manual_seed(5))
    hook.remove()
    assert actions.shape == (3, cfg.action.chunk_size, cfg.action.action_dim)
    assert torch.isfinite(actions).all()
    assert len(calls) == 1, f'VLM layer 0 ran {len(calls)} times for {cfg.flow.num_steps} steps'
    again = model.sample_actions(obs, generator=torch.Generator().manual_seed(5))
    assert torch.equal(actions, again)
    other = model.sample_actions(obs, generator=torch.Generator().manual_seed(6))
    assert not torch.allclose(actions, other)
    # the cached path (prefix once, suffix per step) equals full joint passes every step
    noise = torch.randn(actions.shape, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        prefix, prefix_mask = model.embed_prefix(obs)
        x = noise.clone()
        for k in range(4):
            t = torch.full((3,), 1.0 - k / 4)
            suffix = model.suffix_embedding(x, t, obs.state)
            x = x - 0.25 * model.action_head(model.backbone(prefix, prefix_mask, suffix,
                                                            model._suffix_ar))
    torch.testing.assert_close(model.sample_actions(obs, noise=noise, num_steps=4), x,
                               rtol=0, atol=1e-5)
    # batched == one at a time (different visual token counts and text lengths -> padding)
    batched = model.sample_actions(obs, noise=noise, num_steps=4)
    for b in range(3):
        single = model.sample_actions(obs.select(b), noise=noise[b:b + 1], num_steps=4)
        torch.testing.assert_close(batched[b:b + 1], single, rtol=0, atol=1e-5)


@pytest.mark.parametrize('plan', PLANS)
def test_training_steps_reduce_the_loss(plan):
    model = build(plan).train()
    batch = make_batch(model.config, 4, seed=3)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(12):
        opt.zero_grad()
        # the same generator seed every step: same noise and times, one fixed objective
        loss = model.compute_loss(batch, torch.Generator().manual_seed(0))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.75 * losses[0], losses


@pytest.mark.parametrize('plan', PLANS)
def test_bfloat16_loss_and_sampling(plan):
    model = build(plan).to(torch.bfloat16)
    assert model.dtype == torch.bfloat16
    batch = make_batch(model.config, 2)
    loss = model.compute_loss(batch, torch.Generator().manual_seed(0))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert model.action_head.parameters().__next__().grad.dtype == torch.bfloat16
    actions = model.eval().sample_actions(batch.observation, num_steps=3,
                                          generator=torch.Generator().manual_seed(1))
    assert actions.dtype == torch.float32 and torch.isfinite(actions).all()
    # bf16 follows the fp32 model it was cast from (same weights, same noise)
    ref = build(plan).eval().sample_actions(batch.observation, num_steps=3,
                                            generator=torch.Generator().manual_seed(1))
    assert (actions - ref).abs().max() < 0.05


def test_bad_inputs_are_rejected():
    model = build('late_llama').eval()
    obs = make_observation(model.config, 1)
    with pytest.raises(ValueError, match='noise'):
        model.sample_actions(obs, noise=torch.zeros(1, 3, 8))
    with pytest.raises(ValueError, match='num_steps'):
        model.sample_actions(obs, num_steps=0)
    obs.input_ids[0, 0] = model.config.language_model.vocab_size
    with pytest.raises(ValueError, match='observation.input_ids'):
        model.sample_actions(obs)
    bad = ModelBatch(obs, torch.zeros(1, 5, 8), torch.ones(1, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match='batch.actions'):
        model.compute_loss(bad)


@pytest.mark.parametrize('plan', ['late_gemma', 'deep_fusion'])
def test_gradient_checkpointing_keeps_loss_and_gradients(plan):
    batch = make_batch(tiny_config(plan), 2)
    results = []
    for enabled in (False, True):
        model = build(plan).train()
        model.set_gradient_checkpointing(enabled)
        loss = model.compute_loss(batch, torch.Generator().manual_seed(0))
        loss.backward()
        results.append((loss.detach(), model.action_head.proj.weight.grad,
                        model.vlm.layers[0].mlp.up_proj.weight.grad))
    for plain, ckpt in zip(*results):
        torch.testing.assert_close(plain, ckpt, rtol=1e-4, atol=1e-6)

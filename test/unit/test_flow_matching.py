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

"""Flow-matching helpers: time convention, Euler sampling, Beta times, masked loss."""

import math
import os

import pytest
from repo_paths import REPO_ROOT
from spatialvla_ros.models import flow_matching as fm
from spatialvla_ros.models.configuration_spatialvla import FlowConfig
from spatialvla_ros.models.configuration_spatialvla import SpatialVLAConfig
import torch

CONFIG_DIR = os.path.join(REPO_ROOT, 'config')


def _chunk(seed=0, b=3, h=10, a=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, h, a, generator=g), torch.randn(b, h, a, generator=g)


def test_interpolation_convention_t1_is_noise():
    actions, noise = _chunk()
    ones, zeros = torch.ones(3), torch.zeros(3)
    assert torch.equal(fm.interpolate(actions, noise, ones), noise)
    assert torch.equal(fm.interpolate(actions, noise, zeros), actions)
    target = fm.velocity_target(actions, noise)
    assert torch.equal(target, noise - actions)
    # The target is dx_t/dt of the straight path (finite difference, per-sample times).
    t0 = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    dt = 1e-3
    a64, n64 = actions.double(), noise.double()
    slope = (fm.interpolate(a64, n64, t0 + dt) - fm.interpolate(a64, n64, t0)) / dt
    torch.testing.assert_close(slope, n64 - a64, rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match='t: got shape'):
        fm.interpolate(actions, noise, torch.ones(2))


def test_euler_recovers_data_with_exact_fields():
    actions, noise = _chunk(1)
    seen = []

    def constant_field(x, t):
        seen.append(float(t[0]))
        return noise - actions

    out = fm.euler_sample(constant_field, noise, 10)
    torch.testing.assert_close(out, actions, rtol=0, atol=1e-5)
    assert seen == pytest.approx([1.0 - k / 10 for k in range(10)], abs=1e-7)

    # The x-dependent exact field of the straight path, v = (x - actions) / t, is also
    # integrated exactly by Euler: it checks that the times handed over are the true ones.
    def path_field(x, t):
        return (x - actions) / t[:, None, None]

    noise_before = noise.clone()
    out = fm.euler_sample(path_field, noise, 7)
    torch.testing.assert_close(out, actions, rtol=0, atol=1e-5)
    assert torch.equal(noise, noise_before)  # the caller's noise is not modified
    with pytest.raises(ValueError, match='num_steps'):
        fm.euler_sample(constant_field, noise, 0)


def test_beta_time_statistics_of_the_config():
    cfg = SpatialVLAConfig.from_yaml(os.path.join(CONFIG_DIR, 'deep_fusion.yaml')).flow
    assert (cfg.time_beta_alpha, cfg.time_beta_beta, cfg.time_min) == (1.5, 1.0, 0.001)
    n = 200_000
    t = fm.sample_time(n, cfg, torch.Generator().manual_seed(0))
    assert t.dtype == torch.float32 and t.shape == (n,)
    t = t.double()
    assert float(t.min()) >= cfg.time_min and float(t.max()) <= 1.0
    # Beta(1.5, 1): mean 0.6, sd 0.262 -> standard error 5.9e-4; tolerance 3e-3 (5 SE).
    expected_mean = 0.6 * (1 - cfg.time_min) + cfg.time_min
    assert abs(float(t.mean()) - expected_mean) < 3e-3
    # CDF of Beta(1.5, 1) is x^1.5: compare at a few points (binomial sd <= 1.1e-3).
    x = (t - cfg.time_min) / (1 - cfg.time_min)
    for q in (0.1, 0.3, 0.5, 0.8):
        assert abs(float((x <= q).double().mean()) - q ** 1.5) < 6e-3


def test_time_sampling_is_deterministic_with_a_generator():
    for cfg in (FlowConfig(), FlowConfig(time_beta_alpha=1.0, time_beta_beta=2.0)):
        a = fm.sample_time(64, cfg, torch.Generator().manual_seed(7))
        b = fm.sample_time(64, cfg, torch.Generator().manual_seed(7))
        c = fm.sample_time(64, cfg, torch.Generator().manual_seed(8))
        assert torch.equal(a, b)
        assert not torch.equal(a, c)
        assert a.dtype == torch.float32
    # Beta(1, 2): CDF 1 - (1 - x)^2, so P(x <= 0.5) = 0.75.
    x = fm.sample_time(100_000, FlowConfig(time_beta_alpha=1.0, time_beta_beta=2.0, time_min=0.0),
                       torch.Generator().manual_seed(3))
    assert abs(float((x <= 0.5).double().mean()) - 0.75) < 6e-3
    for alpha, beta in ((2.0, 2.0), (0.0, 1.0)):
        with pytest.raises(ValueError, match='time_beta_alpha'):
            fm.sample_time(4, FlowConfig(time_beta_alpha=alpha, time_beta_beta=beta))


def test_masked_loss_ignores_padded_steps():
    actions, noise = _chunk(2)
    target = fm.velocity_target(actions, noise)
    pred = target + 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(4))
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[0, 7:] = False
    mask[2, 4:] = False
    corrupted = pred.clone()
    corrupted[~mask] = 1e6  # garbage on padded steps must not matter
    loss = fm.flow_loss(corrupted, target, mask)
    manual = ((pred - target) ** 2)[mask].mean()  # mean over valid steps and all dims
    torch.testing.assert_close(loss, manual, rtol=1e-6, atol=0)
    assert torch.equal(fm.flow_loss(corrupted, target, mask), fm.flow_loss(pred, target, mask))
    torch.testing.assert_close(fm.flow_loss(pred, target), ((pred - target) ** 2).mean())
    empty = torch.zeros(3, 10, dtype=torch.bool)
    assert float(fm.flow_loss(pred, target, empty)) == 0.0  # no NaN without valid steps
    with pytest.raises(TypeError, match='action_mask'):
        fm.flow_loss(pred, target, mask.float())


def test_sincos_time_embedding():
    t = torch.tensor([0.0, 0.5, 1.0])
    emb = fm.sincos_time_embedding(t, 16)
    assert emb.shape == (3, 16) and emb.dtype == torch.float32
    torch.testing.assert_close(emb[0], torch.cat([torch.zeros(8), torch.ones(8)]))
    # First frequency has period min_period, last max_period (log-spaced).
    assert float(emb[1, 7]) == pytest.approx(math.sin(2 * math.pi * 0.5 / 4.0), abs=1e-6)
    assert float(emb[1, 0]) == pytest.approx(math.sin(2 * math.pi * 0.5 / 4e-3), abs=1e-3)
    assert not torch.allclose(emb[1], emb[2])
    with pytest.raises(ValueError, match='dim'):
        fm.sincos_time_embedding(t, 15)

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

"""
Stateless flow-matching helpers shared by all three fusion plans.

Time convention (openpi's, the reverse of the rectified-flow paper): t = 1 is pure noise and
t = 0 is the data. Training interpolates x_t = t * noise + (1 - t) * actions and regresses the
velocity dx_t/dt = noise - actions; sampling starts from noise at t = 1 and integrates with
Euler steps of dt = -1 / num_steps down to t = 0. Every helper here follows that convention, so
no caller has to restate it.
"""

import math

import torch


def sample_time(batch, cfg, generator=None, device=None):
    """
    Training times t ~ Beta(alpha, beta) * (1 - t_min) + t_min, shape (batch,) float32.

    Beta(alpha, 1) (openpi's Beta(1.5, 1)) and Beta(1, beta) are drawn exactly by their inverse
    CDF, one uniform per sample from `generator` (torch.distributions cannot take one), so the
    same generator state gives the same times.

    Inputs:
        batch: number of samples.
        cfg: FlowConfig (time_beta_alpha, time_beta_beta, time_min).
        generator: optional torch.Generator; the uniforms are drawn on its device.
        device: output device (default: the generator's device, else CPU).
    """
    alpha, beta = cfg.time_beta_alpha, cfg.time_beta_beta
    if batch < 1:
        raise ValueError(f'batch: got {batch}, expected an integer >= 1')
    if not (alpha > 0 and beta > 0 and 1.0 in (alpha, beta)):
        raise ValueError(f'flow.time_beta_alpha, flow.time_beta_beta: got {alpha}, {beta}, '
                         'expected both > 0 and one of them 1.0 (Beta(alpha, 1) or '
                         'Beta(1, beta), drawn by inverse CDF)')
    gen_device = generator.device if generator is not None else torch.device('cpu')
    out_device = torch.device(device) if device is not None else gen_device
    u = torch.rand(batch, generator=generator, device=gen_device, dtype=torch.float64)
    x = u ** (1.0 / alpha) if beta == 1.0 else 1.0 - u ** (1.0 / beta)       # (batch,)
    x = x.to(device=out_device, dtype=torch.float32)
    return x * (1.0 - cfg.time_min) + cfg.time_min


def _expand_time(t, like):
    if t.ndim != 1 or t.shape[0] != like.shape[0]:
        raise ValueError(f't: got shape {tuple(t.shape)}, expected ({like.shape[0]},) '
                         '(one time per sample)')
    return t.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


def interpolate(actions, noise, t):
    """Noisy actions x_t = t * noise + (1 - t) * actions; t (B,) broadcast over (B, ...)."""
    if actions.shape != noise.shape:
        raise ValueError(f'noise: got shape {tuple(noise.shape)}, expected the actions shape '
                         f'{tuple(actions.shape)}')
    t = _expand_time(t, actions)
    return t * noise + (1.0 - t) * actions


def velocity_target(actions, noise):
    """Regression target dx_t/dt = noise - actions (constant along the straight path)."""
    return noise - actions


def flow_loss_per_step(pred, target):
    """Squared error averaged over action dimensions: (B, H, A) -> (B, H)."""
    if pred.shape != target.shape:
        raise ValueError(f'pred: got shape {tuple(pred.shape)}, expected the target shape '
                         f'{tuple(target.shape)}')
    return (pred - target).pow(2).mean(dim=-1)


def _valid_steps(per_step, action_mask):
    if action_mask is None:
        return torch.ones_like(per_step)
    if action_mask.shape != per_step.shape:
        raise ValueError(f'action_mask: got shape {tuple(action_mask.shape)}, expected '
                         f'{tuple(per_step.shape)} (B, H)')
    if action_mask.dtype != torch.bool:
        raise TypeError(f'action_mask: got dtype {action_mask.dtype}, expected torch.bool')
    return action_mask.to(per_step.dtype)


def flow_loss(pred, target, action_mask=None):
    """
    MSE over all valid steps and dims of the batch (padded steps excluded): a scalar.

    Inputs:
        pred: predicted velocity (B, H, A).
        target: velocity_target(actions, noise), (B, H, A).
        action_mask: (B, H) bool, True for real steps (None: all steps are real).
    """
    per_step = flow_loss_per_step(pred, target)                       # (B, H)
    valid = _valid_steps(per_step, action_mask)
    return (per_step * valid).sum() / valid.sum().clamp_min(1.0)


def euler_sample(velocity_fn, noise, num_steps):
    """
    Integrate dx/dt = v(x, t) from noise at t = 1 to the data at t = 0 with Euler steps.

    The loop is shape-static: x and t are allocated once and updated in place (when no gradient
    is recorded), which is what CUDA graphs / torch.compile need later. `t` passed to
    `velocity_fn` is a (B,) float32 tensor that is overwritten by the next step.

    Inputs:
        velocity_fn: callable (x_t (B, H, A), t (B,)) -> velocity (B, H, A).
        noise: x at t = 1, (B, H, A); not modified.
        num_steps: number of Euler steps (dt = -1 / num_steps).

    Output:
        x at t = 0, (B, H, A).
    """
    num_steps = int(num_steps)
    if num_steps < 1:
        raise ValueError(f'num_steps: got {num_steps}, expected an integer >= 1')
    dt = -1.0 / num_steps
    x = noise.clone()
    t = torch.ones(noise.shape[0], device=noise.device, dtype=torch.float32)
    for k in range(num_steps):
        t.fill_(1.0 - k / num_steps)  # exact grid, no accumulated rounding
        v = velocity_fn(x, t)
        if v.shape != x.shape:
            raise ValueError(f'velocity_fn: returned shape {tuple(v.shape)}, expected '
                             f'{tuple(x.shape)}')
        if torch.is_grad_enabled() and (x.requires_grad or v.requires_grad):
            x = x + dt * v
        else:
            x.add_(v.to(x.dtype), alpha=dt)
    return x


def sincos_time_embedding(t, dim, min_period=4e-3, max_period=4.0):
    """
    Sin/cos features of t with log-spaced periods in [min_period, max_period]: (B,) -> (B, dim).

    Computed in float32 whatever the dtype of t, so bf16 models see the same features.
    """
    if dim % 2 != 0 or dim < 2:
        raise ValueError(f'dim: got {dim}, expected an even number >= 2 (sin and cos halves)')
    if t.ndim != 1:
        raise ValueError(f't: got shape {tuple(t.shape)}, expected (B,)')
    half = dim // 2
    fraction = torch.linspace(0.0, 1.0, half, device=t.device, dtype=torch.float32)
    period = min_period * (max_period / min_period) ** fraction          # (dim/2,)
    angle = t.float()[:, None] * (2.0 * math.pi / period)[None, :]       # (B, dim/2)
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)       # (B, dim)


__all__ = [
    'euler_sample',
    'flow_loss',
    'flow_loss_per_step',
    'interpolate',
    'sample_time',
    'sincos_time_embedding',
    'velocity_target',
]

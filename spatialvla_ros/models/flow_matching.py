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


def prefix_weights(start, end, total):
    """
    Real-Time Chunking's soft mask over a new chunk of `total` steps: (total,) float32.

    Steps [0, start) are the committed prefix (weight 1: they execute before the new chunk is
    ready); over [start, end) the weight decays exponentially from 1 towards 0, as in Black,
    Galliker and Levine 2025 (eq. 5): w = c * (e^c - 1) / (e - 1) with c the linear ramp
    (start - 1 - i) / (end - start + 1) + 1 clipped to [0, 1]; steps from `end` on (past the
    previous chunk, end = H - s) are free (weight 0). `end` wins over `start`: end <= start
    leaves only [0, end) at weight 1.
    """
    start, end, total = int(start), int(end), int(total)
    if total < 1:
        raise ValueError(f'total: got {total}, expected an integer >= 1 (chunk steps)')
    end = min(max(end, 0), total)
    start = min(max(start, 0), end)
    i = torch.arange(total, dtype=torch.float32)
    ramp = ((start - 1 - i) / (end - start + 1) + 1).clamp(0.0, 1.0)
    w = ramp * torch.expm1(ramp) / math.expm1(1.0)
    w[:start] = 1.0                   # exactly 1, whatever the rounding of the exponential
    w[end:] = 0.0
    return w


def guided_euler_sample(velocity_fn, noise, num_steps, target, weights, max_guidance_weight):
    """
    Euler sampling with Real-Time Chunking's guided inpainting towards `target` (openpi time).

    At every step the clean-chunk estimate x0 = x_t - t * v(x_t, t) is pulled towards `target`
    where `weights` > 0: the velocity becomes v - g * J^T (W (target - x0)), with J = dx0/dx_t
    (one vector-Jacobian product through `velocity_fn`) and the guidance weight
    g = min(t / (1 - t) * (t^2 + (1 - t)^2) / t^2, max_guidance_weight) (the paper's
    pseudo-inverse guidance with its clip beta; written for t = 1 noise, t = 0 data). All-zero
    weights or a zero clip give `euler_sample` exactly (same noise, same result).

    Inputs:
        velocity_fn: as for `euler_sample`; it must be differentiable in x_t (call this under
            torch.no_grad, not inference_mode: gradients are switched on here, per step).
        noise: x at t = 1, (B, H, A).
        num_steps: Euler steps.
        target: (B, H, A) or (H, A) actions to inpaint (the previous chunk, aligned in time).
        weights: (H,) soft mask (`prefix_weights`).
        max_guidance_weight: the clip beta (>= 0).
    """
    num_steps = int(num_steps)
    weights = torch.as_tensor(weights, dtype=torch.float32, device=noise.device)
    if weights.shape != noise.shape[1:2]:
        raise ValueError(f'weights: got shape {tuple(weights.shape)}, expected '
                         f'({noise.shape[1]},) (one per chunk step)')
    target = torch.as_tensor(target, dtype=torch.float32, device=noise.device)
    target = target.expand_as(noise) if target.ndim == 2 else target
    if target.shape != noise.shape:
        raise ValueError(f'target: got shape {tuple(target.shape)}, expected '
                         f'{tuple(noise.shape)}')
    if max_guidance_weight < 0:
        raise ValueError(f'max_guidance_weight: got {max_guidance_weight}, expected >= 0')
    if max_guidance_weight == 0 or not bool(weights.any()):
        return euler_sample(velocity_fn, noise, num_steps)
    if num_steps < 1:
        raise ValueError(f'num_steps: got {num_steps}, expected an integer >= 1')
    dt = -1.0 / num_steps
    mask = weights[None, :, None]
    x = noise.detach().clone()
    t = torch.ones(noise.shape[0], device=noise.device, dtype=torch.float32)
    for k in range(num_steps):
        time = 1.0 - k / num_steps
        t.fill_(time)
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            v = velocity_fn(x_in, t).float()
            x0 = x_in - time * v
            correction, = torch.autograd.grad(x0, x_in, grad_outputs=(target - x0) * mask)
        ratio = math.inf if time >= 1.0 else time / (1.0 - time)
        inv_r2 = (time ** 2 + (1.0 - time) ** 2) / time ** 2
        guidance = min(ratio * inv_r2, float(max_guidance_weight))
        x = x + dt * (v.detach() - guidance * correction)
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
    'guided_euler_sample',
    'interpolate',
    'prefix_weights',
    'sample_time',
    'sincos_time_embedding',
    'velocity_target',
]

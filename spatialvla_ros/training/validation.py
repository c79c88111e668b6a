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

"""Held-out evaluation: action MSE in robot units against the predict-the-mean baseline.

Predictions are full denoised chunks (config.flow.num_steps Euler steps) from seeded noise,
unnormalised with the training statistics. Errors are summed per horizon step and action
dimension over valid (unmasked) steps, then summed over processes, so the figures do not
depend on the world size. The baseline predicts the training mean action for every step.
"""

import contextlib

import numpy as np
from spatialvla_ros.training.distributed import all_reduce_sum
from spatialvla_ros.training.loss import draw_noise
from spatialvla_ros.training.loss import sample_seed
from spatialvla_ros.training.loss import VAL_STREAM
import torch


def val_indices(num_samples, max_samples):
    """Pick evenly spaced validation samples (all of them when max_samples <= 0)."""
    if max_samples <= 0 or num_samples <= max_samples:
        return list(range(num_samples))
    return np.linspace(0, num_samples - 1, max_samples).round().astype(int).tolist()


def _summarise(sums):
    """Turn summed squared errors into metrics: sums = (err (H, A), base (H, A), count (H,))."""
    err, base, count = sums
    total = max(float(count.sum()), 1.0)
    per_step_count = np.maximum(count, 1.0)[:, None]
    return {
        'val_mse': float(err.sum() / (total * err.shape[1])),
        'baseline_mse': float(base.sum() / (total * base.shape[1])),
        'val_mse_per_dim': (err.sum(0) / total).tolist(),
        'baseline_mse_per_dim': (base.sum(0) / total).tolist(),
        'val_mse_per_step': (err / per_step_count).mean(1).tolist(),
        'baseline_mse_per_step': (base / per_step_count).mean(1).tolist(),
    }


@torch.no_grad()
def evaluate(sampler, processor, dataset, indices, ctx, seed, batch_size, autocast=None):
    """Compute validation metrics of the model on `dataset[indices]` (call on every rank).

    Args:
        sampler: FlowLossModule around the model (under FSDP it is the root unit).
        processor: SpatialVLAProcessor with the training statistics.
        dataset: EpisodeDataset of held-out episodes.
        indices: sample indices to evaluate (identical on every rank).
        ctx: DistContext; rank r evaluates batches r, r + W, ...
        seed: run seed (validation noise is drawn per sample index).
        batch_size: samples per forward.
        autocast: context manager factory for mixed precision (None: none).
    """
    model = sampler.model
    act = model.config.action
    horizon, dim = act.chunk_size, act.action_dim
    err = np.zeros((horizon, dim))
    base = np.zeros((horizon, dim))
    count = np.zeros(horizon)
    mean = processor.stats.action_mean.astype(np.float64)
    batches = [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
    # FSDP gathers parameters collectively: every rank runs the same number of forwards.
    rounds = -(-len(batches) // ctx.world_size)
    was_training = model.training
    model.eval()
    try:
        for r in range(rounds):
            b = r * ctx.world_size + ctx.rank
            real = b < len(batches)
            chunk = batches[b] if real else batches[0]
            samples = [dataset[i] for i in chunk]
            batch = processor.collate(samples)
            noise = draw_noise([sample_seed(seed, VAL_STREAM, 0, i) for i in chunk], horizon, dim)
            with (autocast() if autocast else contextlib.nullcontext()):
                pred = sampler.sample_actions(batch.observation, noise)
            if not real:
                continue
            pred = processor.stats.unnormalize_action(
                pred.detach().float().cpu().numpy()).astype(np.float64)   # (B, H, A)
            target = np.stack([s[1] for s in samples]).astype(np.float64)
            mask = np.stack([s[2] for s in samples]).astype(np.float64)   # (B, H)
            err += (((pred - target) ** 2) * mask[..., None]).sum(0)
            base += (((mean - target) ** 2) * mask[..., None]).sum(0)
            count += mask.sum(0)
    finally:
        model.train(was_training)
    flat = all_reduce_sum(np.concatenate([err.ravel(), base.ravel(), count]), ctx).numpy()
    n = horizon * dim
    sums = (flat[:n].reshape(horizon, dim), flat[n:2 * n].reshape(horizon, dim), flat[2 * n:])
    metrics = _summarise(sums)
    metrics['val_samples'] = len(indices)
    return metrics


__all__ = ['evaluate', 'val_indices']

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

"""The training loss with random draws that do not depend on how the batch is split.

Flow matching draws a noise chunk and a time per sample. Each is drawn from its own generator
seeded by (seed, step, index of the sample in the global batch), so a global batch split over
any number of processes sees exactly the draws one process would: the loss curve of 2 (or N)
processes matches the single-process curve up to floating-point summation order.
"""

import inspect

import numpy as np
from spatialvla_ros.models import flow_matching
from spatialvla_ros.models.modeling_spatialvla import ModelBatch
import torch
from torch import nn

TRAIN_STREAM = 0
VAL_STREAM = 1


def sample_seed(seed, stream, step, index):
    """Return the 63-bit seed of one sample's draws (SeedSequence mixes the tuple thoroughly)."""
    state = np.random.SeedSequence([int(seed), int(stream), int(step), int(index)])
    return int(state.generate_state(2, np.uint64)[0] >> np.uint64(1))


def draw_noise_and_time(seeds, horizon, action_dim, flow_config):
    """Draw per-sample noise (B, H, A) and times (B,), float32 on the CPU, one generator each."""
    noise, times = [], []
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        noise.append(torch.randn((horizon, action_dim), generator=gen))
        times.append(flow_matching.sample_time(1, flow_config, gen))
    return torch.stack(noise), torch.cat(times)


def draw_noise(seeds, horizon, action_dim):
    """Draw the initial denoising noise (B, H, A) for validation, one generator per sample."""
    return torch.stack([torch.randn((horizon, action_dim),
                                    generator=torch.Generator().manual_seed(s)) for s in seeds])


def select(batch, i):
    return ModelBatch(observation=batch.observation.select(i), actions=batch.actions[i:i + 1],
                      action_mask=batch.action_mask[i:i + 1])


class FlowLossModule(nn.Module):
    """forward(batch, seeds) -> per-step flow-matching loss (B, H), unmasked.

    Holds the model as its only child, so DDP / FSDP wrap it like the model itself. If the
    model's `compute_loss` takes explicit `noise` / `time`, one batched forward is used;
    otherwise each sample runs with its own seeded generator (same draws, B forwards).
    """

    def __init__(self, model):
        super().__init__()
        self.model = model
        params = inspect.signature(model.compute_loss).parameters
        self.batched = 'noise' in params and 'time' in params

    def forward(self, batch, seeds):
        model = self.model
        act = model.config.action
        if self.batched:
            noise, time = draw_noise_and_time(seeds, act.chunk_size, act.action_dim,
                                              model.config.flow)
            return model.compute_loss(batch, noise=noise, time=time, reduce=False)
        rows = []
        for i, seed in enumerate(seeds):
            gen = torch.Generator(device=model.device).manual_seed(seed)
            rows.append(model.compute_loss(select(batch, i), generator=gen, reduce=False))
        return torch.cat(rows)                                            # (B, H)

    def sample_actions(self, observation, noise):
        """Run the model's sampler through this module (FSDP gathers the root's parameters)."""
        return self.model.sample_actions(observation, noise=noise)


__all__ = ['FlowLossModule', 'TRAIN_STREAM', 'VAL_STREAM', 'draw_noise', 'draw_noise_and_time',
           'sample_seed', 'select']

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
3D grounding pre-training of the encoder and VLM, before policy training.

Real VLAs start from a VLM that already grounds language in the scene (pi0 from PaliGemma,
LLaVA-3D trains 3D visual grounding). A VLM trained from scratch on actions alone barely
learns which object an instruction names: the flow-matching loss carries that signal only
through the few frames where the motion does not already give the target away, under
noise. At the tiny sizes this project trains on a CPU, this stage supplies the missing
ability: a linear head on the instruction tokens' hidden states (those the action expert
reads, see `instruction_hidden`) regresses the 3D centre of the named object from the prefix
(3D visual tokens + instruction), and optionally where the task wants it to end up (the goal
point: a push's direction, a pick-and-place's destination; `sim.tasks.goal_point`). The head
is thrown away; the encoder and VLM initialise policy training (`--init-checkpoint`).
"""

from dataclasses import dataclass
import time

import numpy as np
from spatialvla_ros.core_types import RawObservation
from spatialvla_ros.models.fusion_common import attention_inputs
import torch
from torch import nn


@dataclass(frozen=True)
class GroundingSample:
    """One observation and the base-frame centre (3,) [m] of the object its instruction names.

    `target_xyz` may be (6,): the centre, then the goal point of the task.
    """

    observation: RawObservation
    target_xyz: np.ndarray


@dataclass(frozen=True)
class GroundingResult:
    steps: int
    val_median_error_m: float      # held-out distance between predicted and true centre
    val_within_5cm: float          # share of held-out samples within 5 cm
    baseline_median_error_m: float  # always predicting the mean centre
    seconds: float
    val_goal_median_error_m: float = float('nan')   # the goal point's, when samples have one


class GroundingHead(nn.Module):
    """Masked mean of the instruction tokens' hidden states -> point(s), in units of `scale`."""

    def __init__(self, hidden_size, mean, scale):
        super().__init__()
        self.proj = nn.Linear(hidden_size, len(mean))
        self.register_buffer('mean', torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer('scale', torch.as_tensor(scale, dtype=torch.float32))

    def forward(self, hidden, text_mask):
        # hidden: (B, L, D) instruction tokens; text_mask: (B, L) bool
        w = text_mask.to(hidden.dtype)[..., None]
        pooled = (hidden * w).sum(1) / w.sum(1).clamp_min(1.0)
        return self.proj(pooled.float())                   # (B, 3 or 6) normalised

    def to_metres(self, normalised):
        return normalised * self.scale + self.mean


def instruction_hidden(model, observation):
    """
    Run the VLM over the prefix as the policy does; give the instruction states the expert reads.

    Gives (B, L, D). Late fusion: the VLM's output, which the expert takes as its context.
    Deep fusion: the input of the VLM's last layer, the deepest prefix states whose K/V the
    expert attends to (the VLM's final output is never read by the expert there).
    """
    embeds, mask = model.embed_prefix(observation)
    attention, positions = attention_inputs(
        mask, model.config.language_model.prefix_attention, embeds.dtype)
    deep = model.config.plan == 'deep_fusion'
    out = model.vlm(inputs_embeds=embeds, attention_mask=attention, position_ids=positions,
                    use_cache=False, output_hidden_states=deep)
    hidden = out.hidden_states[-2] if deep else out.last_hidden_state
    return hidden[:, model.encoder3d.num_tokens:]


def _batch(processor, samples, device):
    obs = processor.observations_to_model([s.observation for s in samples]).to(device)
    xyz = torch.as_tensor(np.stack([s.target_xyz for s in samples]), dtype=torch.float32)
    return obs, xyz.to(device)


def _errors(model, head, processor, samples, batch_size):
    """Distances (N, points) [m] between predicted and true points (centre, then goal)."""
    errors = []
    with torch.no_grad():
        for i in range(0, len(samples), batch_size):
            obs, xyz = _batch(processor, samples[i:i + batch_size], model.device)
            pred = head(instruction_hidden(model, obs), obs.attention_mask)
            errors.append((head.to_metres(pred) - xyz).unflatten(-1, (-1, 3)).norm(dim=-1))
    return torch.cat(errors).cpu().numpy()


def pretrain_grounding(model, processor, train, val, steps, batch_size=32, learning_rate=1e-3,
                       weight_decay=0.01, seed=0, log_every=250, log=print):
    """
    Train model.encoder3d and model.vlm (in place) to ground instructions; the expert is untouched.

    Arguments, by name:
        model: SpatialVLAModel on the CPU or a GPU.
        processor: SpatialVLAProcessor of the policy (same tokenizer as policy training).
        train, val: lists of GroundingSample.
        steps, batch_size, learning_rate, weight_decay, seed: AdamW, constant rate, clip 1.0.
        log: callable taking one line of progress every `log_every` steps (None: quiet).
    """
    if not train or not val:
        raise ValueError(f'train/val: got {len(train)}/{len(val)} samples, expected both >= 1')
    centres = np.stack([s.target_xyz for s in train])
    mean, scale = centres.mean(0), float(centres.std(0).max()) or 1.0
    torch.manual_seed(seed)
    head = GroundingHead(model.config.language_model.hidden_size, mean, scale).to(model.device)
    params = list(model.encoder3d.parameters()) + list(model.vlm.parameters())
    params = [p for p in params if p.requires_grad] + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    baseline = np.linalg.norm(np.stack([s.target_xyz[:3] for s in val]) - mean[:3], axis=-1)
    was_training = model.training
    model.train()
    start = time.monotonic()
    for step in range(1, steps + 1):
        idx = rng.choice(len(train), min(batch_size, len(train)), replace=False)
        obs, xyz = _batch(processor, [train[i] for i in idx], model.device)
        pred = head(instruction_hidden(model, obs), obs.attention_mask)
        loss = ((pred - (xyz - head.mean) / head.scale) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if log is not None and (step % log_every == 0 or step == steps):
            model.eval()
            err = _errors(model, head, processor, val, batch_size)
            model.train()
            goal = (f', goal {100 * np.median(err[:, 1]):.1f} cm' if err.shape[1] > 1 else '')
            log(f'grounding step {step}/{steps}: loss {loss.item():.4f}, held-out median error '
                f'{100 * np.median(err[:, 0]):.1f} cm, {100 * np.mean(err[:, 0] < 0.05):.0f}% '
                f'within 5 cm (mean centre: {100 * np.median(baseline):.1f} cm){goal}')
    model.eval()
    err = _errors(model, head, processor, val, batch_size)
    model.train(was_training)
    return GroundingResult(steps=steps, val_median_error_m=float(np.median(err[:, 0])),
                           val_within_5cm=float(np.mean(err[:, 0] < 0.05)),
                           baseline_median_error_m=float(np.median(baseline)),
                           seconds=time.monotonic() - start,
                           val_goal_median_error_m=float(np.median(err[:, 1]))
                           if err.shape[1] > 1 else float('nan'))


__all__ = ['GroundingHead', 'GroundingResult', 'GroundingSample', 'instruction_hidden',
           'pretrain_grounding']

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
The one network of all three fusion plans: 3D encoder + LLaVA-3D's Llama + action expert.

Prefix = [3D visual tokens (padded, masked) | instruction embeddings]; suffix = [time | state |
H noisy actions] (built by `ActionSuffixEmbedding`). `config.plan` picks the backbone that joins
them (late fusion with a Gemma or Llama expert, or pi0-style deep fusion); everything else is
shared, so the plans compare on equal terms. Flow matching follows openpi: t = 1 is pure noise,
x_t = t * noise + (1 - t) * actions, the network predicts the velocity noise - actions.
"""

from dataclasses import dataclass
from dataclasses import fields

from spatialvla_ros.models import flow_matching
from spatialvla_ros.models.configuration_spatialvla import PLANS
from spatialvla_ros.models.fusion_common import build_transformer
from spatialvla_ros.models.modeling_deep_fusion import LlamaDeepFusion
from spatialvla_ros.models.modeling_encoder3d import SpatialVLAEncoder3D
from spatialvla_ros.models.modeling_late_fusion import LateFusionBackbone
import torch
from torch import nn

SUFFIX_CONDITION_TOKENS = 2  # the time and state tokens in front of the action tokens


def suffix_ar_mask(horizon):
    """
    Block flags (2 + H,) bool of the suffix [time | state | H actions]: [1, 0, 1, 0, ..., 0].

    Time and state form one block (they see the prefix and each other); the actions form the
    next (they see all of it and each other), so the conditioning never sees the noisy actions.
    See fusion_common.attention_inputs.
    """
    if horizon < 1:
        raise ValueError(f'horizon: got {horizon}, expected an integer >= 1')
    ar = torch.zeros(SUFFIX_CONDITION_TOKENS + horizon, dtype=torch.bool)
    ar[0] = ar[SUFFIX_CONDITION_TOKENS] = True
    return ar


class ActionSuffixEmbedding(nn.Module):
    """
    Suffix tokens (B, 2 + H, width) from flow time, proprioceptive state and noisy actions.

    Inputs:
        action_dim: A, dimensions of one action.
        state_dim: dimensions of the state vector.
        width: the expert's hidden size (even: the time features are sin/cos halves).

    The action tokens carry no position embedding of their own: RoPE orders them.
    """

    def __init__(self, action_dim, state_dim, width):
        super().__init__()
        if width % 2 != 0:
            raise ValueError(f'width: got {width}, expected an even number (sin/cos time '
                             'features)')
        self.action_dim, self.state_dim, self.width = action_dim, state_dim, width
        self.time_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.state_proj = nn.Linear(state_dim, width)
        self.action_proj = nn.Linear(action_dim, width)

    def forward(self, noisy_actions, t, state):
        """noisy_actions (B, H, A), t (B,) flow time, state (B, state_dim) -> (B, 2 + H, W)."""
        if noisy_actions.ndim != 3 or noisy_actions.shape[-1] != self.action_dim:
            raise ValueError(f'noisy_actions: got shape {tuple(noisy_actions.shape)}, expected '
                             f'(B, H, {self.action_dim})')
        b = noisy_actions.shape[0]
        if tuple(state.shape) != (b, self.state_dim):
            raise ValueError(f'state: got shape {tuple(state.shape)}, expected '
                             f'({b}, {self.state_dim})')
        if tuple(t.shape) != (b,):
            raise ValueError(f't: got shape {tuple(t.shape)}, expected ({b},)')
        dtype = self.action_proj.weight.dtype
        time_tok = self.time_mlp(
            flow_matching.sincos_time_embedding(t, self.width).to(dtype))            # (B, W)
        state_tok = self.state_proj(state.to(dtype))                                # (B, W)
        action_tok = self.action_proj(noisy_actions.to(dtype))                      # (B, H, W)
        return torch.cat([time_tok[:, None], state_tok[:, None], action_tok], dim=1)


class ActionOutputHead(nn.Module):
    """Velocity (B, H, A) from the last H suffix hidden states (the action tokens)."""

    def __init__(self, width, action_dim):
        super().__init__()
        self.proj = nn.Linear(width, action_dim)

    def forward(self, suffix_hidden):
        return self.proj(suffix_hidden[:, SUFFIX_CONDITION_TOKENS:])                # (B, H, A)


def build_fusion_backbone(config, vlm):
    """Build the backbone of `config.plan` (SpatialVLAConfig) around an existing VLM."""
    prefix_attention = config.language_model.prefix_attention
    if config.plan in ('late_gemma', 'late_llama'):
        return LateFusionBackbone(vlm, config.expert, prefix_attention)
    if config.plan == 'deep_fusion':
        return LlamaDeepFusion(vlm, config.expert, prefix_attention)
    raise ValueError(f'plan: got {config.plan!r}, expected one of {", ".join(map(repr, PLANS))}')


@dataclass
class ModelObservation:
    """Model-ready observation tensors (the processor builds them from RawObservation)."""

    images: torch.Tensor          # (B, V, 3, H, W) float in [0, 1]
    points: torch.Tensor          # (B, V, H, W, 3) float xyz in the base frame, NaN = invalid
    state: torch.Tensor           # (B, S) normalised proprioceptive state
    input_ids: torch.Tensor       # (B, L) long instruction tokens
    attention_mask: torch.Tensor  # (B, L) bool, True = real token

    @property
    def batch_size(self):
        return self.state.shape[0]

    def to(self, device=None, dtype=None):
        """
        Move to `device`; cast images and state to `dtype`.

        Points stay float32 even for a bf16 model: bf16 keeps 8 mantissa bits, i.e. ~8 mm
        steps at 2 m, which would move points across voxel borders.
        """
        return ModelObservation(
            images=self.images.to(device=device, dtype=dtype),
            points=self.points.to(device=device, dtype=torch.float32),
            state=self.state.to(device=device, dtype=dtype),
            input_ids=self.input_ids.to(device=device, dtype=torch.long),
            attention_mask=self.attention_mask.to(device=device, dtype=torch.bool))

    def select(self, index):
        """Sub-batch (index: int, slice or index tensor), keeping the batch dimension."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return ModelObservation(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


@dataclass
class ModelBatch:
    """One training batch: observation, normalised action chunks and their validity mask."""

    observation: ModelObservation
    actions: torch.Tensor      # (B, H, A) normalised actions
    action_mask: torch.Tensor  # (B, H) bool, False = padded step past the episode end


def _randn(shape, generator, device):
    # Drawn on the generator's device, then moved: a CPU generator works for a GPU model and
    # gives the same float32 noise there as on the CPU.
    gen_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gen_device,
                       dtype=torch.float32).to(device)


def _count(params):
    return sum(p.numel() for p in params)


class SpatialVLAModel(nn.Module):
    """3D-aware VLA network: `compute_loss` for training, `sample_actions` for inference."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        lm = config.language_model
        # Registered first so that shared parameters are named `vlm.*` (the backbones hold the
        # same module); checkpoint I/O relies on this canonical naming.
        self.vlm = build_transformer(lm)
        self.encoder3d = SpatialVLAEncoder3D(config.vision, config.encoder3d, lm.hidden_size)
        # LateFusionBackbone ('late_gemma', 'late_llama') or LlamaDeepFusion ('deep_fusion').
        self.backbone = build_fusion_backbone(config, self.vlm)
        width = self.backbone.expert_hidden_size
        act = config.action
        self.suffix_embedding = ActionSuffixEmbedding(act.action_dim, act.state_dim, width)
        self.action_head = ActionOutputHead(width, act.action_dim)
        self.register_buffer('_suffix_ar', suffix_ar_mask(act.chunk_size), persistent=False)
        # Whether encoder + VLM are frozen: config.freeze_vlm, or the trainer's recipe.
        self.vlm_frozen = False
        if config.freeze_vlm:
            self.freeze_vlm()

    def freeze_vlm(self):
        """Stop gradients into encoder + VLM (they also keep inference behaviour in train())."""
        self.vlm_frozen = True
        self.encoder3d.requires_grad_(False)
        self.vlm.requires_grad_(False)

    # ---------------------------------------------------------------- properties

    @property
    def device(self):
        return next(self.parameters()).device

    @property
    def dtype(self):
        return next(p.dtype for p in self.parameters() if p.is_floating_point())

    def num_parameters(self):
        """Parameter counts per part, for the comparison table (shared weights counted once)."""
        encoder = _count(self.encoder3d.parameters())
        vlm = _count(self.vlm.parameters())
        total = _count(self.parameters())  # nn.Module.parameters() skips duplicates
        trainable = _count(p for p in self.parameters() if p.requires_grad)
        return {'encoder': encoder, 'vlm': vlm, 'expert': total - encoder - vlm,
                'total': total, 'trainable': trainable}

    def set_gradient_checkpointing(self, enabled=True):
        """Trade compute for activation memory in training (vision tower + backbone)."""
        self.backbone.set_gradient_checkpointing(enabled)
        tower = self.encoder3d.vision_tower
        if enabled:
            tower.activation_checkpointing_enable(
                activation_checkpointing_kwargs={'use_reentrant': False})
        else:
            tower.activation_checkpointing_disable()

    def train(self, mode=True):
        super().train(mode)
        if self.vlm_frozen:  # frozen parts keep inference behaviour (no dropout)
            self.encoder3d.eval()
            self.vlm.eval()
        return self

    # ---------------------------------------------------------------- building blocks
    def embed_prefix(self, observation):
        """
        3D visual tokens then instruction tokens.

        Gives embeds (B, N + L, D) in the model dtype and mask (B, N + L) bool.
        """
        vocab = self.vlm.embed_tokens.num_embeddings
        ids = observation.input_ids
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
            raise ValueError(f'observation.input_ids: got ids in [{int(ids.min())}, '
                             f'{int(ids.max())}], expected [0, {vocab}) (language_model.'
                             'vocab_size); was the tokenizer built for this model?')
        visual, visual_mask = self.encoder3d(observation.images, observation.points)  # (B,N,D)
        text = self.vlm.embed_tokens(observation.input_ids)                            # (B,L,D)
        embeds = torch.cat([visual.to(text.dtype), text], dim=1)
        mask = torch.cat([visual_mask.bool(), observation.attention_mask.bool()], dim=1)
        return embeds, mask

    # ---------------------------------------------------------------- training
    def compute_loss(self, batch, generator=None, noise=None, time=None, reduce=True):
        """
        Flow-matching loss on one batch (openpi convention, padded steps masked out).

        Arguments, by name:
            batch: ModelBatch with normalised actions.
            generator: torch.Generator (any device) for noise and time (None: the global
                RNG); unused for what `noise` / `time` give.
            noise: optional (B, H, A) noise, e.g. drawn per sample with its own seed.
            time: optional (B,) flow times in (0, 1].
            reduce: False returns the per-step loss (B, H), unmasked, instead of the mean over
                valid steps.
        """
        obs = batch.observation.to(self.device, self.dtype)
        # The flow maths (noise, x_t, target, loss) stays float32 whatever the model dtype.
        actions = batch.actions.to(device=self.device, dtype=torch.float32)
        action_mask = batch.action_mask.to(device=self.device, dtype=torch.bool)
        b, h, a = actions.shape
        act = self.config.action
        if (h, a) != (act.chunk_size, act.action_dim):
            raise ValueError(f'batch.actions: got shape {tuple(actions.shape)}, expected '
                             f'(B, {act.chunk_size}, {act.action_dim})')
        device = actions.device
        if noise is None:
            noise = _randn(actions.shape, generator, device)
        elif noise.shape != actions.shape:
            raise ValueError(f'noise: got shape {tuple(noise.shape)}, expected '
                             f'{tuple(actions.shape)} (the actions shape)')
        noise = noise.to(device=device, dtype=torch.float32)
        if time is None:
            time = flow_matching.sample_time(b, self.config.flow, generator, device)
        elif tuple(time.shape) != (b,):
            raise ValueError(f'time: got shape {tuple(time.shape)}, expected ({b},)')
        t = time.to(device=device, dtype=torch.float32)                   # (B,)
        x_t = flow_matching.interpolate(actions, noise, t)                # (B, H, A)
        target = flow_matching.velocity_target(actions, noise)
        if self.vlm_frozen:
            with torch.no_grad():
                prefix, prefix_mask = self.embed_prefix(obs)
        else:
            prefix, prefix_mask = self.embed_prefix(obs)
        suffix = self.suffix_embedding(x_t, t, obs.state)                  # (B, 2 + H, De)
        hidden = self.backbone(prefix, prefix_mask, suffix, self._suffix_ar)  # (B, 2 + H, De)
        pred = self.action_head(hidden).float()                            # (B, H, A)
        if not reduce:
            return flow_matching.flow_loss_per_step(pred, target)
        return flow_matching.flow_loss(pred, target, action_mask)

    def forward(self, batch, generator=None):
        return self.compute_loss(batch, generator=generator)

    # ---------------------------------------------------------------- inference
    def sample_actions(self, observation, num_steps=None, generator=None, noise=None,
                       guidance=None):
        """
        Denoise one action chunk per observation: prefix encoded once, suffix per step.

        Arguments, by name:
            observation: ModelObservation (any device / dtype; moved to the model's).
            num_steps: Euler steps (default config.flow.num_steps); dt = -1 / num_steps.
            generator: torch.Generator (any device) for the initial noise.
            noise: optional (B, H, A) initial noise (overrides generator).
            guidance: optional (target (B, H, A) or (H, A) normalised actions, weights (H,),
                max_guidance_weight): Real-Time Chunking's guided inpainting
                (`flow_matching.guided_euler_sample`); None samples plainly.

        Gives (B, H, A) float32 normalised actions: the Euler integration runs in float32
        whatever the model dtype (only the velocity network runs in it).
        """
        # Guidance differentiates through the velocity network, which inference-mode tensors
        # (the cached prefix) cannot take part in: no_grad there, inference_mode otherwise.
        with torch.inference_mode() if guidance is None else torch.no_grad():
            return self._sample_actions(observation, num_steps, generator, noise, guidance)

    def _sample_actions(self, observation, num_steps, generator, noise, guidance):
        num_steps = self.config.flow.num_steps if num_steps is None else int(num_steps)
        if num_steps < 1:
            raise ValueError(f'num_steps: got {num_steps}, expected an integer >= 1')
        obs = observation.to(self.device, self.dtype)
        act = self.config.action
        shape = (obs.batch_size, act.chunk_size, act.action_dim)
        if noise is None:
            noise = _randn(shape, generator, obs.state.device)
        elif tuple(noise.shape) != shape:
            raise ValueError(f'noise: got shape {tuple(noise.shape)}, expected {shape}')
        noise = noise.to(device=obs.state.device, dtype=torch.float32)
        prefix, prefix_mask = self.embed_prefix(obs)
        cache = self.backbone.encode_prefix(prefix, prefix_mask, self._suffix_ar)  # once
        state = obs.state

        def velocity_fn(x_t, t):  # t: (B,) float32, kept in fp32 for the sin/cos features
            suffix = self.suffix_embedding(x_t, t, state)                 # (B, 2 + H, De)
            hidden = self.backbone.decode_suffix(cache, suffix)           # (B, 2 + H, De)
            return self.action_head(hidden)                               # (B, H, A)

        if guidance is None:
            return flow_matching.euler_sample(velocity_fn, noise, num_steps)
        target, weights, max_guidance_weight = guidance
        cache.differentiable = True

        def guided_velocity_fn(x_t, t):  # one decode step's graph at a time
            cache.detach_()
            return velocity_fn(x_t, t)

        return flow_matching.guided_euler_sample(guided_velocity_fn, noise, num_steps, target,
                                                 weights, max_guidance_weight)


__all__ = [
    'ActionOutputHead',
    'ActionSuffixEmbedding',
    'ModelBatch',
    'ModelObservation',
    'SUFFIX_CONDITION_TOKENS',
    'SpatialVLAModel',
    'build_fusion_backbone',
    'suffix_ar_mask',
]

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
The flow-matching action expert: suffix tokens, output head and the fusion backbones.

The suffix is [time token | state token | H action tokens]. The backbone runs it together with
the VLM prefix (late fusion: through an independent Gemma/Llama expert over
[projected VLM context | suffix]; deep fusion: see modeling_deep_fusion) and the head maps the
last H hidden states to velocities. Both backbones expose the same interface:

    expert_hidden_size
    forward(prefix_embeds, prefix_mask, suffix_embeds, suffix_blocks) -> (B, S, D_expert)
    encode_prefix(prefix_embeds, prefix_mask, suffix_len=None) -> PrefixCache  (once)
    decode_suffix(cache, suffix_embeds, suffix_blocks) -> (B, S, D_expert)  (every step)
"""

from spatialvla_ros.models.configuration_spatialvla import PLANS
from spatialvla_ros.models.flow_matching import sincos_time_embedding
from spatialvla_ros.models.fusion_common import build_attention_mask
from spatialvla_ros.models.fusion_common import build_transformer
from spatialvla_ros.models.fusion_common import check_attn_implementation
from spatialvla_ros.models.fusion_common import check_decode_mode
from spatialvla_ros.models.fusion_common import check_prefix
from spatialvla_ros.models.fusion_common import check_prefix_attention
from spatialvla_ros.models.fusion_common import check_suffix
from spatialvla_ros.models.fusion_common import position_ids
from spatialvla_ros.models.fusion_common import prefix_attention_mask
from spatialvla_ros.models.fusion_common import PrefixCache
from spatialvla_ros.models.fusion_common import restore_rope_fp32
from spatialvla_ros.models.modeling_deep_fusion import LlamaDeepFusion
import torch
from torch import nn

SUFFIX_CONDITION_TOKENS = 2  # the time and state tokens in front of the action tokens


def suffix_block_ids(horizon):
    """
    Block ids (2 + H,) long: [0, 0, 1, ..., 1].

    Time and state (block 0) see each other and the prefix; actions (block 1) see all of it and
    each other, so the conditioning never sees the noisy actions.
    """
    if horizon < 1:
        raise ValueError(f'horizon: got {horizon}, expected an integer >= 1')
    ids = torch.ones(SUFFIX_CONDITION_TOKENS + horizon, dtype=torch.long)
    ids[:SUFFIX_CONDITION_TOKENS] = 0
    return ids


class ActionSuffixEmbedding(nn.Module):
    """
    Suffix tokens (B, 2 + H, width) from flow time, proprioceptive state and noisy actions.

    Inputs:
        action_dim: A, dimensions of one action.
        state_dim: dimensions of the state vector.
        width: the expert's hidden size (even: the time features are sin/cos halves).
        horizon: if given, a learned per-step position embedding (H, width) is added to the
            action tokens (RoPE already orders them; this is an option, off by default).
    """

    def __init__(self, action_dim, state_dim, width, horizon=None):
        super().__init__()
        if width % 2 != 0:
            raise ValueError(f'width: got {width}, expected an even number (sin/cos time '
                             'features)')
        self.action_dim, self.state_dim, self.width = action_dim, state_dim, width
        self.time_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.state_proj = nn.Linear(state_dim, width)
        self.action_proj = nn.Linear(action_dim, width)
        self.horizon = horizon
        self.action_pos = None
        if horizon is not None:
            self.action_pos = nn.Parameter(torch.randn(horizon, width) * 0.02)

    def forward(self, noisy_actions, t, state):
        """noisy_actions (B, H, A), t (B,) flow time, state (B, state_dim) -> (B, 2 + H, W)."""
        if noisy_actions.ndim != 3 or noisy_actions.shape[-1] != self.action_dim:
            raise ValueError(f'noisy_actions: got shape {tuple(noisy_actions.shape)}, expected '
                             f'(B, H, {self.action_dim})')
        b, h = noisy_actions.shape[:2]
        if tuple(state.shape) != (b, self.state_dim):
            raise ValueError(f'state: got shape {tuple(state.shape)}, expected '
                             f'({b}, {self.state_dim})')
        if tuple(t.shape) != (b,):
            raise ValueError(f't: got shape {tuple(t.shape)}, expected ({b},)')
        if self.action_pos is not None and h != self.horizon:
            raise ValueError(f'noisy_actions: got {h} steps, expected horizon={self.horizon}')
        dtype = self.action_proj.weight.dtype
        time_tok = self.time_mlp(sincos_time_embedding(t, self.width).to(dtype))   # (B, W)
        state_tok = self.state_proj(state.to(dtype))                                # (B, W)
        action_tok = self.action_proj(noisy_actions.to(dtype))                      # (B, H, W)
        if self.action_pos is not None:
            action_tok = action_tok + self.action_pos
        return torch.cat([time_tok[:, None], state_tok[:, None], action_tok], dim=1)


class ActionOutputHead(nn.Module):
    """Velocity (B, H, A) from the last H suffix hidden states (the action tokens)."""

    def __init__(self, width, action_dim):
        super().__init__()
        self.proj = nn.Linear(width, action_dim)

    def forward(self, suffix_hidden):
        return self.proj(suffix_hidden[:, SUFFIX_CONDITION_TOKENS:])


class LateFusionBackbone(nn.Module):
    """
    VLM runs fully; an independent Gemma/Llama expert runs over [projected context | suffix].

    Inputs:
        vlm: the VLM's transformers LlamaModel (shared with the caller, not copied).
        expert_cfg: TransformerConfig of the expert ('gemma' or 'llama').
        prefix_attention: 'causal' or 'bidirectional' among prefix (context) tokens, in the VLM
            and in the expert alike.
    """

    def __init__(self, vlm, expert_cfg, prefix_attention='causal'):
        super().__init__()
        check_prefix_attention(prefix_attention)
        check_attn_implementation(vlm, 'vlm')
        self.vlm = vlm
        self.expert = build_transformer(expert_cfg)
        self.expert.embed_tokens = None          # the expert only ever gets inputs_embeds
        self.context_proj = nn.Linear(vlm.config.hidden_size, expert_cfg.hidden_size)
        self.prefix_attention = prefix_attention
        self.expert_hidden_size = expert_cfg.hidden_size
        self.num_layers = expert_cfg.num_hidden_layers

    def _apply(self, fn, recurse=True):
        # Weights follow .to(dtype); RoPE frequencies stay float32 (see restore_rope_fp32).
        super()._apply(fn, recurse)
        restore_rope_fp32(self.vlm)
        restore_rope_fp32(self.expert)
        return self

    def set_gradient_checkpointing(self, enabled=True):
        """Recompute decoder layers in backward (transformers' own checkpointing)."""
        # transformers 5.x renamed gradient_* to activation_checkpointing_* (old names warn).
        for model in (self.vlm, self.expert):
            if enabled:
                model.activation_checkpointing_enable({'use_reentrant': False})
            else:
                model.activation_checkpointing_disable()

    def _context(self, prefix_embeds, prefix_mask, positions):
        """VLM over the prefix, then projection to the expert width: (B, P, D_expert)."""
        mask = prefix_attention_mask(prefix_mask, self.prefix_attention, prefix_embeds.dtype)
        out = self.vlm(inputs_embeds=prefix_embeds, attention_mask=mask,
                       position_ids=positions, use_cache=False)
        return self.context_proj(out.last_hidden_state)

    def forward(self, prefix_embeds, prefix_mask, suffix_embeds, suffix_blocks,
                return_prefix_hidden=False):
        """
        One pass (training): VLM over the prefix, expert over [context | suffix].

        Inputs:
            prefix_embeds: (B, P, D_vlm); prefix_mask: (B, P) bool, True for real tokens.
            suffix_embeds: (B, S, D_expert); suffix_blocks: (S,) long block ids.
            return_prefix_hidden: also return the expert's output at the context positions.

        Output:
            suffix hidden (B, S, D_expert), or (context hidden (B, P, D_expert), suffix hidden).
        """
        check_prefix(prefix_embeds, prefix_mask, self.vlm.config.hidden_size)
        check_suffix(suffix_embeds, suffix_blocks, prefix_embeds.shape[0],
                     self.expert_hidden_size)
        p, s = prefix_embeds.shape[1], suffix_embeds.shape[1]
        positions = position_ids(prefix_mask, s)                             # (B, P+S)
        context = self._context(prefix_embeds, prefix_mask, positions[:, :p])
        if suffix_embeds.dtype != context.dtype:
            raise TypeError(f'suffix_embeds: got dtype {suffix_embeds.dtype}, expected '
                            f'{context.dtype} (the expert dtype)')
        mask = build_attention_mask(prefix_mask, suffix_blocks, self.prefix_attention,
                                    context.dtype)                           # (B,1,P+S,P+S)
        out = self.expert(inputs_embeds=torch.cat([context, suffix_embeds], dim=1),
                          attention_mask=mask, position_ids=positions, use_cache=False)
        hidden = out.last_hidden_state
        if return_prefix_hidden:
            return hidden[:, :p], hidden[:, p:]
        return hidden[:, p:]

    def encode_prefix(self, prefix_embeds, prefix_mask, suffix_len=None):
        """VLM + context projection + expert over the context, once; returns the expert K/V."""
        check_prefix(prefix_embeds, prefix_mask, self.vlm.config.hidden_size)
        positions = position_ids(prefix_mask, 0)
        context = self._context(prefix_embeds, prefix_mask, positions)
        cache = PrefixCache(self.num_layers, prefix_mask, suffix_len)
        self.expert(inputs_embeds=context,
                    attention_mask=prefix_attention_mask(prefix_mask, self.prefix_attention,
                                                         context.dtype),
                    position_ids=positions, cache=cache, use_cache=True)
        return cache

    def decode_suffix(self, cache, suffix_embeds, suffix_blocks):
        """Expert over the suffix, attending to the cached context K/V: (B, S, D_expert)."""
        check_decode_mode(cache)
        check_suffix(suffix_embeds, suffix_blocks, cache.batch, self.expert_hidden_size)
        mask, positions = cache.decode_inputs(suffix_blocks, suffix_embeds.dtype)
        out = self.expert(inputs_embeds=suffix_embeds, attention_mask=mask,
                          position_ids=positions, cache=cache, use_cache=True)
        return out.last_hidden_state


def build_fusion_backbone(config, vlm):
    """Build the backbone of `config.plan` (SpatialVLAConfig) around an existing VLM."""
    prefix_attention = config.language_model.prefix_attention
    if config.plan in ('late_gemma', 'late_llama'):
        return LateFusionBackbone(vlm, config.expert, prefix_attention)
    if config.plan == 'deep_fusion':
        return LlamaDeepFusion(vlm, config.expert, prefix_attention)
    raise ValueError(f'plan: got {config.plan!r}, expected one of {", ".join(map(repr, PLANS))}')


__all__ = [
    'ActionOutputHead',
    'ActionSuffixEmbedding',
    'LateFusionBackbone',
    'LlamaDeepFusion',
    'PrefixCache',
    'SUFFIX_CONDITION_TOKENS',
    'build_fusion_backbone',
    'build_transformer',
    'suffix_block_ids',
]

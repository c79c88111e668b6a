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
Late fusion: the VLM runs, then an independent Gemma/Llama expert over [context | suffix].

The context is the VLM's output projected to the expert's width. Both models are transformers'
own (LlamaModel / GemmaModel forwards); the mask and positions come from `attention_inputs` as
deep fusion's do, and the expert's prefix K/V live in the same PrefixCache. The backbone
interface, shared with LlamaDeepFusion:

    expert_hidden_size
    forward(prefix_embeds, prefix_mask, suffix_embeds, suffix_ar) -> (B, S, D_expert)
    encode_prefix(prefix_embeds, prefix_mask, suffix_ar) -> PrefixCache  (once)
    decode_suffix(cache, suffix_embeds) -> (B, S, D_expert)  (every step)

Shapes: B batch, P prefix tokens, S suffix tokens, N = P + S.
"""

from spatialvla_ros.models.fusion_common import build_transformer
from spatialvla_ros.models.fusion_common import check_backbone
from spatialvla_ros.models.fusion_common import check_decode
from spatialvla_ros.models.fusion_common import pass_inputs
from spatialvla_ros.models.fusion_common import PrefixCache
from spatialvla_ros.models.fusion_common import restore_rope_fp32
import torch
from torch import nn


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
        check_backbone(vlm, prefix_attention)
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

    def _context(self, prefix_embeds, mask, positions):
        """VLM over the prefix, then projection to the expert width: (B, P, D_expert)."""
        out = self.vlm(inputs_embeds=prefix_embeds, attention_mask=mask,
                       position_ids=positions, use_cache=False)
        return self.context_proj(out.last_hidden_state)

    def forward(self, prefix_embeds, prefix_mask, suffix_embeds, suffix_ar,
                return_prefix_hidden=False):
        """
        One pass (training): VLM over the prefix, expert over [context | suffix].

        Inputs:
            prefix_embeds: (B, P, D_vlm); prefix_mask: (B, P) bool, True for real tokens.
            suffix_embeds: (B, S, D_expert); suffix_ar: (S,) bool block flags (suffix_ar_mask).
            return_prefix_hidden: also return the expert's output at the context positions.

        Output:
            suffix hidden (B, S, D_expert), or (context hidden (B, P, D_expert), suffix hidden).
        """
        p = prefix_embeds.shape[1]
        mask, positions = pass_inputs(self, prefix_embeds, prefix_mask, suffix_ar,
                                      suffix_embeds)                    # (B,1,N,N), (B,N)
        context = self._context(prefix_embeds, mask[:, :, :p, :p], positions[:, :p])
        joint = torch.cat([context, suffix_embeds], dim=1)                  # (B, N, D_expert)
        hidden = self.expert(inputs_embeds=joint, attention_mask=mask, position_ids=positions,
                             use_cache=False).last_hidden_state
        if return_prefix_hidden:
            return hidden[:, :p], hidden[:, p:]
        return hidden[:, p:]

    def encode_prefix(self, prefix_embeds, prefix_mask, suffix_ar):
        """VLM + context projection + expert over the context, once; returns the expert K/V."""
        p = prefix_embeds.shape[1]
        mask, positions = pass_inputs(self, prefix_embeds, prefix_mask, suffix_ar)  # (B,1,N,N)
        context = self._context(prefix_embeds, mask[:, :, :p, :p], positions[:, :p])
        cache = PrefixCache(self.num_layers, mask[:, :, p:], positions[:, p:])
        self.expert(inputs_embeds=context, attention_mask=mask[:, :, :p, :p],
                    position_ids=positions[:, :p], cache=cache, use_cache=True)
        return cache

    def decode_suffix(self, cache, suffix_embeds):
        """Expert over the suffix, attending to the cached context K/V: (B, S, D_expert)."""
        check_decode(self, cache, suffix_embeds)
        out = self.expert(inputs_embeds=suffix_embeds, attention_mask=cache.suffix_mask,
                          position_ids=cache.suffix_positions, cache=cache, use_cache=True)
        return out.last_hidden_state


__all__ = ['LateFusionBackbone']

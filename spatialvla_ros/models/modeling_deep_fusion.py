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
Deep ("lockstep", pi0-style) fusion of the VLM's Llama and a Llama action expert.

Both transformers run layer by layer together. In every layer each stream normalises its own
tokens and computes its own Q/K/V with its own weights; queries, keys and values of the two
streams are concatenated along the sequence ([prefix | suffix]), RoPE is applied once to the
joint sequence, one masked attention runs, and the result is split back so that each stream
continues through its own output projection, norms and MLP. The modules driven are the
transformers LlamaDecoderLayer submodules of `vlm.layers[i]` and `expert.layers[i]`, so a
pretrained VLM checkpoint loads unchanged.

Shapes: B batch, P prefix tokens, S suffix tokens, H query heads, K KV heads, D head_dim.
"""

from spatialvla_ros.models.fusion_common import additive_mask
from spatialvla_ros.models.fusion_common import attention_allowed
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
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import LlamaModel
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb
from transformers.models.llama.modeling_llama import eager_attention_forward

# Every attention op is shared, so these must be equal; width and MLP size may differ (pi0).
SHARED_ATTENTION_FIELDS = ('num_hidden_layers', 'num_attention_heads', 'num_key_value_heads',
                           'head_dim')


def _head_dim(config):
    return getattr(config, 'head_dim', None) or config.hidden_size // config.num_attention_heads


def _project_qkv(attn, x):
    """(B, L, W) normalised tokens -> q (B, H, L, D), k and v (B, K, L, D)."""
    shape = (*x.shape[:-1], -1, attn.head_dim)
    q = attn.q_proj(x).view(shape).transpose(1, 2)
    k = attn.k_proj(x).view(shape).transpose(1, 2)
    v = attn.v_proj(x).view(shape).transpose(1, 2)
    return q, k, v


def _finish_layer(layer, hidden, attn_out):
    """Residual + own o_proj, then own post-attention norm and MLP; attn_out (B, L, H * D)."""
    hidden = hidden + layer.self_attn.o_proj(attn_out)
    return hidden + layer.mlp(layer.post_attention_layernorm(hidden))


class LlamaDeepFusion(nn.Module):
    """
    VLM + action expert with one joint masked attention per layer.

    Inputs:
        vlm: the VLM's transformers LlamaModel (shared with the caller, not copied).
        expert_cfg: TransformerConfig of the expert ('llama'); same layers, heads, KV heads and
            head_dim as the VLM, any hidden / intermediate size.
        prefix_attention: 'causal' (LLaVA's Llama) or 'bidirectional' among prefix tokens.
        init_expert_from_vlm: copy the VLM's layer and final-norm weights into the expert
            (identical-copy preset; requires equal widths).
    """

    def __init__(self, vlm, expert_cfg, prefix_attention='causal', init_expert_from_vlm=False):
        super().__init__()
        if not isinstance(vlm, LlamaModel):
            raise TypeError(f'vlm: got {type(vlm).__name__}, expected transformers.LlamaModel')
        if expert_cfg.architecture != 'llama':
            raise ValueError(f'expert.architecture: got {expert_cfg.architecture!r}, expected '
                             "'llama' for deep fusion")
        check_prefix_attention(prefix_attention)
        check_attn_implementation(vlm, 'vlm')
        vlm_fields = {name: getattr(vlm.config, name) for name in SHARED_ATTENTION_FIELDS}
        vlm_fields['head_dim'] = _head_dim(vlm.config)
        for name, want in vlm_fields.items():
            got = getattr(expert_cfg, name)
            if got != want:
                raise ValueError(f'expert.{name}: got {got}, expected {want} (vlm {name}; '
                                 'deep fusion shares attention layer by layer)')
        self.vlm = vlm
        self.expert = build_transformer(expert_cfg, vlm.config._attn_implementation)
        self.expert.embed_tokens = None          # the expert only ever gets inputs_embeds
        # One RoPE for the joint sequence (the expert's own rope settings are not used).
        self.expert.rotary_emb = vlm.rotary_emb
        if init_expert_from_vlm:
            for name in ('hidden_size', 'intermediate_size'):
                if getattr(expert_cfg, name) != getattr(vlm.config, name):
                    raise ValueError(f'expert.{name}: got {getattr(expert_cfg, name)}, expected '
                                     f'{getattr(vlm.config, name)} to copy the VLM weights')
            self.expert.layers.load_state_dict(vlm.layers.state_dict())
            self.expert.norm.load_state_dict(vlm.norm.state_dict())
        self.prefix_attention = prefix_attention
        self.expert_hidden_size = expert_cfg.hidden_size
        self.num_layers = expert_cfg.num_hidden_layers
        self.gradient_checkpointing = False

    def _apply(self, fn, recurse=True):
        # Weights follow .to(dtype); RoPE frequencies stay float32 (see restore_rope_fp32).
        super()._apply(fn, recurse)
        restore_rope_fp32(self.vlm)
        restore_rope_fp32(self.expert)
        return self

    def set_gradient_checkpointing(self, enabled=True):
        """Recompute each joint layer in backward (saves activation memory in training)."""
        self.gradient_checkpointing = bool(enabled)

    def _joint_layer(self, i, h_v, h_e, cos, sin, mask, need_prefix):
        lv, le = self.vlm.layers[i], self.expert.layers[i]
        p = h_v.shape[1]
        q_v, k_v, v_v = _project_qkv(lv.self_attn, lv.input_layernorm(h_v))  # (B,H|K,P,D)
        q_e, k_e, v_e = _project_qkv(le.self_attn, le.input_layernorm(h_e))  # (B,H|K,S,D)
        q = torch.cat([q_v, q_e], dim=2)                                     # (B, H, P+S, D)
        k = torch.cat([k_v, k_e], dim=2)                                     # (B, K, P+S, D)
        v = torch.cat([v_v, v_e], dim=2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        attend = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.vlm.config._attn_implementation, eager_attention_forward)
        # transformers' attention handles GQA (repeat_kv / enable_gqa) from num_key_value_groups.
        dropout = lv.self_attn.attention_dropout if self.training else 0.0
        out, _ = attend(lv.self_attn, q, k, v, mask, dropout=dropout,
                        scaling=lv.self_attn.scaling)                        # (B, P+S, H, D)
        out = out.reshape(*out.shape[:2], -1)                                # (B, P+S, H*D)
        h_e = _finish_layer(le, h_e, out[:, p:])
        if need_prefix:
            h_v = _finish_layer(lv, h_v, out[:, :p])
        return h_v, h_e

    def forward(self, prefix_embeds, prefix_mask, suffix_embeds, suffix_blocks,
                return_prefix_hidden=False):
        """
        One joint pass over [prefix | suffix] (training; gradients reach both streams).

        Inputs:
            prefix_embeds: (B, P, D_vlm) visual + text embeddings.
            prefix_mask: (B, P) bool, True for real (non-padded) tokens.
            suffix_embeds: (B, S, D_expert) [time | state | actions] tokens.
            suffix_blocks: (S,) long block ids (suffix_block_ids).
            return_prefix_hidden: also return the VLM stream's normed prefix output.

        Output:
            suffix hidden (B, S, D_expert), or (prefix hidden (B, P, D_vlm), suffix hidden).
        """
        check_prefix(prefix_embeds, prefix_mask, self.vlm.config.hidden_size)
        check_suffix(suffix_embeds, suffix_blocks, prefix_embeds.shape[0],
                     self.expert_hidden_size)
        if suffix_embeds.dtype != prefix_embeds.dtype:
            raise TypeError(f'suffix_embeds: got dtype {suffix_embeds.dtype}, expected '
                            f'{prefix_embeds.dtype} (the prefix dtype)')
        allowed = attention_allowed(prefix_mask, suffix_blocks, self.prefix_attention)
        mask = additive_mask(allowed, prefix_embeds.dtype)                   # (B,1,P+S,P+S)
        positions = position_ids(prefix_mask, suffix_embeds.shape[1])        # (B, P+S)
        cos, sin = self.vlm.rotary_emb(prefix_embeds, positions)             # (B, P+S, D)
        h_v, h_e = prefix_embeds, suffix_embeds
        use_ckpt = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for i in range(self.num_layers):
            # The VLM's last post-attention block only feeds the prefix output: skip it.
            need_prefix = return_prefix_hidden or i < self.num_layers - 1
            if use_ckpt:
                h_v, h_e = checkpoint(self._joint_layer, i, h_v, h_e, cos, sin, mask,
                                      need_prefix, use_reentrant=False)
            else:
                h_v, h_e = self._joint_layer(i, h_v, h_e, cos, sin, mask, need_prefix)
        h_e = self.expert.norm(h_e)
        if return_prefix_hidden:
            return self.vlm.norm(h_v), h_e
        return h_e

    def encode_prefix(self, prefix_embeds, prefix_mask, suffix_len=None):
        """
        Run the VLM stream over the prefix once and cache its per-layer K/V.

        The prefix never sees the suffix, so its K/V in the joint pass are exactly those of the
        VLM alone. `suffix_len` (2 + chunk) preallocates the suffix tail of the cache.
        """
        check_prefix(prefix_embeds, prefix_mask, self.vlm.config.hidden_size)
        cache = PrefixCache(self.num_layers, prefix_mask, suffix_len)
        self.vlm(inputs_embeds=prefix_embeds,
                 attention_mask=prefix_attention_mask(prefix_mask, self.prefix_attention,
                                                      prefix_embeds.dtype),
                 position_ids=position_ids(prefix_mask, 0), cache=cache, use_cache=True)
        return cache

    def decode_suffix(self, cache, suffix_embeds, suffix_blocks):
        """
        Expert stream over the suffix, attending to the cached prefix K/V: (B, S, D_expert).

        The expert's LlamaAttention computes its suffix Q/K/V, writes K/V into the cache's suffix
        tail (the prefix rows are never touched) and attends over [prefix | suffix] with the
        block mask: the same arithmetic as the suffix rows of `forward`.
        """
        check_decode_mode(cache)
        check_suffix(suffix_embeds, suffix_blocks, cache.batch, self.expert_hidden_size)
        mask, positions = cache.decode_inputs(suffix_blocks, suffix_embeds.dtype)
        out = self.expert(inputs_embeds=suffix_embeds, attention_mask=mask,
                          position_ids=positions, cache=cache, use_cache=True)
        return out.last_hidden_state


__all__ = ['LlamaDeepFusion', 'SHARED_ATTENTION_FIELDS']

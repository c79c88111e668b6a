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
tokens and computes its own Q/K/V with its own weights; the Q/K/V of the streams are
concatenated along the sequence ([prefix | suffix]), RoPE is applied once to the joint
positions, one masked attention runs, and the result is split back so that each stream continues
through its own output projection, norms and MLP. The modules driven are the transformers
LlamaDecoderLayer submodules of `vlm.layers[i]` and `expert.layers[i]`, so a pretrained VLM
checkpoint loads unchanged.

Training, prefill and decode are one code path (`_joint_layer`) over a pair of streams, as in
openpi's gemma.py: [prefix, suffix] to train, [prefix, None] to fill the PrefixCache once per
observation, [None, suffix] for each denoising step against the cached prefix K/V.

Shapes: B batch, P prefix tokens, S suffix tokens, L tokens of the streams present in a pass,
H query heads, K KV heads, D head_dim.
"""

from spatialvla_ros.models.fusion_common import build_transformer
from spatialvla_ros.models.fusion_common import check_backbone
from spatialvla_ros.models.fusion_common import check_decode
from spatialvla_ros.models.fusion_common import pass_inputs
from spatialvla_ros.models.fusion_common import PrefixCache
from spatialvla_ros.models.fusion_common import restore_rope_fp32
import torch
from torch import nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint
from transformers import LlamaModel
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

# Every attention op is shared, so these must be equal; width and MLP size may differ (pi0).
_SHARED_ATTENTION_FIELDS = ('num_hidden_layers', 'num_attention_heads',
                            'num_key_value_heads', 'head_dim')


def _project_qkv(attn, x):
    """(B, L, W) normalised tokens -> q (B, H, L, D), k and v (B, K, L, D)."""
    shape = (*x.shape[:-1], -1, attn.head_dim)                           # (B, L, heads, D)
    q = attn.q_proj(x).view(shape).transpose(1, 2)
    k = attn.k_proj(x).view(shape).transpose(1, 2)
    v = attn.v_proj(x).view(shape).transpose(1, 2)
    return q, k, v


def _attention_by_matmul(q, k, v, mask, scale, dropout=0.0):
    """
    Masked attention as two batched matrix products and a float32 softmax (CPU).

    At bench/peer_lerobot.py's shapes on the CPU, SDPA's flash kernel takes about twice as
    long for a denoising step's 2 + H queries over the cached keys, and its backward makes a
    training step about 1.1x slower; it is faster only for the prefill's many queries without
    backward. Here the query heads that share a K/V head are stacked along the rows, so each
    product is one larger matrix product per K/V head, and the scale and the additive mask are
    applied inside the first product (baddbmm). The softmax runs in float32 as in
    transformers' eager attention.

    Inputs: q (B, H, L_q, D), k and v (B, K, L_k, D), mask (B, 1, L_q, L_k) additive.
    Output: (B, H, L_q, D).
    """
    b, heads, rows, dim = q.shape
    kv_heads, keys = k.shape[1], k.shape[2]
    stacked = (b * kv_heads, heads // kv_heads * rows)            # heads of one K/V head stacked
    mask = mask.expand(b, heads, rows, keys).reshape(*stacked, keys)    # (B K, G L_q, L_k)
    scores = torch.baddbmm(mask, q.reshape(*stacked, dim),
                           k.reshape(-1, keys, dim).transpose(1, 2), alpha=scale)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype)
    probs = F.dropout(probs, p=dropout, training=dropout > 0.0)
    return torch.bmm(probs, v.reshape(-1, keys, dim)).view(b, heads, rows, dim)


def _joint_layer(layers, hiddens, cos, sin, mask, cache=None, layer_idx=None,
                 need_prefix=True, dropout=0.0):
    """
    One decoder layer of both streams with one masked attention over the tokens present.

    Inputs:
        layers: (vlm LlamaDecoderLayer, expert LlamaDecoderLayer) of this depth.
        hiddens: [prefix (B, P, D_vlm) or None, suffix (B, S, D_expert) or None].
        cos, sin: (B, L, D) RoPE of the present tokens' joint positions.
        mask: (B, 1, L, L_keys) additive mask; L_keys = P + S when decoding on the cache.
        cache: PrefixCache, stores this pass's K/V and returns every K/V the queries attend to
            (prefill: the prefix's own; decode: cached prefix + this suffix).
        need_prefix: False skips the prefix stream's attention rows, output projection and
            MLP (nothing reads them after the last layer).

    Output:
        [prefix hidden or None, suffix hidden or None], shapes as the inputs.
    """
    present = [i for i, h in enumerate(hiddens) if h is not None]    # 0 prefix, 1 suffix
    qkv = [_project_qkv(layers[i].self_attn, layers[i].input_layernorm(hiddens[i]))
           for i in present]                                  # per stream (B, H|K, L_i, D)
    # One stream (prefill, decode): its own tensors; cat would copy them.
    q, k, v = (torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]
               for parts in zip(*qkv))                                 # (B, H|K, L, D)
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    if cache is not None:
        k, v = cache.update(k, v, layer_idx)                             # (B, K, L_keys, D)
    wanted = [i for i in present if i == 1 or need_prefix]
    if not wanted:  # the prefill's last layer: only its K/V are needed
        return [None, None]
    if wanted != present:  # the suffix queries only; their rows follow the prefix's
        p = hiddens[0].shape[1]
        q, mask = q[:, :, p:], mask[:, :, p:]                  # (B, H, S, D), (B, 1, S, N)
    assert mask.shape[-2:] == (q.shape[2], k.shape[2]), 'mask rows / columns = queries / keys'
    attn = layers[0].self_attn
    # On the CPU SDPA's flash kernel wins only for the prefill's many queries without backward.
    if q.device.type == 'cpu' and (hiddens[0] is None or torch.is_grad_enabled()):
        out = _attention_by_matmul(q, k, v, mask, attn.scaling, dropout)  # (B, H, L_q, D)
    else:
        # GQA: each K/V head serves H / K query heads; SDPA reads the shared head in place
        # instead of copying it H / K times (repeat_kv), in the forward and in the backward.
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout, scale=attn.scaling,
            enable_gqa=attn.num_key_value_groups > 1)                   # (B, H, L_q, D)
    out = out.transpose(1, 2).flatten(2)                                # (B, L_q, H * D)
    result = [None, None]
    parts = out.split([hiddens[i].shape[1] for i in wanted], dim=1)     # (B, L_i, H * D)
    for i, part in zip(wanted, parts):
        layer = layers[i]  # each stream continues through its own o_proj, norm and MLP
        h = hiddens[i] + layer.self_attn.o_proj(part)
        result[i] = h + layer.mlp(layer.post_attention_layernorm(h))
    return result


class LlamaDeepFusion(nn.Module):
    """
    VLM + action expert with one joint masked attention per layer.

    Inputs:
        vlm: the VLM's transformers LlamaModel (shared with the caller, not copied).
        expert_cfg: TransformerConfig of the expert ('llama'); same layers, heads, KV heads and
            head_dim as the VLM, any hidden / intermediate size.
        prefix_attention: 'causal' (LLaVA's Llama) or 'bidirectional' among prefix tokens.
    """

    def __init__(self, vlm, expert_cfg, prefix_attention='causal'):
        super().__init__()
        if not isinstance(vlm, LlamaModel):
            raise TypeError(f'vlm: got {type(vlm).__name__}, expected transformers.LlamaModel')
        if expert_cfg.architecture != 'llama':
            raise ValueError(f'expert.architecture: got {expert_cfg.architecture!r}, expected '
                             "'llama' for deep fusion")
        check_backbone(vlm, prefix_attention)
        for name in _SHARED_ATTENTION_FIELDS:
            got, want = getattr(expert_cfg, name), getattr(vlm.config, name)
            if got != want:
                raise ValueError(f'expert.{name}: got {got}, expected {want} (vlm {name}; '
                                 'deep fusion shares attention layer by layer)')
        self.vlm = vlm
        self.expert = build_transformer(expert_cfg, vlm.config._attn_implementation)
        # Only the expert's layers and final norm run: it gets embeddings, and RoPE is applied
        # once to the joint sequence with the VLM's rotary embedding.
        self.expert.embed_tokens = None
        self.expert.rotary_emb = None
        self.prefix_attention = prefix_attention
        self.expert_hidden_size = expert_cfg.hidden_size
        self.num_layers = expert_cfg.num_hidden_layers
        self.gradient_checkpointing = False

    def _apply(self, fn, recurse=True):
        # Weights follow .to(dtype); RoPE frequencies stay float32 (see restore_rope_fp32).
        super()._apply(fn, recurse)
        restore_rope_fp32(self.vlm)
        return self

    def set_gradient_checkpointing(self, enabled=True):
        """Recompute each joint layer in backward (saves activation memory in training)."""
        self.gradient_checkpointing = bool(enabled)

    def _run(self, hiddens, rope, mask, cache=None, need_prefix=False):
        """All layers over the present streams; rope: (cos, sin); see `_joint_layer`."""
        cos, sin = rope                                                    # (B, L, D) each
        dropout = self.vlm.layers[0].self_attn.attention_dropout if self.training else 0.0
        use_ckpt = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for i in range(self.num_layers):
            layers = (self.vlm.layers[i], self.expert.layers[i])
            # The VLM's last post-attention block only feeds the prefix output.
            need = need_prefix or i < self.num_layers - 1
            args = (layers, hiddens, cos, sin, mask, cache, i, need, dropout)
            if use_ckpt:
                hiddens = checkpoint(_joint_layer, *args, use_reentrant=False)
            else:
                hiddens = _joint_layer(*args)
        return hiddens

    def forward(self, prefix_embeds, prefix_mask, suffix_embeds, suffix_ar,
                return_prefix_hidden=False):
        """
        One joint pass over [prefix | suffix] (training; gradients reach both streams).

        Inputs:
            prefix_embeds: (B, P, D_vlm) visual + text embeddings.
            prefix_mask: (B, P) bool, True for real (non-padded) tokens.
            suffix_embeds: (B, S, D_expert) [time | state | actions] tokens.
            suffix_ar: (S,) bool block flags of the suffix (suffix_ar_mask).
            return_prefix_hidden: also return the VLM stream's normed prefix output.

        Output:
            suffix hidden (B, S, D_expert), or (prefix hidden (B, P, D_vlm), suffix hidden).
        """
        mask, positions = pass_inputs(self, prefix_embeds, prefix_mask, suffix_ar,
                                      suffix_embeds)                    # (B,1,N,N), (B,N)
        h_v, h_e = self._run([prefix_embeds, suffix_embeds],
                             self.vlm.rotary_emb(prefix_embeds, positions), mask,
                             need_prefix=return_prefix_hidden)
        if return_prefix_hidden:
            return self.vlm.norm(h_v), self.expert.norm(h_e)
        return self.expert.norm(h_e)

    def encode_prefix(self, prefix_embeds, prefix_mask, suffix_ar):
        """
        Run the VLM stream over the prefix once and cache its per-layer K/V.

        The prefix never sees the suffix, so its K/V in the joint pass are exactly those of the
        VLM stream alone. The cache also holds the mask, positions and RoPE of the suffix laid
        out by `suffix_ar` (S,), which every decode_suffix step reuses: they depend on the
        prefix's padding, never on the step.
        """
        mask, positions = pass_inputs(self, prefix_embeds, prefix_mask, suffix_ar)  # (B,1,N,N)
        p = prefix_embeds.shape[1]
        cos, sin = self.vlm.rotary_emb(prefix_embeds, positions)          # (B, N, D) each
        cache = PrefixCache(self.num_layers, mask[:, :, p:], positions[:, p:],
                            rope=(cos[:, p:], sin[:, p:]))
        self._run([prefix_embeds, None], (cos[:, :p], sin[:, :p]), mask[:, :, :p, :p], cache)
        return cache

    def decode_suffix(self, cache, suffix_embeds):
        """
        Expert stream over the suffix against the cached prefix K/V: (B, S, D_expert).

        The same arithmetic as the suffix rows of `forward`; writes only the suffix tail of
        the cache.
        """
        check_decode(self, cache, suffix_embeds)
        _, h_e = self._run([None, suffix_embeds], cache.suffix_rope, cache.suffix_mask, cache)
        return self.expert.norm(h_e)


__all__ = ['LlamaDeepFusion']

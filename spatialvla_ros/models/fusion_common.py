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
Transformer plumbing shared by the late- and deep-fusion backbones.

One function (`attention_inputs`) states how a sequence [prefix | suffix] is masked and
positioned; every pass of both plans (training, prefix prefill, suffix decode) and the grounding
stage take their mask and RoPE positions from it. `PrefixCache` holds the prefix K/V of one
observation, computed once and read by every denoising step. `build_transformer` builds a Llama
or Gemma decoder from a TransformerConfig.

Shapes: B batch, P prefix tokens, S suffix tokens, N = P + S.
"""

import torch
from transformers import Cache
from transformers import GemmaConfig
from transformers import GemmaModel
from transformers import LlamaConfig
from transformers import LlamaModel
from transformers.cache_utils import CacheLayerMixin
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

PREFIX_ATTENTION = ('causal', 'bidirectional')
ATTN_IMPLEMENTATIONS = ('sdpa', 'eager')  # both honour custom additive 4D masks
_ARCHITECTURES = {'llama': (LlamaConfig, LlamaModel), 'gemma': (GemmaConfig, GemmaModel)}
_SHAPE_FIELDS = ('hidden_size', 'num_hidden_layers', 'num_attention_heads',
                 'num_key_value_heads', 'head_dim', 'intermediate_size')


def build_transformer(cfg, attn_implementation='sdpa'):
    """
    Build a transformers LlamaModel / GemmaModel from a TransformerConfig.

    Random init from the typed config, or `from_pretrained(cfg.pretrained_path)` (local files,
    safetensors only, cast to torch's default dtype like a random init) when a path is given;
    the checkpoint's shape must match `cfg`.
    """
    if cfg.architecture not in _ARCHITECTURES:
        raise ValueError(f'architecture: got {cfg.architecture!r}, expected one of '
                         f'{sorted(_ARCHITECTURES)}')
    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise ValueError(f'attn_implementation: got {attn_implementation!r}, expected one of '
                         f'{ATTN_IMPLEMENTATIONS} (custom block masks)')
    config_cls, model_cls = _ARCHITECTURES[cfg.architecture]
    if cfg.pretrained_path:
        # dtype: the checkpoint's own (bf16 / fp16 as released) would otherwise be kept;
        # the model's parts share one dtype (fp32 master weights for training).
        model = model_cls.from_pretrained(cfg.pretrained_path, local_files_only=True,
                                          use_safetensors=True,
                                          attn_implementation=attn_implementation,
                                          dtype=torch.get_default_dtype())
        for name in _SHAPE_FIELDS:
            got = getattr(model.config, name)
            if got != getattr(cfg, name):
                raise ValueError(f'{cfg.pretrained_path}: checkpoint {name}={got} does not match '
                                 f'the config ({name}={getattr(cfg, name)})')
        return model
    config = config_cls(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size, num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads, head_dim=cfg.head_dim,
        rms_norm_eps=cfg.rms_norm_eps, max_position_embeddings=cfg.max_position_embeddings,
        rope_parameters={'rope_type': 'default', 'rope_theta': float(cfg.rope_theta)},
        attn_implementation=attn_implementation)
    return model_cls(config)


def restore_rope_fp32(model):
    """
    Recompute a model's RoPE inverse frequencies in float32 after a dtype cast.

    `module.to(torch.bfloat16)` casts every floating buffer, `rotary_emb.inv_freq` included;
    with 8-bit mantissas the rotation angles are off by radians a few hundred tokens in.
    """
    rotary = getattr(model, 'rotary_emb', None)
    if rotary is None or rotary.inv_freq.dtype == torch.float32:
        return
    if rotary.rope_type == 'default':
        inv_freq, _ = rotary.compute_default_rope_parameters(rotary.config)
    else:
        inv_freq, _ = ROPE_INIT_FUNCTIONS[rotary.rope_type](rotary.config)
    inv_freq = inv_freq.to(device=rotary.inv_freq.device, dtype=torch.float32)
    rotary.inv_freq = inv_freq
    rotary.original_inv_freq = inv_freq.clone()


def attention_inputs(prefix_mask, prefix_attention, dtype, suffix_ar=None):
    """
    Additive mask (B, 1, N, N) [query, key] and RoPE positions (B, N) of [prefix | suffix].

    The rule comes from one flag per token (openpi's `mask_ar`): True opens a new block, and a
    token attends to the valid tokens of its own and of earlier blocks. Every prefix token opens
    a block when the prefix is 'causal' (what LLaVA's Llama was trained with); the prefix is one
    block when 'bidirectional'. The suffix always opens a block after the prefix, so the prefix
    never sees it; `suffix_ar` lays out the suffix (see `suffix_ar_mask`: time and state form one
    block, the actions the next, so actions see time, state and each other, and the conditioning
    never sees the noisy actions). Padded prefix tokens (anywhere: [visual + pad | text + pad])
    are seen by no query; a padded query sees itself only, so no softmax row is empty (no NaN)
    and its output depends on nothing.

    Positions: valid prefix tokens are numbered 0, 1, ... in order (padding repeats its
    predecessor's number and is masked anyway); the suffix continues after the last valid prefix
    token, so a padded prefix gets exactly the positions of its compacted version.

    Inputs:
        prefix_mask: (B, P) bool, True for real tokens.
        prefix_attention: 'causal' or 'bidirectional'.
        dtype: floating dtype of the mask (0 where allowed, the dtype's minimum elsewhere; an
            additive mask serves transformers' 'sdpa' and 'eager' attention alike).
        suffix_ar: (S,) bool block flags of the suffix; None: no suffix.
    """
    assert prefix_attention in PREFIX_ATTENTION, prefix_attention  # checked by the backbones
    b, p = prefix_mask.shape
    device = prefix_mask.device
    if suffix_ar is None:
        suffix_ar = torch.zeros(0, dtype=torch.bool)
    s = suffix_ar.shape[0]
    ar = torch.cat([torch.full((p,), prefix_attention == 'causal', device=device),
                    suffix_ar.to(device=device, dtype=torch.bool)])           # (N,)
    ar[p:p + 1] = True                                       # the prefix never sees the suffix
    block = ar.long().cumsum(0)                                 # (N,) block index of each token
    valid = torch.cat([prefix_mask, prefix_mask.new_ones(b, s)], dim=1)     # (B, N)
    # [query, key]: the key's block is not after the query's, and both tokens are real ...
    allowed = (block[None, :] <= block[:, None]) & valid[:, None, :] & valid[:, :, None]
    allowed |= torch.eye(p + s, dtype=torch.bool, device=device)  # ... or it is itself (B,N,N)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)                      # (B, N, N)
    count = prefix_mask.long().cumsum(-1)                                    # (B, P)
    suffix_pos = prefix_mask.long().sum(-1, keepdim=True) + torch.arange(s, device=device)
    positions = torch.cat([(count - 1).clamp_min(0), suffix_pos], dim=1)     # (B, N)
    return mask[:, None], positions


class _PrefixKVLayer(CacheLayerMixin):
    """
    One layer's K/V buffer (B, kv_heads, P + S, head_dim), allocated by the prefill.

    The prefill writes the P prefix rows, which never change afterwards; each decode step
    overwrites the S suffix rows in place and attends over the whole buffer, so a step neither
    copies the prefix nor grows the cache (static shapes).
    """

    is_sliding = False
    is_compileable = False
    is_croppable = False

    def __init__(self, prefix_len, suffix_len):
        super().__init__()
        self.prefix_len, self.suffix_len = prefix_len, suffix_len

    def lazy_initialization(self, key_states, value_states):
        b, heads, _, dim = key_states.shape
        shape = (b, heads, self.prefix_len + self.suffix_len, dim)
        self.keys = key_states.new_empty(shape)
        self.values = value_states.new_empty(shape[:-1] + (value_states.shape[-1],))
        self.device, self.batch_size, self.is_initialized = key_states.device, b, True

    def update(self, key_states, value_states, *args, **kwargs):
        """Prefill (P rows): store and return them; decode (S rows): store, return all."""
        p = self.prefix_len
        if not self.is_initialized:
            assert key_states.shape[-2] == p, 'the first update is the prefix prefill'
            self.lazy_initialization(key_states, value_states)
            self.keys[:, :, :p].copy_(key_states)                # (B, K, P, D) into the head
            self.values[:, :, :p].copy_(value_states)
            return self.keys[:, :, :p], self.values[:, :, :p]
        assert key_states.shape[-2] == self.suffix_len, 'decode writes exactly S suffix rows'
        self.keys[:, :, p:].copy_(key_states)                    # (B, K, S, D) into the tail
        self.values[:, :, p:].copy_(value_states)
        return self.keys, self.values                            # (B, K, P + S, D)

    def get_mask_sizes(self, query_length):
        return self.prefix_len + query_length, 0

    def get_seq_length(self):
        return self.prefix_len

    def get_max_length(self):
        return -1


class PrefixCache(Cache):
    """
    Prefix K/V of one observation batch plus the mask and positions of the suffix decoded on it.

    A transformers Cache (a Llama/Gemma forward fills and reads it; deep fusion calls `update`
    the same way). `suffix_mask` (B, 1, S, P + S) and `suffix_positions` (B, S) are the suffix
    rows of `attention_inputs`, built once by encode_prefix; `suffix_rope` is the (cos, sin)
    of those positions, (B, S, D) each, when the backbone applies RoPE itself (deep fusion).
    Decoding overwrites only the suffix tail of each layer buffer: the cache is for one
    sequential sampling loop (not thread-safe) and for inference: autograd through a decode
    step only for guided sampling, which sets `differentiable` and calls `detach_` before
    every step, so a step's graph never reaches into the buffers' earlier steps.
    """

    def __init__(self, num_layers, suffix_mask, suffix_positions, rope=None):
        b, _, s, n = suffix_mask.shape
        super().__init__(layers=[_PrefixKVLayer(n - s, s) for _ in range(num_layers)])
        self.suffix_mask = suffix_mask
        self.suffix_positions = suffix_positions
        self.suffix_rope = rope
        self.differentiable = False

    def detach_(self):
        """Drop the autograd history of the layer buffers (same storage, no copy)."""
        for layer in self.layers:
            if layer.is_initialized:
                layer.keys, layer.values = layer.keys.detach(), layer.values.detach()

    @property
    def batch(self):
        return self.suffix_mask.shape[0]

    @property
    def suffix_len(self):
        return self.suffix_mask.shape[2]


def check_backbone(vlm, prefix_attention):
    """Raise ValueError unless a backbone can run `vlm` with the fusion mask."""
    if prefix_attention not in PREFIX_ATTENTION:
        raise ValueError(f'prefix_attention: got {prefix_attention!r}, expected one of '
                         f'{PREFIX_ATTENTION}')
    impl = vlm.config._attn_implementation
    if impl not in ATTN_IMPLEMENTATIONS:
        raise ValueError(f'vlm.config._attn_implementation: got {impl!r}, expected one of '
                         f'{ATTN_IMPLEMENTATIONS} (the fusion block mask is a custom 4D mask)')


def _check_suffix(suffix_embeds, shape, dtype):
    if tuple(suffix_embeds.shape) != shape:
        raise ValueError(f'suffix_embeds: got shape {tuple(suffix_embeds.shape)}, expected '
                         f'{shape} (B, S, expert width)')
    if suffix_embeds.dtype != dtype:
        raise TypeError(f'suffix_embeds: got dtype {suffix_embeds.dtype}, expected {dtype} '
                        '(the prefix dtype)')


def pass_inputs(backbone, prefix_embeds, prefix_mask, suffix_ar, suffix_embeds=None):
    """
    Check the inputs of a backbone's forward / encode_prefix; give (mask, positions).

    The one boundary check of both backbones (ValueError / TypeError naming the argument),
    then `attention_inputs` for [prefix | suffix laid out by suffix_ar].
    """
    width = backbone.vlm.config.hidden_size
    if prefix_embeds.ndim != 3 or prefix_embeds.shape[-1] != width:
        raise ValueError(f'prefix_embeds: got shape {tuple(prefix_embeds.shape)}, expected '
                         f'(B, P, {width})')
    if prefix_mask.dtype != torch.bool:
        raise TypeError(f'prefix_mask: got dtype {prefix_mask.dtype}, expected torch.bool')
    if tuple(prefix_mask.shape) != tuple(prefix_embeds.shape[:2]):
        raise ValueError(f'prefix_mask: got shape {tuple(prefix_mask.shape)}, expected '
                         f'{tuple(prefix_embeds.shape[:2])} (B, P)')
    if suffix_ar.ndim != 1 or suffix_ar.dtype != torch.bool:
        raise ValueError(f'suffix_ar: got shape {tuple(suffix_ar.shape)} dtype '
                         f'{suffix_ar.dtype}, expected (S,) torch.bool (one block flag per '
                         'suffix token)')
    if suffix_embeds is not None:
        shape = (prefix_embeds.shape[0], suffix_ar.shape[0], backbone.expert_hidden_size)
        _check_suffix(suffix_embeds, shape, prefix_embeds.dtype)
    return attention_inputs(prefix_mask, backbone.prefix_attention, prefix_embeds.dtype,
                            suffix_ar)


def check_decode(backbone, cache, suffix_embeds):
    """Raise unless `suffix_embeds` can be decoded on `cache` (inference only, its layout)."""
    if not isinstance(cache, PrefixCache):
        raise TypeError(f'cache: got {type(cache).__name__}, expected the PrefixCache returned '
                        'by encode_prefix')
    if torch.is_grad_enabled() and not cache.differentiable:
        raise RuntimeError('decode_suffix is inference-only (it reuses the prefix cache in '
                           'place): call it under torch.inference_mode() or torch.no_grad(); '
                           'use forward() for training')
    shape = (cache.batch, cache.suffix_len, backbone.expert_hidden_size)
    _check_suffix(suffix_embeds, shape, cache.suffix_mask.dtype)


__all__ = [
    'ATTN_IMPLEMENTATIONS',
    'PREFIX_ATTENTION',
    'PrefixCache',
    'attention_inputs',
    'build_transformer',
    'restore_rope_fp32',
]

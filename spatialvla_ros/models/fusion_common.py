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

One place defines how a sequence [prefix | suffix] is masked and positioned, how a Llama or Gemma
decoder is built from a TransformerConfig, and how the prefix K/V is cached once per observation
and reused by every denoising step.

Attention rule (both plans): prefix tokens never see the suffix; inside the prefix attention is
causal (what LLaVA's Llama was trained with) or bidirectional; padded prefix tokens are invisible
to every query (padding may sit in the middle: [visual + pad | text + pad]); suffix token i sees
all valid prefix tokens and suffix token j iff blocks[j] <= blocks[i]. A padded prefix query
attends to itself only, so no softmax row is empty (no NaN) and its output depends on nothing.

RoPE positions: valid prefix tokens are numbered 0, 1, ... in order (padding takes its
predecessor's number and is masked anyway); the suffix continues after the last valid prefix
token. A padded prefix therefore gives exactly the positions of its compacted version.
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


def check_attn_implementation(model, name):
    impl = model.config._attn_implementation
    if impl not in ATTN_IMPLEMENTATIONS:
        raise ValueError(f'{name}.config._attn_implementation: got {impl!r}, expected one of '
                         f'{ATTN_IMPLEMENTATIONS} (the fusion block mask is a custom 4D mask)')


def check_prefix_attention(prefix_attention):
    if prefix_attention not in PREFIX_ATTENTION:
        raise ValueError(f'prefix_attention: got {prefix_attention!r}, expected one of '
                         f'{PREFIX_ATTENTION}')


def check_prefix(prefix_embeds, prefix_mask, width):
    """Raise ValueError/TypeError naming the argument when the prefix is malformed."""
    if prefix_embeds.ndim != 3 or prefix_embeds.shape[-1] != width:
        raise ValueError(f'prefix_embeds: got shape {tuple(prefix_embeds.shape)}, expected '
                         f'(B, P, {width})')
    if prefix_mask.dtype != torch.bool:
        raise TypeError(f'prefix_mask: got dtype {prefix_mask.dtype}, expected torch.bool')
    if tuple(prefix_mask.shape) != tuple(prefix_embeds.shape[:2]):
        raise ValueError(f'prefix_mask: got shape {tuple(prefix_mask.shape)}, expected '
                         f'{tuple(prefix_embeds.shape[:2])} (B, P)')


def check_suffix(suffix_embeds, suffix_blocks, batch, width):
    if suffix_embeds.ndim != 3 or suffix_embeds.shape[0] != batch \
            or suffix_embeds.shape[-1] != width:
        raise ValueError(f'suffix_embeds: got shape {tuple(suffix_embeds.shape)}, expected '
                         f'({batch}, S, {width})')
    if suffix_blocks.ndim != 1 or suffix_blocks.shape[0] != suffix_embeds.shape[1]:
        raise ValueError(f'suffix_blocks: got shape {tuple(suffix_blocks.shape)}, expected '
                         f'({suffix_embeds.shape[1]},) (one block id per suffix token)')
    if suffix_blocks.is_floating_point() or suffix_blocks.dtype == torch.bool:
        raise TypeError(f'suffix_blocks: got dtype {suffix_blocks.dtype}, expected an integer '
                        'dtype (torch.long)')


def _prefix_rows(prefix_mask, prefix_attention):
    """Bool (B, P, P): which prefix keys each prefix query may see."""
    p = prefix_mask.shape[1]
    allowed = prefix_mask[:, None, :] & prefix_mask[:, :, None]            # (B, P, P) valid q, k
    if prefix_attention == 'causal':
        allowed = allowed & torch.ones(p, p, dtype=torch.bool, device=prefix_mask.device).tril()
    return allowed | torch.eye(p, dtype=torch.bool, device=prefix_mask.device)


def _suffix_rows(prefix_mask, suffix_blocks):
    """Bool (B, S, P + S): all valid prefix keys, then suffix keys of blocks <= own block."""
    s = suffix_blocks.shape[0]
    blocks = suffix_blocks.to(prefix_mask.device)
    to_prefix = prefix_mask[:, None, :].expand(-1, s, -1)                  # (B, S, P)
    to_suffix = blocks[None, :] <= blocks[:, None]                         # (S, S) [query, key]
    return torch.cat([to_prefix, to_suffix.expand(prefix_mask.shape[0], -1, -1)], dim=2)


def attention_allowed(prefix_mask, suffix_blocks, prefix_attention='causal'):
    """Bool (B, P + S, P + S) [query, key] block mask of the fusion rule (module docstring)."""
    check_prefix_attention(prefix_attention)
    b, p = prefix_mask.shape
    s = suffix_blocks.shape[0]
    prefix_rows = torch.cat([_prefix_rows(prefix_mask, prefix_attention),
                             prefix_mask.new_zeros(b, p, s)], dim=2)        # (B, P, P + S)
    return torch.cat([prefix_rows, _suffix_rows(prefix_mask, suffix_blocks)], dim=1)


def additive_mask(allowed, dtype):
    """
    Bool (B, Q, K) -> additive (B, 1, Q, K): 0 where allowed, the dtype's minimum elsewhere.

    Additive masks work with both the 'eager' (adds the mask) and 'sdpa' attention paths.
    """
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min)[:, None]


def build_attention_mask(prefix_mask, suffix_blocks, prefix_attention, dtype):
    """Additive 4D mask (B, 1, P + S, P + S) for one pass over [prefix | suffix]."""
    return additive_mask(attention_allowed(prefix_mask, suffix_blocks, prefix_attention), dtype)


def prefix_attention_mask(prefix_mask, prefix_attention, dtype):
    """Additive 4D mask (B, 1, P, P) for the prefix alone (what encode_prefix runs)."""
    check_prefix_attention(prefix_attention)
    return additive_mask(_prefix_rows(prefix_mask, prefix_attention), dtype)


def position_ids(prefix_mask, suffix_len):
    """Return RoPE positions (B, P + S): valid prefix tokens 0..n-1, then the suffix from n."""
    prefix_pos = (prefix_mask.long().cumsum(-1) - 1).clamp_min(0)          # (B, P)
    start = prefix_mask.long().sum(-1, keepdim=True)                      # (B, 1)
    suffix_pos = start + torch.arange(suffix_len, device=prefix_mask.device)
    return torch.cat([prefix_pos, suffix_pos], dim=1)


class _PrefixKVLayer(CacheLayerMixin):
    """
    One layer's K/V: prefix rows written once, a suffix tail overwritten by each step.

    The buffer is (B, kv_heads, P + S, head_dim). The first P rows never change after
    encode_prefix; each decode step writes its S suffix rows in place and attends over the
    whole buffer, so a step neither copies the prefix nor grows the cache.
    """

    is_sliding = False
    is_compileable = False
    is_croppable = False

    def __init__(self, suffix_capacity=None):
        super().__init__()
        self.prefix_len = 0
        self.suffix_capacity = suffix_capacity

    def lazy_initialization(self, key_states, value_states):
        self.device = key_states.device
        self.batch_size = key_states.shape[0]
        self.is_initialized = True

    def _store_prefix(self, key_states, value_states):
        self.lazy_initialization(key_states, value_states)
        self.prefix_len = key_states.shape[-2]
        if not self.suffix_capacity:  # keep the tensors as they are; grown at the first step
            self.keys, self.values = key_states, value_states
            return self.keys, self.values
        self._allocate(key_states, value_states, self.suffix_capacity)
        return self.keys[:, :, :self.prefix_len], self.values[:, :, :self.prefix_len]

    def _allocate(self, prefix_keys, prefix_values, suffix_len):
        # One-time allocation of (B, kv_heads, P + S, head_dim); the prefix is copied once.
        p = self.prefix_len
        shape = (*prefix_keys.shape[:2], p + suffix_len, prefix_keys.shape[-1])
        keys = prefix_keys.new_empty(shape)
        values = prefix_values.new_empty(shape[:-1] + (prefix_values.shape[-1],))
        keys[:, :, :p].copy_(prefix_keys[:, :, :p])
        values[:, :, :p].copy_(prefix_values[:, :, :p])
        self.keys, self.values = keys, values

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            return self._store_prefix(key_states, value_states)
        p = self.prefix_len
        if self.keys.shape[-2] != p + key_states.shape[-2]:
            self._allocate(self.keys, self.values, key_states.shape[-2])
        self.keys[:, :, p:].copy_(key_states)      # (B, kv_heads, S, head_dim) into the tail
        self.values[:, :, p:].copy_(value_states)
        return self.keys, self.values

    def get_mask_sizes(self, query_length):
        return self.prefix_len + query_length, 0

    def get_seq_length(self):
        return self.prefix_len

    def get_max_length(self):
        return -1


class PrefixCache(Cache):
    """
    Prefix K/V of one observation batch, computed once and shared by all denoising steps.

    A transformers Cache (so a Llama/Gemma forward can fill and read it) that also remembers the
    prefix mask; `decode_inputs` builds the suffix mask and positions once per suffix layout.
    Decoding overwrites only the suffix tail of each layer buffer: the cache is for one
    sequential sampling loop (not thread-safe) and for inference (no autograd through it).
    """

    def __init__(self, num_layers, prefix_mask, suffix_len=None):
        super().__init__(layers=[_PrefixKVLayer(suffix_len) for _ in range(num_layers)])
        self.prefix_mask = prefix_mask                     # (B, P) bool
        self.num_valid = prefix_mask.long().sum(-1)        # (B,) valid prefix tokens
        self._memo = None

    @property
    def prefix_len(self):
        return self.prefix_mask.shape[1]

    @property
    def batch(self):
        return self.prefix_mask.shape[0]

    def decode_inputs(self, suffix_blocks, dtype):
        """(additive mask (B, 1, S, P + S), position ids (B, S)) for a suffix; memoised."""
        memo = self._memo
        if memo is not None and memo[0] is suffix_blocks and memo[1] == dtype:
            return memo[2], memo[3]
        s = suffix_blocks.shape[0]
        mask = additive_mask(_suffix_rows(self.prefix_mask, suffix_blocks), dtype)
        positions = self.num_valid[:, None] + torch.arange(s, device=self.prefix_mask.device)
        self._memo = (suffix_blocks, dtype, mask, positions)
        return mask, positions


def check_decode_mode(cache, name='decode_suffix'):
    if not isinstance(cache, PrefixCache):
        raise TypeError(f'cache: got {type(cache).__name__}, expected the PrefixCache returned '
                        'by encode_prefix')
    if torch.is_grad_enabled():
        raise RuntimeError(f'{name} is inference-only (it reuses the prefix cache in place): '
                           'call it under torch.inference_mode() or torch.no_grad(); use '
                           'forward() for training')


__all__ = [
    'ATTN_IMPLEMENTATIONS',
    'PREFIX_ATTENTION',
    'PrefixCache',
    'additive_mask',
    'attention_allowed',
    'build_attention_mask',
    'build_transformer',
    'position_ids',
    'prefix_attention_mask',
    'restore_rope_fp32',
]

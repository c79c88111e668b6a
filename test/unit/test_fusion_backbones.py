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
Fusion backbones (late Gemma, late Llama, deep) against transformers and hand references.

All models are the tiny configs of config/*.yaml with random weights rescaled to unit gain, so
that every token interaction is large enough for a 1e-5 comparison to be meaningful.
"""

import dataclasses
import math
import os

import pytest
from repo_paths import REPO_ROOT
from spatialvla_ros.models.configuration_spatialvla import PLANS
from spatialvla_ros.models.configuration_spatialvla import SpatialVLAConfig
from spatialvla_ros.models.fusion_common import attention_inputs
from spatialvla_ros.models.fusion_common import build_transformer
from spatialvla_ros.models.modeling_deep_fusion import LlamaDeepFusion
from spatialvla_ros.models.modeling_late_fusion import LateFusionBackbone
from spatialvla_ros.models.modeling_spatialvla import ActionOutputHead
from spatialvla_ros.models.modeling_spatialvla import ActionSuffixEmbedding
from spatialvla_ros.models.modeling_spatialvla import build_fusion_backbone
from spatialvla_ros.models.modeling_spatialvla import suffix_ar_mask
import torch
import torch.nn.functional as F

CONFIG_DIR = os.path.join(REPO_ROOT, 'config')
TOL = 1e-5


def _cfg(plan):
    return SpatialVLAConfig.from_yaml(os.path.join(CONFIG_DIR, f'{plan}.yaml'))


def _randomize(module, seed):
    """Unit-gain random weights (HF's std 0.02 init makes attention nearly uniform)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))
            else:  # norms keep their centre (1 for Llama, 0 for Gemma's 1 + w), biases move
                p.add_(0.2 * torch.randn(p.shape, generator=g))
    return module


def _backbone(plan, cfg=None, seed=0):
    cfg = cfg or _cfg(plan)
    torch.manual_seed(seed)
    vlm = build_transformer(cfg.language_model)
    return _randomize(build_fusion_backbone(cfg, vlm), seed + 1).eval()


def _inputs(dv, de, seed=1, chunk=10):
    g = torch.Generator().manual_seed(seed)
    b, p = 2, 12
    prefix = torch.randn(b, p, dv, generator=g)
    mask = torch.ones(b, p, dtype=torch.bool)
    mask[0, 4:6] = False   # padding in the middle ([visual + pad | text + pad]) ...
    mask[0, 11] = False    # ... and at the end
    mask[1, 8:] = False
    suffix = torch.randn(b, 2 + chunk, de, generator=g)
    return prefix, mask, suffix, suffix_ar_mask(chunk)


def _with_prefix_attention(plan, prefix_attention):
    cfg = _cfg(plan)
    return dataclasses.replace(cfg, language_model=dataclasses.replace(
        cfg.language_model, prefix_attention=prefix_attention))


def _inputs_for(bb, seed=1):
    return _inputs(bb.vlm.config.hidden_size, bb.expert_hidden_size, seed)


# ----------------------------------------------------------------- references written here
def _ref_allowed(prefix_mask, suffix_len, bidirectional):
    """
    [query, key] rule written out token by token for [prefix | time, state, actions].

    Prefix queries see valid prefix keys (earlier ones only when causal); time and state see
    the valid prefix and each other; actions see the valid prefix and the whole suffix; a
    padded prefix query sees itself.
    """
    b, p = prefix_mask.shape
    n = p + suffix_len
    allowed = torch.zeros(b, n, n, dtype=torch.bool)
    for s in range(b):
        for i in range(n):
            for j in range(n):
                key_valid = j < p and bool(prefix_mask[s, j])
                if i < p:
                    ok = key_valid and bool(prefix_mask[s, i]) and (bidirectional or j <= i)
                elif i < p + 2:  # time or state
                    ok = key_valid or p <= j < p + 2
                else:            # an action
                    ok = key_valid or j >= p
                allowed[s, i, j] = ok or i == j
    return allowed


def _ref_positions(prefix_mask, s):
    rows = []
    for m in prefix_mask.tolist():
        pos, count = [], 0
        for valid in m:
            pos.append(max(count - 1, 0) if not valid else count)
            count += int(valid)
        rows.append(pos + list(range(count, count + s)))
    return torch.tensor(rows)


def _additive(allowed, dtype=torch.float32):
    return torch.where(allowed, 0.0, torch.finfo(dtype).min).to(dtype)[:, None]


def _rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _rope(x, pos, theta):
    """Rotate pairs (i, i + d/2) by pos * theta^(-2i/d); x (B, h, L, d), pos (B, L)."""
    d = x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    ang = pos.double()[:, None, :, None] * inv                    # (B, 1, L, d/2)
    x1, x2 = x[..., :d // 2], x[..., d // 2:]
    return torch.cat([x1 * ang.cos() - x2 * ang.sin(), x2 * ang.cos() + x1 * ang.sin()], -1)


def _manual_deep_fusion(vlm, expert, prefix, prefix_mask, suffix, suffix_ar, bidirectional):
    """Float64 lockstep reference: own Q/K/V per stream, one masked softmax over both."""
    c = vlm.config
    heads, kv, d, eps = c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.rms_norm_eps
    theta = c.rope_parameters['rope_theta']
    allowed = _ref_allowed(prefix_mask, len(suffix_ar), bidirectional)
    pos = _ref_positions(prefix_mask, len(suffix_ar))
    b, p = prefix_mask.shape

    def w(t):
        return t.detach().double()

    hidden = [prefix.double(), suffix.double()]
    for lv, le in zip(vlm.layers, expert.layers):
        qs, ks, vs = [], [], []
        for layer, h in zip((lv, le), hidden):
            x = _rms(h, w(layer.input_layernorm.weight), eps)
            a = layer.self_attn
            qs.append((x @ w(a.q_proj.weight).T).view(b, -1, heads, d).transpose(1, 2))
            ks.append((x @ w(a.k_proj.weight).T).view(b, -1, kv, d).transpose(1, 2))
            vs.append((x @ w(a.v_proj.weight).T).view(b, -1, kv, d).transpose(1, 2))
        q = _rope(torch.cat(qs, 2), pos, theta)
        k = _rope(torch.cat(ks, 2), pos, theta).repeat_interleave(heads // kv, dim=1)
        v = torch.cat(vs, 2).repeat_interleave(heads // kv, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(d)
        scores = scores.masked_fill(~allowed[:, None], float('-inf'))
        out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, q.shape[2], heads * d)
        for idx, (layer, part) in enumerate(zip((lv, le), (out[:, :p], out[:, p:]))):
            h = hidden[idx] + part @ w(layer.self_attn.o_proj.weight).T
            x = _rms(h, w(layer.post_attention_layernorm.weight), eps)
            m = layer.mlp
            up = F.silu(x @ w(m.gate_proj.weight).T) * (x @ w(m.up_proj.weight).T)
            hidden[idx] = h + up @ w(m.down_proj.weight).T
    return _rms(hidden[0], w(vlm.norm.weight), eps), _rms(hidden[1], w(expert.norm.weight), eps)


def _close(a, b, tol=TOL):
    assert a.shape == b.shape
    diff = float((a.double() - b.double()).abs().max())
    assert diff <= tol, f'max abs diff {diff:.3g} > {tol}'


# ----------------------------------------------------------------- mask, positions, suffix
def test_block_mask_and_positions_follow_the_rule():
    prefix_mask = torch.tensor([[True, False, True, True], [True, True, True, False]])
    suffix_ar = suffix_ar_mask(1)
    assert suffix_ar.tolist() == [True, False, True] and suffix_ar.dtype == torch.bool
    for bidirectional in (False, True):
        kind = 'bidirectional' if bidirectional else 'causal'
        mask, _ = attention_inputs(prefix_mask, kind, torch.float32, suffix_ar)
        assert mask.shape == (2, 1, 7, 7)
        assert torch.equal(mask, _additive(_ref_allowed(prefix_mask, 3, bidirectional)))
    mask, positions = attention_inputs(prefix_mask, 'causal', torch.bfloat16, suffix_ar)
    assert mask.dtype == torch.bfloat16
    got = (mask[0, 0] == 0).int()
    assert got.tolist() == [[1, 0, 0, 0, 0, 0, 0],
                            [0, 1, 0, 0, 0, 0, 0],   # padded query: itself only
                            [1, 0, 1, 0, 0, 0, 0],
                            [1, 0, 1, 1, 0, 0, 0],
                            [1, 0, 1, 1, 1, 1, 0],   # time/state: block 0 only
                            [1, 0, 1, 1, 1, 1, 0],
                            [1, 0, 1, 1, 1, 1, 1]]   # actions see everything valid
    assert positions.tolist() == [[0, 0, 1, 2, 3, 4, 5],
                                  [0, 1, 2, 2, 3, 4, 5]]
    assert torch.equal(positions, _ref_positions(prefix_mask, 3))
    prefix_only, prefix_positions = attention_inputs(prefix_mask, 'causal', torch.float32)
    assert torch.equal(prefix_only, _additive(_ref_allowed(prefix_mask, 0, False)))
    assert torch.equal(prefix_positions, positions[:, :4])


def test_suffix_embedding_and_head():
    torch.manual_seed(0)
    emb = ActionSuffixEmbedding(action_dim=8, state_dim=7, width=32)
    actions, state, t = torch.randn(2, 10, 8), torch.randn(2, 7), torch.tensor([0.2, 0.9])
    tokens = emb(actions, t, state)
    assert tokens.shape == (2, 12, 32)
    other_t = emb(actions, torch.tensor([0.5, 0.9]), state)
    assert not torch.allclose(other_t[0, 0], tokens[0, 0])        # time token follows t
    assert torch.equal(other_t[:, 1:], tokens[:, 1:]) and torch.equal(other_t[1], tokens[1])
    other_s = emb(actions, t, state + 1)
    assert torch.equal(other_s[:, [0, *range(2, 12)]], tokens[:, [0, *range(2, 12)]])
    head = ActionOutputHead(32, 8)
    assert head(torch.randn(2, 12, 32)).shape == (2, 10, 8)
    with pytest.raises(ValueError, match='state'):
        emb(actions, t, torch.randn(2, 8))


# ----------------------------------------------------------------- deep fusion vs references
@pytest.mark.parametrize('prefix_attention', ['causal', 'bidirectional'])
def test_deep_vlm_stream_equals_llama_on_prefix(prefix_attention):
    bb = _backbone('deep_fusion', _with_prefix_attention('deep_fusion', prefix_attention))
    prefix, mask, suffix, suffix_ar = _inputs_for(bb)
    with torch.no_grad():
        prefix_out, _ = bb(prefix, mask, suffix, suffix_ar, return_prefix_hidden=True)
        pos = _ref_positions(mask, 0)
        allowed = _ref_allowed(mask, 0, prefix_attention == 'bidirectional')
        ref = bb.vlm(inputs_embeds=prefix, attention_mask=_additive(allowed),
                     position_ids=pos, use_cache=False).last_hidden_state
        _close(prefix_out, ref)
        if prefix_attention == 'causal':  # transformers' own causal + padding mask
            ref_hf = bb.vlm(inputs_embeds=prefix, attention_mask=mask.long(), position_ids=pos,
                            use_cache=False).last_hidden_state
            _close(prefix_out[mask], ref_hf[mask])


@pytest.mark.parametrize('prefix_attention', ['causal', 'bidirectional'])
def test_deep_identical_copy_equals_one_llama_over_concatenation(prefix_attention):
    lm = _cfg('deep_fusion').language_model
    expert_cfg = dataclasses.replace(lm, vocab_size=8)  # same shape as the VLM
    torch.manual_seed(0)
    vlm = _randomize(build_transformer(lm), 1)
    bb = LlamaDeepFusion(vlm, expert_cfg, prefix_attention).eval()
    bb.expert.layers.load_state_dict(vlm.layers.state_dict())  # the identical-copy expert
    bb.expert.norm.load_state_dict(vlm.norm.state_dict())
    prefix, mask, suffix, suffix_ar = _inputs(lm.hidden_size, lm.hidden_size)
    with torch.no_grad():
        prefix_out, suffix_out = bb(prefix, mask, suffix, suffix_ar, return_prefix_hidden=True)
        allowed = _ref_allowed(mask, len(suffix_ar), prefix_attention == 'bidirectional')
        ref = vlm(inputs_embeds=torch.cat([prefix, suffix], 1), attention_mask=_additive(allowed),
                  position_ids=_ref_positions(mask, len(suffix_ar)),
                  use_cache=False).last_hidden_state
    p = prefix.shape[1]
    _close(suffix_out, ref[:, p:])
    _close(prefix_out, ref[:, :p])


def test_deep_narrow_expert_equals_manual_joint_attention():
    bb = _backbone('deep_fusion')
    assert bb.expert_hidden_size < bb.vlm.config.hidden_size          # the narrower preset
    assert bb.vlm.config.num_key_value_heads < bb.vlm.config.num_attention_heads  # GQA
    prefix, mask, suffix, suffix_ar = _inputs_for(bb)
    with torch.no_grad():
        prefix_out, suffix_out = bb(prefix, mask, suffix, suffix_ar, return_prefix_hidden=True)
    ref_prefix, ref_suffix = _manual_deep_fusion(bb.vlm, bb.expert, prefix, mask, suffix,
                                                 suffix_ar, bidirectional=False)
    _close(suffix_out, ref_suffix)
    _close(prefix_out[mask], ref_prefix[mask])


@pytest.mark.parametrize('plan', ['late_gemma', 'late_llama'])
def test_late_expert_equals_transformers_one_pass(plan):
    bb = _backbone(plan)
    prefix, mask, suffix, suffix_ar = _inputs_for(bb)
    with torch.no_grad():
        out = bb(prefix, mask, suffix, suffix_ar)
        # Context from transformers' own causal + padding mask (padded rows differ there, but
        # they are invisible keys in the expert), then one expert pass over [context | suffix].
        pos = _ref_positions(mask, len(suffix_ar))
        vlm_out = bb.vlm(inputs_embeds=prefix, attention_mask=mask.long(),
                         position_ids=pos[:, :prefix.shape[1]], use_cache=False)
        context = bb.context_proj(vlm_out.last_hidden_state)
        ref = bb.expert(inputs_embeds=torch.cat([context, suffix], 1),
                        attention_mask=_additive(_ref_allowed(mask, len(suffix_ar), False)),
                        position_ids=pos, use_cache=False).last_hidden_state
    _close(out, ref[:, prefix.shape[1]:])


# ----------------------------------------------------------------- common interface, 3 plans
@pytest.mark.parametrize('plan', PLANS)
@pytest.mark.parametrize('prefix_attention', ['causal', 'bidirectional'])
def test_cached_decode_equals_forward_and_leaves_prefix_untouched(plan, prefix_attention):
    bb = _backbone(plan, _with_prefix_attention(plan, prefix_attention))
    prefix, mask, suffix, suffix_ar = _inputs_for(bb)
    other = torch.randn(suffix.shape, generator=torch.Generator().manual_seed(9))
    with torch.inference_mode():
        full = bb(prefix, mask, suffix, suffix_ar)
        cache = bb.encode_prefix(prefix, mask, suffix_ar)
        first = bb.decode_suffix(cache, suffix)
        p = prefix.shape[1]
        snapshot = [(layer.keys[:, :, :p].clone(), layer.values[:, :, :p].clone())
                    for layer in cache.layers]
        buffers = [layer.keys.data_ptr() for layer in cache.layers]
        other_out = bb.decode_suffix(cache, other)
        again = bb.decode_suffix(cache, suffix)
        full_other = bb(prefix, mask, other, suffix_ar)
    _close(first, full)
    _close(other_out, full_other)
    assert torch.equal(first, again)                      # no state leaks between steps
    assert cache.get_seq_length() == p                    # the suffix is never appended
    for layer, (k, v), ptr in zip(cache.layers, snapshot, buffers):
        assert torch.equal(layer.keys[:, :, :p], k) and torch.equal(layer.values[:, :, :p], v)
        assert layer.keys.shape[2] == p + suffix.shape[1]
        assert layer.keys.data_ptr() == ptr               # same buffer every step (no copy)


@pytest.mark.parametrize('plan', PLANS)
def test_prefix_never_sees_the_suffix(plan):
    bb = _backbone(plan)
    prefix, mask, suffix, suffix_ar = _inputs_for(bb)
    with torch.no_grad():
        pre_a, suf_a = bb(prefix, mask, suffix, suffix_ar, return_prefix_hidden=True)
        pre_b, suf_b = bb(prefix, mask, suffix * -2.0 + 1.0, suffix_ar, return_prefix_hidden=True)
        # Actions never reach the time/state tokens (block 0 does not see block 1).
        changed = suffix.clone()
        changed[:, 2:] += 3.0
        _, suf_c = bb(prefix, mask, changed, suffix_ar, return_prefix_hidden=True)
    _close(pre_a, pre_b, 1e-6)
    assert float((suf_a - suf_b).abs().max()) > 1e-2
    _close(suf_c[:, :2], suf_a[:, :2], 1e-6)
    assert bool(torch.isfinite(pre_a).all()) and bool(torch.isfinite(suf_a).all())


@pytest.mark.parametrize('plan', PLANS)
def test_padded_prefix_tokens_have_no_effect(plan):
    bb = _backbone(plan)
    prefix, mask, suffix, suffix_ar = _inputs_for(bb)
    garbage = prefix.clone()
    garbage[~mask] = 50.0 * torch.randn(int((~mask).sum()), prefix.shape[-1])
    with torch.no_grad():
        out = bb(prefix, mask, suffix, suffix_ar)
        out_garbage = bb(garbage, mask, suffix, suffix_ar)
        compact = prefix[0:1, mask[0]]                    # the same tokens without padding
        out_compact = bb(compact, torch.ones(compact.shape[:2], dtype=torch.bool),
                         suffix[0:1], suffix_ar)
    with torch.inference_mode():
        decoded = bb.decode_suffix(bb.encode_prefix(garbage, mask, suffix_ar), suffix)
    _close(out_garbage, out, 1e-6)
    _close(decoded, out)
    _close(out_compact, out[0:1])
    assert float((out[0] - out[1]).abs().max()) > 1e-2    # the prefix does matter


def _mha_state(state, shapes):
    """Rewrite k/v projections of GQA models as the equivalent multi-head ones."""
    out = {}
    for key, value in state.items():
        if key.endswith(('k_proj.weight', 'v_proj.weight')):
            heads, kv, d = shapes[key.split('.')[0]]
            value = value.view(kv, d, -1).repeat_interleave(heads // kv, dim=0).reshape(
                heads * d, -1)
        out[key] = value
    return out


@pytest.mark.parametrize('plan', PLANS)
def test_gqa_equals_the_expanded_multi_head_model(plan):
    cfg = _cfg(plan)
    lm, ex = cfg.language_model, cfg.expert
    assert lm.num_key_value_heads < lm.num_attention_heads
    assert ex.num_key_value_heads < ex.num_attention_heads
    bb = _backbone(plan, cfg)
    mha_cfg = dataclasses.replace(
        cfg, language_model=dataclasses.replace(lm, num_key_value_heads=lm.num_attention_heads),
        expert=dataclasses.replace(ex, num_key_value_heads=ex.num_attention_heads))
    mha = build_fusion_backbone(mha_cfg, build_transformer(mha_cfg.language_model)).eval()
    shapes = {'vlm': (lm.num_attention_heads, lm.num_key_value_heads, lm.head_dim),
              'expert': (ex.num_attention_heads, ex.num_key_value_heads, ex.head_dim)}
    mha.load_state_dict(_mha_state(bb.state_dict(), shapes))
    prefix, mask, suffix, suffix_ar = _inputs_for(bb)
    with torch.inference_mode():
        _close(mha(prefix, mask, suffix, suffix_ar), bb(prefix, mask, suffix, suffix_ar))
        got = bb.decode_suffix(bb.encode_prefix(prefix, mask, suffix_ar), suffix)
        want = mha.decode_suffix(mha.encode_prefix(prefix, mask, suffix_ar), suffix)
        _close(got, want)
    # Backward: a shared K/V head gets the sum of the gradients of its expanded copies.
    weight = torch.randn(suffix.shape, generator=torch.Generator().manual_seed(3))
    for model in (bb, mha):
        (model(prefix, mask, suffix, suffix_ar) * weight).sum().backward()
    mha_grads = dict(mha.named_parameters())
    reached = [key for key, param in bb.named_parameters() if param.grad is not None]
    assert reached == [key for key in mha_grads if mha_grads[key].grad is not None]
    assert any(key.endswith('k_proj.weight') for key in reached)
    for key in reached:
        param, want = bb.get_parameter(key), mha_grads[key].grad
        if key.endswith(('k_proj.weight', 'v_proj.weight')):
            heads, kv, d = shapes[key.split('.')[0]]
            want = want.view(kv, heads // kv, d, -1).sum(1).reshape(param.shape)
        _close(param.grad, want)


@pytest.mark.parametrize('plan', PLANS)
def test_training_pass_reaches_both_streams_and_bf16_runs(plan):
    bb = _backbone(plan).train()
    prefix, mask, suffix, suffix_ar = _inputs_for(bb)
    bb(prefix, mask, suffix, suffix_ar).pow(2).mean().backward()
    grads = [bb.vlm.layers[0].self_attn.q_proj.weight, bb.expert.layers[-1].mlp.up_proj.weight,
             bb.expert.layers[0].self_attn.k_proj.weight]
    if isinstance(bb, LateFusionBackbone):
        grads.append(bb.context_proj.weight)
    for param in grads:
        assert param.grad is not None and float(param.grad.abs().max()) > 0
    bf16 = bb.eval().to(torch.bfloat16)
    fresh = build_transformer(_cfg(plan).language_model).rotary_emb.inv_freq
    ropes = [bf16.vlm.rotary_emb]  # deep fusion's expert uses the VLM's RoPE
    if isinstance(bb, LateFusionBackbone):
        ropes.append(bf16.expert.rotary_emb)
    for rope in ropes:                                   # RoPE frequencies stay float32
        assert rope.inv_freq.dtype == torch.float32
    assert torch.equal(bf16.vlm.rotary_emb.inv_freq, fresh)
    assert bf16.vlm.layers[0].mlp.up_proj.weight.dtype == torch.bfloat16
    args = (prefix.bfloat16(), mask, suffix.bfloat16(), suffix_ar)
    with torch.inference_mode():
        full = bf16(*args)
        step = bf16.decode_suffix(bf16.encode_prefix(*args[:2], suffix_ar), args[2])
    assert full.dtype == torch.bfloat16 and bool(torch.isfinite(full).all())
    assert float((full.float() - step.float()).abs().max()) < 0.05 * float(full.abs().max())


@pytest.mark.parametrize('plan', PLANS)
def test_gradient_checkpointing_recomputes_and_gives_the_same_gradients(plan):
    grads = []
    for enabled in (False, True):
        bb = _backbone(plan).train()
        bb.set_gradient_checkpointing(enabled)
        calls = []
        # A pre-hook: torch's non-reentrant recompute stops right after the last saved tensor.
        bb.expert.layers[0].mlp.register_forward_pre_hook(lambda *args: calls.append(1))
        prefix, mask, suffix, suffix_ar = _inputs_for(bb)
        bb(prefix, mask, suffix, suffix_ar).pow(2).mean().backward()
        assert len(calls) == (2 if enabled else 1)       # recomputed in backward when enabled
        grads.append([p.grad.clone() for p in bb.parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) > 0
    for a, b in zip(*grads):
        _close(a, b, 1e-6)


# ----------------------------------------------------------------- validation and loading
def test_invalid_shapes_and_inputs_are_named():
    cfg = _cfg('deep_fusion')
    vlm = build_transformer(cfg.language_model)
    for name, value in (('head_dim', 8), ('num_key_value_heads', 4), ('num_hidden_layers', 3)):
        with pytest.raises(ValueError, match=f'expert.{name}'):
            LlamaDeepFusion(vlm, dataclasses.replace(cfg.expert, **{name: value}))
    with pytest.raises(ValueError, match='expert.architecture'):
        LlamaDeepFusion(vlm, _cfg('late_gemma').expert)
    with pytest.raises(ValueError, match='prefix_attention'):
        LateFusionBackbone(vlm, _cfg('late_gemma').expert, 'full')
    bb = LlamaDeepFusion(vlm, cfg.expert)
    prefix, mask, suffix, suffix_ar = _inputs_for(bb)
    with pytest.raises(TypeError, match='prefix_mask'):
        bb(prefix, mask.long(), suffix, suffix_ar)
    with pytest.raises(ValueError, match='suffix_embeds'):
        bb(prefix, mask, suffix[..., :16], suffix_ar)
    with pytest.raises(ValueError, match='suffix_embeds'):
        bb(prefix, mask, suffix, suffix_ar[:-1])
    with pytest.raises(ValueError, match='suffix_ar'):
        bb(prefix, mask, suffix, suffix_ar.long())
    with pytest.raises(TypeError, match='suffix_embeds'):
        bb(prefix, mask, suffix.double(), suffix_ar)
    with torch.no_grad():
        cache = bb.encode_prefix(prefix, mask, suffix_ar)
        with pytest.raises(ValueError, match='suffix_embeds'):
            bb.decode_suffix(cache, suffix[:, :-1])
    with pytest.raises(RuntimeError, match='inference-only'):
        bb.decode_suffix(cache, suffix)
    flash = build_transformer(cfg.language_model)
    flash.config._attn_implementation = 'flash_attention_2'
    with pytest.raises(ValueError, match='_attn_implementation'):
        LlamaDeepFusion(flash, cfg.expert)


def test_build_transformer_loads_a_local_safetensors_checkpoint(tmp_path):
    ex = _cfg('late_gemma').expert
    torch.manual_seed(0)
    model = _randomize(build_transformer(ex), 3)
    model.save_pretrained(tmp_path)
    assert any(name.endswith('.safetensors') for name in os.listdir(tmp_path))
    loaded = build_transformer(dataclasses.replace(ex, pretrained_path=str(tmp_path)))
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match='hidden_size'):
        build_transformer(dataclasses.replace(ex, pretrained_path=str(tmp_path), hidden_size=48))

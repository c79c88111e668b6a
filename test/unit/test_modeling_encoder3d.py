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

"""3D-aware encoder and instruction tokenizer, checked against transformers, Open3D and Python."""

import dataclasses
import math
import os

import numpy as np
import open3d as o3d
import pytest
from repo_paths import REPO_ROOT
from spatialvla_ros.models import modeling_encoder3d as enc3d
from spatialvla_ros.models import tokenizer as tok
from spatialvla_ros.policies.configuration_policy import PolicyConfig
import torch
import transformers

CONFIG = os.path.join(REPO_ROOT, 'config',
                      'late_gemma.yaml')
NAN = float('nan')


@pytest.fixture(scope='module')
def cfg():
    return PolicyConfig.from_yaml(CONFIG)


def make_encoder(cfg, model_type='clip', **enc_changes):
    torch.manual_seed(0)
    vision = dataclasses.replace(cfg.vision, model_type=model_type)
    enc = dataclasses.replace(cfg.encoder3d, **enc_changes)
    return enc3d.SpatialVLAEncoder3D(vision, enc, cfg.language_model.hidden_size).eval()


def scene(b, v, h, w, seed=0):
    """Images in [0, 1] and a points map spread over ~1 m, like a tabletop in the base frame."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(b, v, 3, h, w, generator=g)
    rows = torch.linspace(0, 1, h)[:, None].expand(h, w)
    cols = torch.linspace(0, 1, w)[None, :].expand(h, w)
    base = torch.stack([cols, rows, 0.3 * torch.sin(3 * cols) * rows], -1)    # (H, W, 3)
    offsets = torch.rand(b, v, 1, 1, 3, generator=g) * 0.5
    return images, base + offsets


@pytest.mark.parametrize('model_type', ['clip', 'siglip'])
def test_shapes_clip_and_siglip(cfg, model_type):
    enc = make_encoder(cfg, model_type)
    images, points = scene(2, 2, 48, 64)
    with torch.no_grad():
        tokens, mask, centers = enc(images, points, return_centers=True)
    n, d = cfg.encoder3d.max_visual_tokens, cfg.language_model.hidden_size
    assert tokens.shape == (2, n, d) and tokens.dtype == torch.float32
    assert mask.shape == (2, n) and mask.dtype == torch.bool
    assert centers.shape == (2, n, 3)
    assert torch.isfinite(tokens).all()
    assert (mask.sum(1) > 1).all()
    assert (tokens[~mask] == 0).all() and (tokens[mask].abs().sum(-1) > 0).all()
    # Used slots come first, sorted by voxel (i, j, k); each centre lies inside its voxel.
    assert (mask.long().diff(dim=1) <= 0).all()
    e = cfg.encoder3d
    for i in range(2):
        idx = torch.floor((centers[i, mask[i]].double() - torch.tensor(e.workspace_min))
                          / e.voxel_size).long()
        keys = [tuple(k) for k in idx.tolist()]
        assert keys == sorted(set(keys))
    assert enc.vision_tower.__class__.__name__ == {'clip': 'CLIPVisionModel',
                                                   'siglip': 'SiglipVisionModel'}[model_type]


def test_sincos_position_encoding(cfg):
    enc = make_encoder(cfg, position_encoding='sincos')
    head = enc.position_embedding.position_embedding_head
    assert head[0].in_features == 3 + 6 * cfg.encoder3d.sincos_frequencies
    images, points = scene(1, 2, 32, 32)
    tokens, mask = enc(images, points)
    assert torch.isfinite(tokens).all() and mask.any()


def test_2d_ablation_reads_no_points(cfg):
    """position_encoding none: moved, permuted, random or invalid points change nothing."""
    enc2d = make_encoder(cfg, position_encoding='none')
    assert enc2d.position_embedding is None and not enc2d.uses_positions
    assert not any(k.startswith('position_embedding.') for k in enc2d.state_dict())
    enc3d_ = make_encoder(cfg)
    images, points = scene(2, 2, 48, 64)
    g = torch.Generator().manual_seed(5)
    variants = {
        'moved': points + torch.tensor([0.3, -0.2, 0.1]),
        'permuted': points.flatten(2, 3)[:, :, torch.randperm(48 * 64, generator=g)]
        .reshape(points.shape),
        'random': torch.rand(points.shape, generator=g) * 4 - 2,
        'invalid': torch.full(points.shape, NAN)}
    with torch.no_grad():
        tokens, mask = enc2d(images, points)
        ref3d = enc3d_(images, points)[0]
        for name, other in variants.items():
            got, got_mask = enc2d(images, other)
            assert torch.equal(got, tokens) and torch.equal(got_mask, mask), name
        assert not torch.equal(enc3d_(images, variants['moved'])[0], ref3d)
        # The images still matter.
        assert not torch.equal(enc2d(images.flip(-1), points)[0], tokens)
    g2 = enc2d.grid ** 2
    assert mask.shape == (2, cfg.encoder3d.max_visual_tokens)
    assert (mask.sum(1) == 2 * g2).all() and mask[:, :2 * g2].all()
    with pytest.raises(ValueError, match='no 3D token centres'):
        enc2d(images, points, return_centers=True)


def test_2d_ablation_pools_patches_into_the_token_budget(cfg):
    """V * G * G over max_visual_tokens: each view is pooled to the largest grid that fits."""
    grid = cfg.vision.image_size // cfg.vision.patch_size
    budget = 2 * grid * grid - 1                   # one token short for two full grids
    enc2d = make_encoder(cfg, position_encoding='none', max_visual_tokens=budget)
    images, points = scene(1, 2, 32, 32)
    with torch.no_grad():
        tokens, mask = enc2d(images, points)
        feats = enc2d.patch_features(images)[0].permute(0, 3, 1, 2)  # (V, C, G, G)
        small = math.isqrt(budget // 2)
        pooled = torch.nn.functional.adaptive_avg_pool2d(feats, small)
        expected = enc2d.mm_projector(pooled.permute(0, 2, 3, 1).reshape(1, -1, feats.shape[1]))
    assert small < grid and int(mask.sum()) == 2 * small * small
    torch.testing.assert_close(tokens[:, :2 * small * small], expected)
    assert (tokens[~mask] == 0).all()
    with pytest.raises(ValueError, match='encoder3d.max_visual_tokens'):
        make_encoder(cfg, position_encoding='none', max_visual_tokens=1)(images, points)


@pytest.mark.parametrize('model_type', ['clip', 'siglip'])
def test_patch_features_equal_transformers_tower(cfg, model_type):
    """Our resize/normalise/feature-layer path vs the tower called on the HF processor output."""
    enc = make_encoder(cfg, model_type)
    size = cfg.vision.image_size
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(3)]
    processor = (transformers.CLIPImageProcessorPil if model_type == 'clip'
                 else transformers.SiglipImageProcessorPil)(do_resize=False, do_center_crop=False)
    pixel_values = processor(images=frames, return_tensors='pt')['pixel_values']
    with torch.no_grad():
        ref = enc.vision_tower(pixel_values=pixel_values, output_hidden_states=True)
        ref = ref.hidden_states[cfg.vision.feature_layer]
        if model_type == 'clip':
            ref = ref[:, 1:]                                           # drop CLS
        images = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
        ours = enc.patch_features(images.reshape(1, 3, 3, size, size))
    g = size // cfg.vision.patch_size
    assert ours.shape == (1, 3, g, g, cfg.vision.hidden_size)
    torch.testing.assert_close(ours.reshape(3, g * g, -1), ref, atol=1e-5, rtol=1e-5)


def test_pretrained_tower_loads_locally(cfg, tmp_path):
    enc = make_encoder(cfg)
    enc.vision_tower.save_pretrained(tmp_path / 'tower', safe_serialization=True)
    vision = dataclasses.replace(cfg.vision, pretrained_path=str(tmp_path / 'tower'))
    loaded = enc3d.build_vision_tower(vision)
    for (name, a), (_, b) in zip(enc.vision_tower.state_dict().items(),
                                 loaded.state_dict().items()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match='hidden_size'):
        enc3d.build_vision_tower(dataclasses.replace(vision, hidden_size=64,
                                                     num_attention_heads=4))
    # A full CLIPModel directory (how CLIP towers are published) loads its vision half.
    v = cfg.vision
    clip = transformers.CLIPModel(transformers.CLIPConfig(
        vision_config={'hidden_size': v.hidden_size, 'intermediate_size': v.intermediate_size,
                       'num_hidden_layers': v.num_hidden_layers, 'image_size': v.image_size,
                       'num_attention_heads': v.num_attention_heads, 'patch_size': v.patch_size},
        text_config={'hidden_size': 32, 'intermediate_size': 64, 'num_hidden_layers': 1,
                     'num_attention_heads': 4, 'vocab_size': 99}))
    clip.save_pretrained(tmp_path / 'clip', safe_serialization=True)
    tower = enc3d.build_vision_tower(dataclasses.replace(vision,
                                                         pretrained_path=str(tmp_path / 'clip')))
    for name, tensor in clip.vision_model.state_dict().items():
        assert torch.equal(tower.state_dict()[name], tensor), name
    missing = dataclasses.replace(vision, pretrained_path=str(tmp_path / 'missing_dir'))
    with pytest.raises(ValueError, match='missing_dir'):
        enc3d.build_vision_tower(missing)


def test_patch_positions_portrait_orientation_and_masking():
    """Each patch gets the mean of its valid pixels; rows/cols are not swapped for portrait."""
    h, w, g = 80, 48, 4                                                # portrait, 20x12 px cells
    v_idx, u_idx = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                                  torch.arange(w, dtype=torch.float32), indexing='ij')
    points = torch.stack([u_idx, v_idx, torch.ones(h, w)], -1)[None, None].clone()
    points[0, 0, :20, :12] = NAN                                      # cell (0, 0) fully invalid
    points[0, 0, 20:30, 12:24, 2] = float('inf')                      # top half of cell (1, 1)
    points[0, 0, 40, 0] = -float('inf')
    xyz, valid = enc3d.patch_positions(points, g)
    assert xyz.shape == (1, 1, g, g, 3) and valid.shape == (1, 1, g, g)
    assert torch.isfinite(xyz).all()
    assert not valid[0, 0, 0, 0] and valid.sum() == g * g - 1
    assert (xyz[0, 0, 0, 0] == 0).all()
    # Reference: numpy nanmean over the cell, invalid pixels as NaN.
    ref_pts = points[0, 0].numpy().astype(np.float64)
    ref_pts[~np.isfinite(ref_pts).all(-1)] = np.nan
    for r in range(g):
        for c in range(g):
            cell = ref_pts[r * 20:(r + 1) * 20, c * 12:(c + 1) * 12].reshape(-1, 3)
            if np.isnan(cell).all():
                continue
            np.testing.assert_allclose(xyz[0, 0, r, c].numpy(), np.nanmean(cell, 0), atol=1e-4)
    assert xyz[0, 0, 3, 2, 0] == pytest.approx(2 * 12 + 5.5)          # column centre (u)
    assert xyz[0, 0, 3, 2, 1] == pytest.approx(3 * 20 + 9.5)          # row centre (v)


def test_portrait_images_encode(cfg):
    enc = make_encoder(cfg)
    images, points = scene(1, 2, 96, 40)
    tokens, mask = enc(images, points)
    assert tokens.shape[:2] == mask.shape and mask.sum() > 1 and torch.isfinite(tokens).all()


def unproject(depth, fx, fy, cx, cy, min_depth, max_depth):
    """Depth -> camera-frame points with the perception convention: invalid depth -> NaN."""
    h, w = depth.shape
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                          torch.arange(w, dtype=torch.float32), indexing='ij')
    pts = torch.stack([(u - cx) * depth / fx, (v - cy) * depth / fy, depth], -1)
    bad = ~torch.isfinite(depth) | (depth < min_depth) | (depth > max_depth)
    return torch.where(bad[..., None], torch.full_like(pts, NAN), pts)


def test_invalid_depth_gets_no_position_and_no_nan(cfg):
    enc = make_encoder(cfg)
    e = cfg.encoder3d
    depth = torch.full((64, 64), 1.0)
    depth[:, :32] = 0.0                                               # no return: zero depth
    depth[:8, 32:] = NAN
    depth[8:16, 32:] = float('inf')
    pts = unproject(depth, 50.0, 50.0, 32.0, 32.0, e.min_depth, e.max_depth)
    pts[20, 40] = torch.tensor([float('inf'), 0.0, 1.0])             # raw non-finite points too
    pts[30, 50] = torch.tensor([-float('inf'), NAN, 1.0])
    points = pts[None, None] + torch.tensor([0.3, 0.2, 0.1])
    images = torch.rand(1, 1, 3, 64, 64)
    tokens, mask, centers = enc(images, points, return_centers=True)
    assert torch.isfinite(tokens).all() and torch.isfinite(centers).all()
    kept = centers[mask]
    assert kept.shape[0] > 0
    # Zero depth would put points at the camera (z = 0.1 here): none may appear.
    assert (kept[:, 2] > 1.0).all()
    # Left half (zero depth) is invalid: every centre comes from the right half (x >= 0.3).
    assert (kept[:, 0] >= 0.3 - 1e-6).all()
    tokens.sum().backward()                                           # finite gradients too
    grads = [p.grad for p in enc.parameters() if p.grad is not None]
    assert all(torch.isfinite(g).all() for g in grads)


def test_all_nan_view_is_ignored_and_all_nan_sample_masked(cfg):
    enc = make_encoder(cfg)
    images, points = scene(2, 2, 32, 48)
    points[1] = NAN                                                   # sample 1: no valid point
    points[0, 1] = NAN                                                # sample 0: view 1 all NaN
    with torch.no_grad():
        tokens, mask = enc(images, points)
        alone, alone_mask = enc(images[:1, :1], points[:1, :1])
    assert not mask[1].any() and (tokens[1] == 0).all()
    assert mask[0].any()
    # The NaN view contributes nothing: same tokens as encoding the good view alone.
    assert torch.equal(mask[0], alone_mask[0])
    torch.testing.assert_close(tokens[0], alone[0], atol=1e-5, rtol=1e-5)


def reference_voxel_pool(features, xyz, valid, voxel_size, origin, max_tokens):
    """Plain-Python voxel mean with the documented cap: most points first, then smaller key."""
    groups = {}
    for f, p, ok in zip(features.tolist(), xyz.tolist(), valid.tolist()):
        if not ok or not all(math.isfinite(x) for x in p):
            continue
        key = tuple(math.floor((p[a] - origin[a]) / voxel_size) for a in range(3))
        groups.setdefault(key, []).append((f, p))
    ranked = sorted(groups, key=lambda k: (-len(groups[k]), k))[:max_tokens]
    out = []
    for key in sorted(ranked):
        members = groups[key]
        out.append((key, np.mean([m[0] for m in members], 0), np.mean([m[1] for m in members], 0)))
    return out


@pytest.mark.parametrize('method', ['index_add', 'matmul'])
@pytest.mark.parametrize('max_tokens', [200, 12])
def test_voxel_pool_matches_python_reference(max_tokens, method):
    g = torch.Generator().manual_seed(3)
    b, m, c, vs, origin = 2, 300, 5, 0.25, (-1.0, -1.0, -0.5)
    xyz = torch.rand(b, m, 3, generator=g) * 1.5 - 0.8
    xyz[:, ::3] = xyz[:, 1::3][:, :xyz[:, ::3].shape[1]] + 0.01       # crowd some voxels
    features = torch.randn(b, m, c, generator=g)
    valid = torch.rand(b, m, generator=g) > 0.2
    features[~valid] = NAN                                            # ignored, must not leak
    xyz[0, 5] = NAN
    tokens, centers, mask = enc3d.voxel_pool(features, xyz, valid, vs, origin, max_tokens,
                                             method=method)
    assert tokens.shape == (b, max_tokens, c) and mask.shape == (b, max_tokens)
    for i in range(b):
        ref = reference_voxel_pool(features[i], xyz[i], valid[i], vs, origin, max_tokens)
        n = len(ref)
        assert n == min(max_tokens, n) and int(mask[i].sum()) == n
        assert mask[i, :n].all() and not mask[i, n:].any()
        assert (tokens[i, n:] == 0).all() and (centers[i, n:] == 0).all()
        np.testing.assert_allclose(tokens[i, :n].numpy(), np.stack([r[1] for r in ref]),
                                   atol=1e-5)
        np.testing.assert_allclose(centers[i, :n].numpy(), np.stack([r[2] for r in ref]),
                                   atol=1e-6)
    if max_tokens == 12:
        assert mask.all()                                             # the cap was hit


@pytest.mark.parametrize('method', ['index_add', 'matmul'])
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_voxel_pool_batch_equals_one_sample_at_a_time(method, dtype):
    # The pooling is batched (no per-sample loop): every sample must come out bit for bit as
    # when pooled alone, with different voxel counts per sample, an empty sample, a capped one.
    g = torch.Generator().manual_seed(5)
    b, m, c = 4, 400, 6
    xyz = torch.rand(b, m, 3, generator=g) * torch.tensor([1.0, 0.05, 2.0, 0.5])[:, None, None]
    valid = torch.rand(b, m, generator=g) > 0.1
    valid[1] = False
    xyz[3, 9] = NAN
    features = torch.randn(b, m, c, generator=g).to(dtype)
    for max_tokens in (16, 500):
        batched = enc3d.voxel_pool(features, xyz, valid, 0.1, (-1.0, -1.0, -1.0), max_tokens,
                                   method=method)
        for i in range(b):
            alone = enc3d.voxel_pool(features[i:i + 1], xyz[i:i + 1], valid[i:i + 1], 0.1,
                                     (-1.0, -1.0, -1.0), max_tokens, method=method)
            for x, y in zip(batched, alone):
                assert x.dtype == y.dtype
                assert torch.equal(x[i:i + 1], y)
        assert not batched[2][1].any()                                # the empty sample
        assert batched[2][0].all() == (max_tokens == 16)               # capped only at 16
    assert len(set(batched[2].sum(1).tolist())) == b                  # voxel counts all differ


@pytest.mark.parametrize('method', ['index_add', 'matmul'])
def test_voxel_pool_deterministic_under_permutation(method):
    g = torch.Generator().manual_seed(4)
    xyz = torch.rand(1, 500, 3, generator=g)
    features = torch.randn(1, 500, 8, generator=g)
    valid = torch.ones(1, 500, dtype=torch.bool)
    args = (0.1, (0.0, 0.0, 0.0), 40)                                 # ~380 voxels, cap 40
    first = enc3d.voxel_pool(features, xyz, valid, *args, method=method)
    again = enc3d.voxel_pool(features, xyz, valid, *args, method=method)
    for a, b in zip(first, again):
        assert torch.equal(a, b)
    perm = torch.randperm(500, generator=g)
    shuffled = enc3d.voxel_pool(features[:, perm], xyz[:, perm], valid[:, perm], *args,
                                method=method)
    assert torch.equal(first[2], shuffled[2]) and first[2].all()
    torch.testing.assert_close(first[1], shuffled[1], atol=1e-6, rtol=0)
    torch.testing.assert_close(first[0], shuffled[0], atol=1e-6, rtol=0)


def test_encoder_deterministic(cfg):
    enc = make_encoder(cfg, max_visual_tokens=8)                      # forces the cap
    images, points = scene(2, 2, 40, 56)
    with torch.no_grad():
        a = enc(images, points, return_centers=True)
        b = enc(images, points, return_centers=True)
    assert a[1].all()
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def test_voxels_match_open3d():
    """
    Occupied voxel indices vs Open3D VoxelGrid, voxel means vs Open3D voxel_down_sample.

    Tolerance: indices exact; mean positions 1e-5 m (float32 inputs averaged in float32 here,
    float64 in Open3D).
    """
    rng = np.random.default_rng(5)
    pts = rng.uniform(-0.6, 0.9, (3000, 3)).astype(np.float32)
    pts[:1000] = pts[:1000] * 0.2                                     # a dense cluster
    vs, origin = 0.07, np.array([-1.0, -1.0, -1.0])
    xyz = torch.from_numpy(pts)[None]
    valid = torch.ones(1, len(pts), dtype=torch.bool)
    feats = torch.zeros(1, len(pts), 1)
    _, centers, mask = enc3d.voxel_pool(feats, xyz, valid, vs, tuple(origin), len(pts))
    ours = centers[0, mask[0]].double().numpy()
    ours_idx = {tuple(i) for i in np.floor((ours - origin) / vs).astype(int)}

    cloud = o3d.geometry.PointCloud()
    cloud.points = o3d.utility.Vector3dVector(pts.astype(np.float64))
    grid = o3d.geometry.VoxelGrid.create_from_point_cloud_within_bounds(
        cloud, vs, origin, origin + 4.0)
    o3d_idx = {tuple(int(i) for i in vox.grid_index) for vox in grid.get_voxels()}
    assert len(o3d_idx) > 100
    assert ours_idx == o3d_idx

    # voxel_down_sample puts its grid origin at the cloud minimum - vs / 2.
    o3d_origin = pts.astype(np.float64).min(0) - vs / 2
    _, centers2, mask2 = enc3d.voxel_pool(feats, xyz, valid, vs, tuple(o3d_origin), len(pts))
    ours2 = centers2[0, mask2[0]].double().numpy()
    theirs = np.asarray(cloud.voxel_down_sample(vs).points)
    assert ours2.shape == theirs.shape
    ours2 = ours2[np.lexsort(ours2.T)]
    theirs = theirs[np.lexsort(theirs.T)]
    np.testing.assert_allclose(ours2, theirs, atol=1e-5, rtol=0)


def test_gradient_reaches_position_embedding_and_projector(cfg):
    enc = make_encoder(cfg).train()
    images, points = scene(1, 2, 32, 32)
    tokens, mask = enc(images, points)
    (tokens[mask] ** 2).mean().backward()
    for name in ('position_embedding.position_embedding_head.0.weight',
                 'position_embedding.position_embedding_head.3.weight',
                 'mm_projector.0.weight', 'mm_projector.2.weight',
                 'vision_tower.embeddings.patch_embedding.weight'):
        grad = dict(enc.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_bfloat16_follows_module_dtype(cfg):
    enc = make_encoder(cfg)
    images, points = scene(1, 2, 32, 32)
    with torch.no_grad():
        ref, ref_mask = enc(images, points)
        enc = enc.to(torch.bfloat16)
        tokens, mask = enc(images, points)
    assert tokens.dtype == torch.bfloat16
    assert torch.equal(mask, ref_mask)                                # positions stay float32
    torch.testing.assert_close(tokens.float(), ref, atol=0.1, rtol=0.05)


def test_bad_input_names_field(cfg):
    enc = make_encoder(cfg)
    images, points = scene(1, 1, 32, 32)
    with pytest.raises(ValueError, match='points'):
        enc(images, points[..., :2])
    with pytest.raises(ValueError, match='images'):
        enc(images[0], points)
    with pytest.raises(TypeError, match='images'):
        enc((images * 255).to(torch.uint8), points)


def test_tokenizer_round_trip(tmp_path):
    words = ['Pick', 'up', 'the', 'red', 'cube', 'and', 'place', 'it', 'in', 'tray', '.']
    built = tok.build_word_tokenizer(words, tmp_path / 'tok')
    loaded = tok.load_tokenizer(tmp_path / 'tok')
    auto = transformers.AutoTokenizer.from_pretrained(str(tmp_path / 'tok'))
    assert loaded.get_vocab() == auto.get_vocab() == built.get_vocab()
    assert loaded.get_vocab()['<pad>'] == 0 and loaded.get_vocab()['<s>'] == 2
    texts = ['Pick up the RED cube.', 'place it in the blue tray', '']
    ids, mask = tok.tokenize_instructions(loaded, texts, 6)
    assert ids.shape == mask.shape == (3, 6) and ids.dtype == torch.long
    assert mask.dtype == torch.bool
    assert (ids[:, 0] == loaded.bos_token_id).all() and mask[:, 0].all()
    assert loaded.decode(ids[0][mask[0]][1:]) == 'pick up the red cube'   # truncated to 6
    assert loaded.convert_ids_to_tokens(ids[1][mask[1]].tolist()) == [
        '<s>', 'place', 'it', 'in', 'the', '<unk>']
    assert mask[2].tolist() == [True] + [False] * 5 and (ids[2, 1:] == 0).all()
    again = tok.tokenize_instructions(auto, texts, 6)
    assert torch.equal(ids, again[0]) and torch.equal(mask, again[1])
    long_ids, long_mask = tok.tokenize_instructions(loaded, texts, 12)
    assert long_mask[0].sum() == 7 and (long_ids[0][~long_mask[0]] == 0).all()


def test_tokenizer_errors_name_the_path(tmp_path):
    with pytest.raises(ValueError, match='nowhere'):
        tok.load_tokenizer(tmp_path / 'nowhere')
    bad = tmp_path / 'corrupt'
    bad.mkdir()
    (bad / 'tokenizer.json').write_text('{not json')
    (bad / 'tokenizer_config.json').write_text('{"tokenizer_class": "PreTrainedTokenizerFast"}')
    with pytest.raises(ValueError, match='corrupt'):
        tok.load_tokenizer(bad)
    with pytest.raises(TypeError, match='texts'):
        tok.tokenize_instructions(tok.build_word_tokenizer(['a'], tmp_path / 't'), 'a', 4)

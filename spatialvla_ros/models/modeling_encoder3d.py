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
LLaVA-3D style 3D-aware visual encoder: 2D patch features lifted into pooled 3D voxel tokens.

Pipeline per sample (all views at once): CLIP/SigLIP patch features (B, V, G, G, C) + a learned
3D position embedding of each patch's metric base-frame point -> mean-pooled per occupied voxel
across views -> 2-layer GELU projector into the LLM width.

Deliberate differences to the released LLaVA-3D code:
- invalid points (NaN/inf, i.e. zero or out-of-range depth upstream) never get a position, never
  enter a voxel and never produce NaN;
- the token cap keeps the most populated voxels (ties: smaller voxel key), not a random subset,
  and tokens come out sorted by voxel key: same observation -> same tokens;
- the xyz map is pooled onto the patch grid directly, so any image aspect ratio (portrait too)
  works without rescaling intrinsics.

The 2D ablation (`encoder3d.position_encoding: none`) is the same network without the 3D part:
no position embedding, no voxel pooling, the points are never read; the tokens are the tower's
patch features of every view (view by view, row-major), average-pooled to a coarser grid only
when V * G * G exceeds max_visual_tokens, then the same projector.

Voxel index of a point p: floor((p - origin) / voxel_size) per axis, the convention of Open3D's
VoxelGrid. LLaVA-3D's round(p / voxel_size) is the same partition with origin = -voxel_size / 2.
"""

import math
import os

from spatialvla_ros.models.configuration_spatialvla import Encoder3DConfig
from spatialvla_ros.models.configuration_spatialvla import VisionConfig
import torch
from torch import nn
import torch.nn.functional as F  # noqa: N812
import transformers

# Pixel normalisation of the towers' image processors (RGB in [0, 1]).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)

_TOWERS = {
    'clip': ('CLIPVisionModel', 'CLIPVisionConfig', CLIP_MEAN, CLIP_STD, True),
    'siglip': ('SiglipVisionModel', 'SiglipVisionConfig', SIGLIP_MEAN, SIGLIP_STD, False),
}

# Voxel keys pack (i, j, k) into one int64: 21 bits per axis, offset so negatives fit. Indices
# with |i| >= 2**20 - 1 (~52 km at 5 cm voxels) are treated as invalid points.
_KEY_BITS = 21
_KEY_OFFSET = 1 << 20
_INVALID_KEY = torch.iinfo(torch.int64).max  # sorts after every valid key


def build_vision_tower(cfg):
    """
    Build the transformers vision tower (random init, or a local checkpoint; never the hub).

    Inputs:
        cfg: VisionConfig; model_type 'clip' -> CLIPVisionModel, 'siglip' -> SiglipVisionModel.

    The returned transformers model's patch features are hidden_states[cfg.feature_layer].
    """
    if not isinstance(cfg, VisionConfig):
        raise TypeError(f'vision: got {type(cfg).__name__}, expected VisionConfig')
    if cfg.model_type not in _TOWERS:
        raise ValueError(f'vision.model_type: got {cfg.model_type!r}, expected one of '
                         f'{sorted(_TOWERS)}')
    model_name, config_name = _TOWERS[cfg.model_type][:2]
    model_cls = getattr(transformers, model_name)
    if cfg.pretrained_path:
        path = cfg.pretrained_path
        if not os.path.isdir(path):
            raise ValueError(f'vision.pretrained_path: {path!r} is not a directory (expected a '
                             f'local {model_name} checkpoint with config.json + safetensors)')
        try:
            # In torch's default dtype like a random tower, not the checkpoint's (fp16 often).
            tower = model_cls.from_pretrained(path, local_files_only=True, use_safetensors=True,
                                              dtype=torch.get_default_dtype())
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f'vision.pretrained_path: cannot load a {model_name} from '
                             f'{path!r}: {exc}') from exc
        _check_tower_config(tower.config, cfg)
        return tower
    kwargs = {'hidden_size': cfg.hidden_size, 'intermediate_size': cfg.intermediate_size,
              'num_hidden_layers': cfg.num_hidden_layers,
              'num_attention_heads': cfg.num_attention_heads, 'image_size': cfg.image_size,
              'patch_size': cfg.patch_size, 'num_channels': 3}
    if cfg.model_type == 'siglip':
        kwargs['vision_use_head'] = False  # the pooling head is unused: no dead parameters
    return model_cls(getattr(transformers, config_name)(**kwargs))


def _check_tower_config(loaded, cfg):
    for name in ('hidden_size', 'image_size', 'patch_size', 'num_hidden_layers'):
        got = getattr(loaded, name, None)
        if got != getattr(cfg, name):
            raise ValueError(f'vision.{name}: config says {getattr(cfg, name)} but the checkpoint '
                             f'at {cfg.pretrained_path!r} has {got}')


def resize_images(images, size):
    """
    Resize (N, 3, H, W) float images to the tower's square input (N, 3, size, size).

    Images already that size come back as they are. Bilinear with antialiasing: it matters
    when a 480x640 camera image shrinks to 336 px. The processor uses it too, on cameras of
    different sizes.
    """
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode='bilinear', align_corners=False,
                         antialias=True)


def patch_positions(points, grid):
    """
    One 3D point per patch: the mean of the valid pixel points inside the patch cell.

    The image is resized (not cropped) to the square tower input, so patch (r, c) covers the
    same fraction of the original H x W map whatever its aspect ratio.

    Inputs:
        points: (B, V, H, W, 3) float xyz per pixel; any non-finite coordinate marks the pixel
            invalid.
        grid: patches per side G.

    Gives (xyz, valid): xyz (B, V, G, G, 3) float32 (float64 stays float64) mean points, 0
    where invalid; valid (B, V, G, G) bool, False for cells without a single valid pixel.
    """
    if points.dim() != 5 or points.shape[-1] != 3:
        raise ValueError(f'points: got shape {tuple(points.shape)}, expected (B, V, H, W, 3)')
    b, v, h, w, _ = points.shape
    dtype = torch.promote_types(points.dtype, torch.float32)
    pts = points.to(dtype)
    ok = torch.isfinite(pts).all(-1)                                   # (B, V, H, W)
    pts = torch.where(ok[..., None], pts, torch.zeros((), dtype=dtype, device=pts.device))
    stacked = torch.cat([pts, ok[..., None].to(dtype)], dim=-1)        # (B, V, H, W, 4)
    stacked = stacked.reshape(b * v, h, w, 4).permute(0, 3, 1, 2)      # (BV, 4, H, W)
    pooled = F.adaptive_avg_pool2d(stacked, grid)                      # (BV, 4, G, G)
    pooled = pooled.permute(0, 2, 3, 1).reshape(b, v, grid, grid, 4)
    frac = pooled[..., 3:]                                             # valid share of the cell
    valid = frac[..., 0] > 0
    xyz = torch.where(valid[..., None], pooled[..., :3] / frac.clamp_min(1e-12),
                      torch.zeros((), dtype=dtype, device=pts.device))
    return xyz, valid


class PositionEmbedding3D(nn.Module):
    """
    Learned embedding of metric xyz, added to patch features.

    'mlp' is LLaVA-3D's head on raw xyz; 'sincos' first expands xyz into
    [xyz, sin(f_k xyz), cos(f_k xyz)] (SpatialVLA Ego3D-like) with periods of
    max_period / 2**k metres, then applies the same head.
    """

    def __init__(self, hidden_size, kind='mlp', num_frequencies=8, max_period=8.0):
        super().__init__()
        if kind not in ('mlp', 'sincos'):
            raise ValueError(f"encoder3d.position_encoding: got {kind!r}, expected 'mlp' or "
                             "'sincos'")
        self.kind = kind
        self.num_frequencies = int(num_frequencies)
        self.max_period = float(max_period)
        in_dim = 3 if kind == 'mlp' else 3 + 6 * self.num_frequencies
        # Indices 0/1/3 match LLaVA-3D's position_embedding_head for checkpoint mapping.
        self.position_embedding_head = nn.Sequential(
            nn.Linear(in_dim, hidden_size), nn.LayerNorm(hidden_size), nn.ReLU(),
            nn.Linear(hidden_size, hidden_size))

    def encode_input(self, xyz):
        """Network input for xyz (..., 3); sin/cos is computed in float32 whatever the dtype."""
        if self.kind == 'mlp':
            return xyz
        xyz = xyz.float()
        freqs = torch.exp2(torch.arange(self.num_frequencies, device=xyz.device,
                                        dtype=torch.float32)) * (2 * math.pi / self.max_period)
        angles = (xyz[..., None] * freqs).flatten(-2)                  # (..., 3F)
        return torch.cat([xyz, angles.sin(), angles.cos()], dim=-1)    # (..., 3 + 6F)

    def forward(self, xyz):
        """Map (..., 3) metric points to (..., hidden_size) embeddings in the module's dtype."""
        dtype = self.position_embedding_head[0].weight.dtype
        return self.position_embedding_head(self.encode_input(xyz).to(dtype))


def voxel_keys(xyz, valid, voxel_size, origin):
    """
    Integer voxel key per point (int64, ordered like (i, j, k)); _INVALID_KEY where invalid.

    Computed in float64 (float32 on MPS) so points sit in the same voxel as Open3D puts them.
    """
    key_dtype = torch.float32 if xyz.device.type == 'mps' else torch.float64
    org = torch.as_tensor(origin, dtype=key_dtype, device=xyz.device)
    pts = xyz.to(key_dtype)
    ok = valid & torch.isfinite(pts).all(-1)
    ijk = torch.floor((torch.where(ok[..., None], pts, org) - org) / voxel_size)
    ok = ok & (ijk.abs() < _KEY_OFFSET - 1).all(-1)
    ijk = torch.where(ok[..., None], ijk, torch.zeros_like(ijk)).long() + _KEY_OFFSET
    keys = ((ijk[..., 0] << (2 * _KEY_BITS)) | (ijk[..., 1] << _KEY_BITS) | ijk[..., 2])
    return torch.where(ok, keys, torch.full_like(keys, _INVALID_KEY))


def _slot_means(values, slot, num_slots, method):
    """
    Mean of the rows of values (B, M, C) per slot (B, M) in [0, num_slots), -1 = dropped.

    Both methods are deterministic and differentiable: 'index_add' sums sequentially on the CPU
    in float32 (O(B M C)); 'matmul' multiplies by a (B, num_slots, M) averaging matrix, which
    needs no atomics (CUDA index_add_ uses float atomics, so its sums vary from run to run).
    Gives (means (B, num_slots, C) in values.dtype, counts (B, num_slots)).
    """
    b, m, c = values.shape
    if method == 'index_add':
        # One flat index over the batch (row b*(N+1) + slot + 1; slot -1 lands in row b*(N+1)),
        # so each sample's sums see its points in the same order as a per-sample loop.
        row = (slot + 1) + (num_slots + 1) * torch.arange(b, device=slot.device)[:, None]
        row = row.reshape(-1)
        count = torch.bincount(row, minlength=b * (num_slots + 1)).view(b, -1)[:, 1:]
        sums = torch.zeros(b * (num_slots + 1), c, dtype=torch.float32,
                           device=values.device).index_add(0, row, values.reshape(-1, c).float())
        sums = sums.view(b, num_slots + 1, c)[:, 1:]
        return (sums / count.clamp_min(1)[..., None]).to(values.dtype), count
    if method == 'matmul':
        slots = torch.arange(num_slots, device=slot.device)
        assign = slot[:, None, :] == slots[None, :, None]              # (B, N, M)
        count = assign.sum(-1)
        weights = assign.float() / count.clamp_min(1)[..., None]      # rows average their points
        return weights.to(values.dtype) @ values, count
    raise ValueError(f"method: got {method!r}, expected 'index_add', 'matmul' or None")


def _voxel_slots(keys, max_tokens):
    """
    Output slot (B, M) of every point, -1 = dropped, for the voxel keys (B, M) of a batch.

    Per sample: voxels ranked by point count (descending; ties: smaller key), the first
    max_tokens kept, kept voxels numbered in key order. Batched without torch.unique (whose
    output size depends on the data): a row-wise sort numbers each sample's distinct keys.
    """
    b, m = keys.shape
    sorted_keys, perm = torch.sort(keys, dim=1, stable=True)
    first = torch.ones_like(sorted_keys, dtype=torch.bool)
    first[:, 1:] = sorted_keys[:, 1:] != sorted_keys[:, :-1]
    voxel_sorted = torch.cumsum(first.long(), dim=1) - 1               # voxel id, key order
    voxel = torch.empty_like(voxel_sorted).scatter_(1, perm, voxel_sorted)  # (B, M) per point
    count = torch.zeros_like(voxel).scatter_add_(1, voxel, torch.ones_like(voxel))
    key_of_voxel = torch.full_like(keys, _INVALID_KEY).scatter_(1, voxel_sorted, sorted_keys)
    # Ids past a sample's voxel count and the invalid key score -1: never kept.
    score = torch.where(key_of_voxel == _INVALID_KEY, torch.full_like(count, -1), count)
    # Rank voxels by count (descending); the stable sort keeps key order among ties.
    order = torch.sort(-score, dim=1, stable=True).indices
    rank = torch.empty_like(order).scatter_(
        1, order, torch.arange(m, device=keys.device).expand(b, m).contiguous())
    kept = (rank < max_tokens) & (score > 0)                           # (B, M) in key order
    slot_of_voxel = torch.where(kept, torch.cumsum(kept.long(), 1) - 1, torch.full_like(rank, -1))
    return torch.gather(slot_of_voxel, 1, voxel)


def voxel_pool(features, xyz, valid, voxel_size, origin, max_tokens, method=None):
    """
    Mean-pool point features per occupied voxel, with a deterministic cap on the voxel count.

    When more than max_tokens voxels are occupied, the most populated ones are kept (ties: the
    smaller voxel key). Output slots are sorted by voxel key; unused slots are zero, mask False.

    Inputs:
        features: (B, M, C) point/patch features.
        xyz: (B, M, 3) metric positions.
        valid: (B, M) bool; invalid or non-finite points are ignored.
        voxel_size: voxel edge [m].
        origin: (3,) voxel grid origin [m].
        max_tokens: N, number of output slots.
        method: 'index_add' or 'matmul' (see _slot_means); None = index_add on the CPU,
            matmul elsewhere (run-to-run identical on CUDA, and cheap there).

    Gives (tokens, centers, mask): tokens (B, N, C) in features.dtype, centers (B, N, 3)
    float32 (mean xyz of each voxel), mask (B, N) bool.
    """
    if features.dim() != 3:
        raise ValueError(f'features: got shape {tuple(features.shape)}, expected (B, M, C)')
    b, m, _ = features.shape
    if xyz.shape != (b, m, 3) or valid.shape != (b, m):
        raise ValueError(f'xyz/valid: got {tuple(xyz.shape)}/{tuple(valid.shape)}, expected '
                         f'({b}, {m}, 3)/({b}, {m}) to match features')
    if not voxel_size > 0 or max_tokens < 1:
        raise ValueError(f'voxel_size/max_tokens: got {voxel_size}/{max_tokens}, expected > 0 / '
                         '>= 1')
    if method is None:
        method = 'index_add' if features.device.type == 'cpu' else 'matmul'
    keys = voxel_keys(xyz, valid.bool(), voxel_size, origin)          # (B, M)
    ok = (keys != _INVALID_KEY)[..., None]
    # Zero what is ignored: a NaN there would survive a 0-weight in the matmul (0 * NaN = NaN).
    pos = torch.where(ok, xyz.float(), torch.zeros((), device=xyz.device))
    zero = torch.zeros((), dtype=features.dtype, device=features.device)
    features = torch.where(ok, features, zero)
    slot = _voxel_slots(keys, max_tokens)                             # (B, M), -1 = dropped
    tokens, count = _slot_means(features, slot, max_tokens, method)   # (B, N, C), (B, N)
    centers = _slot_means(pos, slot, max_tokens, method)[0]           # (B, N, 3)
    return tokens, centers, count > 0


class SpatialVLAEncoder3D(nn.Module):
    """
    Multi-view RGB + per-pixel xyz -> LLM-width 3D visual tokens (LLaVA-3D "3D patches").

    Sub-module names follow LLaVA-3D so its checkpoint maps by renaming prefixes:
    vision_tower (transformers tower), position_embedding.position_embedding_head (its
    video_tower.video_tower.positional_embedding), mm_projector (Linear, GELU, Linear).
    With position_encoding 'none' (the 2D ablation) position_embedding is None.
    """

    def __init__(self, vision, enc, out_dim):
        super().__init__()
        if not isinstance(vision, VisionConfig):
            raise TypeError(f'vision: got {type(vision).__name__}, expected VisionConfig')
        if not isinstance(enc, Encoder3DConfig):
            raise TypeError(f'encoder3d: got {type(enc).__name__}, expected Encoder3DConfig')
        if not isinstance(out_dim, int) or out_dim < 1:
            raise ValueError(f'out_dim: got {out_dim!r}, expected an integer >= 1 (LLM width)')
        self.vision_config = vision
        self.encoder_config = enc
        self.grid = vision.image_size // vision.patch_size
        self.vision_tower = build_vision_tower(vision)
        if enc.position_encoding == 'none':
            # The 2D ablation has no position head at all: no parameter that could carry xyz.
            self.position_embedding = None
        else:
            self.position_embedding = PositionEmbedding3D(
                vision.hidden_size, enc.position_encoding, enc.sincos_frequencies)
        self.mm_projector = nn.Sequential(nn.Linear(vision.hidden_size, out_dim), nn.GELU(),
                                          nn.Linear(out_dim, out_dim))
        _, _, mean, std, has_cls = _TOWERS[vision.model_type]
        self.has_cls_token = has_cls
        # Not persistent: constants of the tower family, not weights of a checkpoint.
        self.register_buffer('pixel_mean', torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('pixel_std', torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @property
    def num_tokens(self):
        return self.encoder_config.max_visual_tokens

    @property
    def uses_positions(self):
        """False for the 2D ablation (position_encoding 'none'): the points are never read."""
        return self.position_embedding is not None

    def preprocess(self, images):
        """(B, V, 3, H, W) RGB in [0, 1] -> (B*V, 3, S, S) normalised tower input."""
        if images.dim() != 5 or images.shape[2] != 3:
            raise ValueError(f'images: got shape {tuple(images.shape)}, expected (B, V, 3, H, W)')
        if not images.is_floating_point():
            raise TypeError(f'images: got dtype {images.dtype}, expected float RGB in [0, 1]')
        x = resize_images(images.flatten(0, 1).float(), self.vision_config.image_size)
        x = (x - self.pixel_mean.float()) / self.pixel_std.float()
        return x.to(self.vision_tower.dtype)

    def patch_features(self, images):
        """Tower patch features (B, V, G, G, C) of hidden_states[feature_layer], CLS dropped."""
        b, v = images.shape[:2]
        out = self.vision_tower(pixel_values=self.preprocess(images), output_hidden_states=True)
        feats = out.hidden_states[self.vision_config.feature_layer]    # (BV, [1+] G*G, C)
        if self.has_cls_token:
            feats = feats[:, 1:]
        g = self.grid
        if feats.shape[1] != g * g:
            raise ValueError(f'vision tower gave {feats.shape[1]} patches, expected {g}x{g}')
        return feats.reshape(b, v, g, g, feats.shape[-1])

    def patch_tokens(self, feats):
        """
        2D ablation: patch features (B, V, G, G, C) -> (tokens (B, N, C), mask (B, N)).

        One token per patch, view by view, row-major; when V * G * G exceeds N =
        max_visual_tokens, each view's grid is average-pooled to the largest g x g with
        V * g * g <= N. Unused slots are zero, mask False.
        """
        b, v, g, _, c = feats.shape
        n = self.encoder_config.max_visual_tokens
        if v * g * g > n:
            g = math.isqrt(n // v)
            if g < 1:
                raise ValueError(f'encoder3d.max_visual_tokens: got {n}, expected at least one '
                                 f'token per camera ({v} cameras) for position_encoding none')
            grid = feats.reshape(b * v, *feats.shape[2:]).permute(0, 3, 1, 2)   # (BV, C, G, G)
            feats = F.adaptive_avg_pool2d(grid, g).permute(0, 2, 3, 1)
        tokens = feats.reshape(b, v * g * g, c)
        mask = torch.zeros(b, n, dtype=torch.bool, device=feats.device)
        mask[:, :tokens.shape[1]] = True
        return F.pad(tokens, (0, 0, 0, n - tokens.shape[1])), mask

    def forward(self, images, points, return_centers=False):
        """
        Encode one batch of multi-view observations.

        Inputs:
            images: (B, V, 3, H, W) float RGB in [0, 1].
            points: (B, V, H, W, 3) base-frame xyz per pixel [m], NaN where invalid.
            return_centers: also return the (B, N, 3) float32 voxel centres (mean xyz).

        Gives (tokens, mask[, centers]): tokens (B, N, out_dim) with N = max_visual_tokens
        (zero where masked), mask (B, N) bool, centers only when asked (the 2D ablation has
        none: asking is an error). The 2D ablation checks the points' shape only.
        """
        if images.dim() != 5:
            raise ValueError(f'images: got shape {tuple(images.shape)}, expected (B, V, 3, H, W)')
        b, v, _, h, w = images.shape
        if points.shape != (b, v, h, w, 3):
            raise ValueError(f'points: got shape {tuple(points.shape)}, expected '
                             f'{(b, v, h, w, 3)} (B, V, H, W of images, then xyz)')
        if return_centers and not self.uses_positions:
            raise ValueError('return_centers: encoder3d.position_encoding none (the 2D ablation) '
                             'has no 3D token centres')
        feats = self.patch_features(images)                             # (B, V, G, G, C)
        if self.uses_positions:
            xyz, valid = patch_positions(points, self.grid)             # (B,V,G,G,3), (B,V,G,G)
            pe = self.position_embedding(xyz)
            feats = feats + pe.masked_fill(~valid[..., None], 0).to(feats.dtype)
            c = feats.shape[-1]
            enc = self.encoder_config
            tokens, centers, mask = voxel_pool(
                feats.reshape(b, -1, c), xyz.reshape(b, -1, 3), valid.reshape(b, -1),
                enc.voxel_size, enc.workspace_min, enc.max_visual_tokens)
        else:
            tokens, mask = self.patch_tokens(feats)
        proj_dtype = self.mm_projector[0].weight.dtype
        tokens = self.mm_projector(tokens.to(proj_dtype)).masked_fill(~mask[..., None], 0)
        if return_centers:
            return tokens, mask, centers
        return tokens, mask


__all__ = [
    'CLIP_MEAN', 'CLIP_STD', 'PositionEmbedding3D', 'SIGLIP_MEAN', 'SIGLIP_STD',
    'SpatialVLAEncoder3D', 'build_vision_tower', 'patch_positions', 'resize_images', 'voxel_keys',
    'voxel_pool',
]

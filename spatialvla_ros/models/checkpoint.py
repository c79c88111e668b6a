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
Checkpoint I/O (safetensors only, never pickle) and loading of real LLaVA-3D weights.

A checkpoint is a self-contained directory:

    <dir>/config.yaml                 the experiment file: network keys, data:, train:
    <dir>/model.safetensors           every parameter once, named as in SpatialVLAModel
    <dir>/normalization.safetensors   state/action mean and std
    <dir>/tokenizer/                  the instruction tokenizer

It is written to a temporary sibling directory and renamed into place, so a reader never sees
a half-written checkpoint.
"""

import dataclasses
import json
import logging
import os
import shutil
import tempfile

from safetensors import safe_open
from safetensors.torch import save_file
from spatialvla_ros.models.configuration_spatialvla import SpatialVLAConfig
from spatialvla_ros.models.modeling_spatialvla import SpatialVLAModel
from spatialvla_ros.models.tokenizer import load_tokenizer
import torch

logger = logging.getLogger(__name__)

CONFIG_FILE = 'config.yaml'
MODEL_FILE = 'model.safetensors'
STATS_FILE = 'normalization.safetensors'
TOKENIZER_DIR = 'tokenizer'
_MAX_LISTED = 8


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt or does not match the model."""


def _names(names):
    names = sorted(names)
    more = f' (+{len(names) - _MAX_LISTED} more)' if len(names) > _MAX_LISTED else ''
    return ', '.join(names[:_MAX_LISTED]) + more


def model_tensors(model):
    """Parameters and persistent buffers, each shared tensor once under its first name."""
    out, seen = {}, set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        out[name] = tensor
    return out


def read_safetensors(path):
    """All tensors of one safetensors file on the CPU; errors name the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f'{path}: file not found')
    try:
        with safe_open(path, framework='pt', device='cpu') as f:
            return {key: f.get_tensor(key) for key in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for bad bytes
        raise CheckpointError(f'{path}: not a readable safetensors file (corrupt or '
                              f'truncated?): {exc}') from None


def _check_and_copy(targets, tensors, source):
    """Copy `tensors` into `targets` (name -> Parameter); strict on names and shapes."""
    missing = set(targets) - set(tensors)
    unexpected = set(tensors) - set(targets)
    shaped = [f'{k} (file {tuple(tensors[k].shape)}, model {tuple(targets[k].shape)})'
              for k in sorted(set(targets) & set(tensors))
              if tuple(tensors[k].shape) != tuple(targets[k].shape)]
    problems = []
    if missing:
        problems.append(f'missing tensors: {_names(missing)}')
    if unexpected:
        problems.append(f'unexpected tensors: {_names(unexpected)}')
    if shaped:
        problems.append(f'mis-shaped tensors: {_names(shaped)}')
    if problems:
        raise CheckpointError(f'{source}: does not match the model built from its config; '
                              + '; '.join(problems))
    with torch.no_grad():
        for name, target in targets.items():
            target.copy_(tensors[name])


def _save_tokenizer(tokenizer, path):
    os.makedirs(path, exist_ok=True)
    if hasattr(tokenizer, 'save_pretrained'):
        tokenizer.save_pretrained(path)
    elif hasattr(tokenizer, 'save'):  # a bare `tokenizers.Tokenizer`
        tokenizer.save(os.path.join(path, 'tokenizer.json'))
    else:
        raise TypeError(f'tokenizer: got {type(tokenizer).__name__}, expected an object with '
                        'save_pretrained() or save()')


def _fsync_tree(root):
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), 'rb') as f:
                os.fsync(f.fileno())


def save_checkpoint(directory, model, config, stats, tokenizer):
    """
    Write a complete checkpoint to `directory` atomically (replacing an older one).

    Arguments, by name:
        directory: target directory (created; an existing checkpoint there is replaced).
        model: SpatialVLAModel (any device / dtype; weights are stored in their dtype).
        config: its config (training.configuration_training.TrainingConfig: every section).
        stats: NormalizationStats of the training data.
        tokenizer: the instruction tokenizer (saved under tokenizer/).

    Gives the checkpoint directory path.
    """
    directory = os.path.abspath(os.fspath(directory))
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{os.path.basename(directory)}.tmp-', dir=parent)
    try:
        config.save_yaml(os.path.join(tmp, CONFIG_FILE))
        tensors = {k: v.detach().to('cpu').contiguous() for k, v in model_tensors(model).items()}
        save_file(tensors, os.path.join(tmp, MODEL_FILE),
                  metadata={'format': 'pt', 'plan': config.plan, 'name': config.name})
        save_file(stats.to_tensors(), os.path.join(tmp, STATS_FILE), metadata={'format': 'pt'})
        _save_tokenizer(tokenizer, os.path.join(tmp, TOKENIZER_DIR))
        _fsync_tree(tmp)
        if os.path.isdir(directory):
            # A directory cannot be replaced in one rename: move the old one aside first, so
            # the target always holds either the old or the new complete checkpoint.
            old = tempfile.mkdtemp(prefix=f'.{os.path.basename(directory)}.old-', dir=parent)
            os.replace(directory, os.path.join(old, 'ckpt'))
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _without_pretrained_paths(config):
    """Drop pretrained paths: the checkpoint holds every weight, so never read them again."""
    return dataclasses.replace(
        config,
        vision=dataclasses.replace(config.vision, pretrained_path=''),
        language_model=dataclasses.replace(config.language_model, pretrained_path=''),
        expert=dataclasses.replace(config.expert, pretrained_path=''))


def load_checkpoint(directory, device='cpu', dtype=None, config_class=SpatialVLAConfig):
    """
    Load a checkpoint written by `save_checkpoint`.

    Arguments, by name:
        directory: checkpoint directory.
        device: torch device for the model.
        dtype: torch dtype (None: the config's dtype).
        config_class: the sections to read from config.yaml (a policy passes PolicyConfig).

    Gives (model in eval mode, config, stats, tokenizer).
    """
    from spatialvla_ros.core_types import NormalizationStats

    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise CheckpointError(f'{directory}: checkpoint directory not found')
    for name in (CONFIG_FILE, MODEL_FILE, STATS_FILE, TOKENIZER_DIR):
        if not os.path.exists(os.path.join(directory, name)):
            raise CheckpointError(f'{os.path.join(directory, name)}: missing from the '
                                  f'checkpoint (expected {CONFIG_FILE}, {MODEL_FILE}, '
                                  f'{STATS_FILE}, {TOKENIZER_DIR}/)')
    config = config_class.from_yaml(os.path.join(directory, CONFIG_FILE))
    if dtype is None:
        dtype = getattr(torch, config.dtype)
    stats_path = os.path.join(directory, STATS_FILE)
    stats = NormalizationStats.from_tensors(read_safetensors(stats_path), source=stats_path)
    model_path = os.path.join(directory, MODEL_FILE)
    tensors = read_safetensors(model_path)
    with torch.device(device):  # random init on the target device is much faster on a GPU
        model = SpatialVLAModel(_without_pretrained_paths(config))
    _check_and_copy(model_tensors(model), tensors, model_path)
    model.config = config
    model.to(device=device, dtype=dtype).eval()
    tokenizer = load_tokenizer(os.path.join(directory, TOKENIZER_DIR))
    return model, config, stats, tokenizer


# -------------------------------------------------------------------------- LLaVA-3D weights
# LLaVA-3D checkpoints (LlavaLlamaForCausalLM) name their tensors as below. SpatialVLAEncoder3D
# keeps LLaVA-3D's sub-module names, so every tensor maps by substituting its prefix:
#   model.embed_tokens / model.layers.* / model.norm      -> vlm.* (the same LlamaModel)
#   model.vision_tower.vision_tower.<CLIPVisionModel>     -> encoder3d.vision_tower.*
#   model.video_tower.video_tower.positional_embedding.position_embedding_head.{0,1,3}
#       (Linear 3->C, LayerNorm, ReLU, Linear C->C)       -> encoder3d.position_embedding.*
#   model.mm_projector.{0,2} (Linear, GELU, Linear)        -> encoder3d.mm_projector.*
# Not used here (reported as unmapped): lm_head (no text generation), the click-prompt encoder
# model.video_tower.prompt_encoder.*, and model.image_newline. LLaVA-3D's released weights may
# lack the CLIP tower (it loads from its own CLIP folder): set vision.pretrained_path then.
LLAVA3D_PREFIXES = (
    ('model.vision_tower.vision_tower.', 'encoder3d.vision_tower.'),
    ('model.video_tower.video_tower.positional_embedding.',
     'encoder3d.position_embedding.'),
    ('model.mm_projector.', 'encoder3d.mm_projector.'),
    ('model.embed_tokens.', 'vlm.embed_tokens.'),
    ('model.layers.', 'vlm.layers.'),
    ('model.norm.', 'vlm.norm.'),
)


def map_llava3d_name(name):
    """Our tensor name for one LLaVA-3D tensor name, or None when it is not used."""
    for src, dst in LLAVA3D_PREFIXES:
        if name.startswith(src):
            return dst + name[len(src):]
    return None


def _llava3d_shards(directory):
    index = os.path.join(directory, 'model.safetensors.index.json')
    if os.path.isfile(index):
        try:
            with open(index, encoding='utf-8') as f:
                weight_map = json.load(f)['weight_map']
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f'{index}: not a safetensors index ({exc})') from None
        return sorted(set(weight_map.values()))
    shards = sorted(f for f in os.listdir(directory) if f.endswith('.safetensors'))
    if not shards:
        raise CheckpointError(f'{directory}: no *.safetensors file (and no '
                              'model.safetensors.index.json); LLaVA-3D weights must be '
                              'converted to safetensors')
    return shards


def load_llava3d_weights(model, llava3d_dir, strict=False):
    """
    Copy LLaVA-3D weights (local directory of safetensors shards) into encoder3d + vlm.

    Arguments, by name:
        model: SpatialVLAModel whose config matches the LLaVA-3D checkpoint's shapes.
        llava3d_dir: directory with *.safetensors shards (+ model.safetensors.index.json).
        strict: raise if any encoder3d / vlm tensor was not provided.

    Gives a report dict: 'loaded' (our names), 'unmapped' (source names not used) and
    'missing' (our encoder3d / vlm names the checkpoint did not provide, e.g. a vision tower
    that LLaVA-3D loads from its own CLIP folder).
    """
    directory = os.fspath(llava3d_dir)
    if not os.path.isdir(directory):
        raise CheckpointError(f'{directory}: LLaVA-3D directory not found')
    targets = {k: v for k, v in model_tensors(model).items()
               if k.startswith(('encoder3d.', 'vlm.'))}
    loaded, unmapped, shaped = [], [], []
    with torch.no_grad():
        for shard in _llava3d_shards(directory):
            path = os.path.join(directory, shard)
            for src, tensor in read_safetensors(path).items():
                dst = map_llava3d_name(src)
                if dst is None or dst not in targets:
                    unmapped.append(src)
                    continue
                if tuple(tensor.shape) != tuple(targets[dst].shape):
                    shaped.append(f'{src} -> {dst} (file {tuple(tensor.shape)}, model '
                                  f'{tuple(targets[dst].shape)})')
                    continue
                targets[dst].copy_(tensor)
                loaded.append(dst)
    if shaped:
        raise CheckpointError(f'{directory}: mis-shaped tensors (does the config match the '
                              f'checkpoint?): {_names(shaped)}')
    missing = sorted(set(targets) - set(loaded))
    if strict and missing:
        raise CheckpointError(f'{directory}: missing tensors: {_names(missing)}')
    if unmapped:
        logger.info('LLaVA-3D tensors not used: %s', _names(unmapped))
    if missing:
        logger.warning('model tensors not provided by %s: %s', directory, _names(missing))
    return {'loaded': sorted(loaded), 'unmapped': sorted(unmapped), 'missing': missing}


__all__ = ['CheckpointError', 'load_checkpoint', 'load_llava3d_weights', 'map_llava3d_name',
           'model_tensors', 'read_safetensors', 'save_checkpoint']

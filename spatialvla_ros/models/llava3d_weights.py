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
Real LLaVA-3D weights (a local directory of safetensors shards) copied into a SpatialVLAModel.

LLaVA-3D checkpoints (LlavaLlamaForCausalLM) name their tensors as below. SpatialVLAEncoder3D
keeps LLaVA-3D's sub-module names, so every tensor maps by substituting its prefix:

    model.embed_tokens / model.layers.* / model.norm      -> vlm.* (the same LlamaModel)
    model.vision_tower.vision_tower.vision_model.*        -> encoder3d.vision_tower.*
        (CLIPVisionModel as transformers 4.37 saves it: LLaVA-3D's released checkpoints)
    model.vision_tower.vision_tower.*                     -> encoder3d.vision_tower.*
        (the same tower as transformers 5 saves it, without the vision_model level)
    model.video_tower.video_tower.positional_embedding.position_embedding_head.{0,1,3}
        (Linear 3->C, LayerNorm, ReLU, Linear C->C)       -> encoder3d.position_embedding.*
    model.mm_projector.{0,2} (Linear, GELU, Linear)        -> encoder3d.mm_projector.*

Not used (reported as unused): lm_head (no text generation), the click-prompt encoder
model.video_tower.prompt_encoder.*, model.image_newline and non-persistent buffers some
versions saved (position_ids, rotary inv_freq). A load that leaves any encoder or VLM tensor
unset is an error unless asked otherwise: a checkpoint without the CLIP tower needs
vision.pretrained_path (the tower's own folder) in the config.
"""

import json
import logging
import os

from spatialvla_ros.models.checkpoint import CheckpointError
from spatialvla_ros.models.checkpoint import iter_safetensors
from spatialvla_ros.models.checkpoint import model_tensors
from spatialvla_ros.models.checkpoint import name_list
import torch

logger = logging.getLogger(__name__)

INDEX_FILE = 'model.safetensors.index.json'
_TOWER = 'model.vision_tower.vision_tower.'
# (source prefix, our prefix, layout); the first match wins, so the 4.37 level comes first.
LLAVA3D_PREFIXES = (
    (_TOWER + 'vision_model.', 'encoder3d.vision_tower.', 'transformers 4.37'),
    (_TOWER, 'encoder3d.vision_tower.', 'transformers 5'),
    ('model.video_tower.video_tower.positional_embedding.', 'encoder3d.position_embedding.',
     None),
    ('model.mm_projector.', 'encoder3d.mm_projector.', None),
    ('model.embed_tokens.', 'vlm.embed_tokens.', None),
    ('model.layers.', 'vlm.layers.', None),
    ('model.norm.', 'vlm.norm.', None),
)
# The parts a LLaVA-3D checkpoint provides, in report order: (name, our prefix, config key
# whose pretrained_path the model may have loaded the part from already).
PARTS = (
    ('vision tower', 'encoder3d.vision_tower.', 'vision'),
    ('3D position embedding', 'encoder3d.position_embedding.', None),
    ('projector', 'encoder3d.mm_projector.', None),
    ('VLM', 'vlm.', 'language_model'),
)


def map_llava3d_name(name):
    """Our tensor name for one LLaVA-3D tensor name, or None when it is not used."""
    for src, dst, _ in LLAVA3D_PREFIXES:
        if name.startswith(src):
            return dst + name[len(src):]
    return None


def _layout(name):
    return next((layout for src, _, layout in LLAVA3D_PREFIXES if name.startswith(src)), None)


def llava3d_shards(directory):
    """Shard paths of a LLaVA-3D directory: those its index names, else every *.safetensors."""
    index = os.path.join(directory, INDEX_FILE)
    if os.path.isfile(index):
        try:
            with open(index, encoding='utf-8') as f:
                weight_map = json.load(f)['weight_map']
            shards = sorted(set(weight_map.values()))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f'{index}: not a safetensors index (expected a JSON object '
                                  f"with a 'weight_map' of tensor -> shard file): {exc}") from None
        return [os.path.join(directory, shard) for shard in shards]
    shards = sorted(f for f in os.listdir(directory) if f.endswith('.safetensors'))
    if not shards:
        raise CheckpointError(f'{directory}: no *.safetensors file (and no {INDEX_FILE}); '
                              'LLaVA-3D weights must be converted to safetensors')
    return [os.path.join(directory, shard) for shard in shards]


def _part_of(name):
    return next(part for part, prefix, _ in PARTS if name.startswith(prefix))


def _parts_report(model, targets, loaded, directory):
    """Per part: tensors and parameters loaded, and where from."""
    parts = []
    for part, prefix, key in PARTS:
        names = [n for n in targets if n.startswith(prefix)]
        got = [n for n in names if n in loaded]
        pretrained = getattr(model.config, key).pretrained_path if key else ''
        if got:
            source = directory
            layouts = sorted({_layout(loaded[n]) for n in got} - {None})
            if layouts:
                source += f' ({", ".join(layouts)} names)'
            if len(got) < len(names) and pretrained:
                source += f'; the rest from {key}.pretrained_path {pretrained}'
        elif pretrained:
            source = f'{key}.pretrained_path {pretrained}'
        else:
            source = 'nowhere: random init'
        parts.append({'part': part, 'prefix': prefix, 'tensors': len(got), 'total': len(names),
                      'parameters': sum(targets[n].numel() for n in got), 'source': source})
    return parts


def load_llava3d_weights(model, llava3d_dir, allow_missing=False):
    """
    Copy LLaVA-3D weights (local directory of safetensors shards) into encoder3d + vlm.

    Arguments, by name:
        model: SpatialVLAModel whose config matches the LLaVA-3D checkpoint's shapes.
        llava3d_dir: directory with *.safetensors shards (+ model.safetensors.index.json).
        allow_missing: keep encoder / VLM tensors the checkpoint lacks as they are (random
            unless a pretrained_path of the config loaded them) instead of raising.

    Tensors of a part the config loads from a pretrained_path (vision, language_model) count
    as set. Raises CheckpointError naming the tensors when a shape differs, a tensor comes
    twice, nothing maps, or (unless allow_missing) an encoder / VLM tensor stays unset.

    Gives a report dict: 'loaded' (our name -> LLaVA-3D name), 'unused' (LLaVA-3D names not
    used), 'missing' (our names left unset), 'parts' (per part: tensors, total, parameters,
    source; see format_llava3d_report).
    """
    directory = os.fspath(llava3d_dir)
    if not os.path.isdir(directory):
        raise CheckpointError(f'{directory}: LLaVA-3D directory not found')
    targets = {k: v for k, v in model_tensors(model).items()
               if k.startswith(tuple(prefix for _, prefix, _ in PARTS))}
    loaded, unused, shaped, twice = {}, [], [], []
    with torch.no_grad():
        for path in llava3d_shards(directory):
            for src, tensor in iter_safetensors(path):  # one tensor at a time: shards are GBs
                dst = map_llava3d_name(src)
                if dst is None or dst not in targets:
                    unused.append(src)
                elif dst in loaded:
                    twice.append(f'{dst} (from {loaded[dst]} and {src})')
                elif tuple(tensor.shape) != tuple(targets[dst].shape):
                    shaped.append(f'{src} -> {dst} (file {tuple(tensor.shape)}, model '
                                  f'{tuple(targets[dst].shape)})')
                else:
                    targets[dst].copy_(tensor)  # casts to the model's dtype
                    loaded[dst] = src
    if shaped:
        raise CheckpointError(f'{directory}: mis-shaped tensors (does the config match the '
                              f'checkpoint?): {name_list(shaped)}')
    if twice:
        raise CheckpointError(f'{directory}: tensors given twice (both transformers 4.37 and 5 '
                              f'names?): {name_list(twice)}')
    if not loaded:
        raise CheckpointError(f'{directory}: no tensor maps onto the model (expected LLaVA-3D '
                              f'names such as model.layers.0.*; found {name_list(unused)})')
    preloaded = tuple(prefix for _, prefix, key in PARTS
                      if key and getattr(model.config, key).pretrained_path)
    missing = sorted(n for n in targets if n not in loaded and not n.startswith(preloaded))
    parts = _parts_report(model, targets, loaded, directory)
    if missing and not allow_missing:
        per_part = ', '.join(f'{p["part"]} {sum(_part_of(n) == p["part"] for n in missing)}/'
                             f'{p["total"]}' for p in parts
                             if any(_part_of(n) == p['part'] for n in missing))
        raise CheckpointError(
            f'{directory}: {len(missing)} encoder / VLM tensors would stay unset ({per_part}): '
            f'{name_list(missing)}. Check that the config matches the checkpoint; for a '
            'checkpoint without the vision tower set vision.pretrained_path to the folder of '
            'the tower; to keep them random on purpose, allow missing tensors '
            '(--allow-missing)')
    report = {'loaded': loaded, 'unused': sorted(unused), 'missing': missing, 'parts': parts}
    for line in format_llava3d_report(report):
        logger.info('LLaVA-3D weights: %s', line)
    return report


def format_llava3d_report(report):
    """Human-readable lines of a load_llava3d_weights report: what came from where."""
    lines = []
    for p in report['parts']:
        lines.append(f'{p["part"]}: {p["tensors"]}/{p["total"]} tensors, '
                     f'{p["parameters"]:,} parameters from {p["source"]}')
    if report['missing']:
        lines.append(f'left unset (random init): {len(report["missing"])} tensors: '
                     f'{name_list(report["missing"])}')
    if report['unused']:
        lines.append(f'not used from the checkpoint: {len(report["unused"])} tensors: '
                     f'{name_list(report["unused"])}')
    return lines


__all__ = ['INDEX_FILE', 'LLAVA3D_PREFIXES', 'format_llava3d_report', 'llava3d_shards',
           'load_llava3d_weights', 'map_llava3d_name']

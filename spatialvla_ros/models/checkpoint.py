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
Checkpoint I/O (safetensors only, never pickle).

A checkpoint is a self-contained directory:

    <dir>/config.yaml                 the experiment file: network keys, data:, train:
    <dir>/model.safetensors           every parameter once, named as in SpatialVLAModel
    <dir>/normalization.safetensors   state/action mean and std
    <dir>/tokenizer/                  the instruction tokenizer

It is written to a temporary sibling directory and renamed into place, so a reader never sees
a half-written checkpoint. Files and directories get the modes the process umask gives any
other file (another account, e.g. the robot's, can read them under the usual umask 022).
A pointer file (a training run's `checkpoints/latest`) may stand for the directory it names.
Real LLaVA-3D weights are read by `llava3d_weights`.
"""

import dataclasses
import logging
import os
import shutil
import tempfile

from safetensors import safe_open
from safetensors.torch import save_file
from spatialvla_ros.core_types import NormalizationStats
from spatialvla_ros.models.configuration_spatialvla import PLANS
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
_MAX_POINTER_BYTES = 4096


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt or does not match the model."""


def name_list(names):
    """Sorted, comma-separated names for an error message (the first few, then a count)."""
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


def _process_umask():
    """Return the process umask, read without changing it where /proc allows."""
    try:
        with open('/proc/self/status', encoding='ascii') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no /proc: set and restore at once (the only portable query)
    os.umask(mask)
    return mask


def honour_umask(path):
    """
    Give `path` the mode open() / mkdir() would give it: 0666 (file) or 0777 (dir) & ~umask.

    safetensors writes every file 0600 and mkdtemp makes directories 0700, whatever the umask;
    a checkpoint must be readable by whoever the umask lets read any other file.
    """
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~_process_umask())


def write_safetensors(tensors, path, metadata=None):
    """Write a safetensors file whose mode honours the umask (see honour_umask)."""
    save_file(tensors, path, metadata=metadata)
    honour_umask(path)


def iter_safetensors(path):
    """Yield (name, CPU tensor) of one safetensors file, one at a time; errors name the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f'{path}: file not found')
    try:
        with safe_open(path, framework='pt', device='cpu') as f:
            for key in f.keys():
                yield key, f.get_tensor(key)
    except Exception as exc:  # safetensors raises its own error types for bad bytes
        raise CheckpointError(f'{path}: not a readable safetensors file (corrupt or '
                              f'truncated?): {exc}') from None


def read_safetensors(path):
    """All tensors of one safetensors file on the CPU; errors name the file."""
    return dict(iter_safetensors(path))


def _file_metadata(path):
    try:
        with safe_open(path, framework='pt', device='cpu') as f:
            return f.metadata() or {}
    except Exception:  # only a hint for error messages; the tensors were already read
        return {}


def detect_plan(names, saved_plan=''):
    """
    Return the fusion plan a model's tensor names belong to, or None when they fit no plan.

    Late fusion projects the VLM output into the expert (`backbone.context_proj`); deep fusion
    has an expert but no projection. Gemma and Llama experts have the same tensor names, so a
    late plan is told apart by `saved_plan` (the plan save_checkpoint recorded in the file).
    """
    names = set(names)
    if 'backbone.context_proj.weight' in names:
        return saved_plan if saved_plan in ('late_gemma', 'late_llama') else 'late fusion'
    if any(n.startswith('backbone.expert.') for n in names):
        return 'deep_fusion'
    return None


def _plan_mismatch(tensors, model_path, config, config_path):
    """Return a CheckpointError when the weights are of another plan than the config, else None."""
    plan = detect_plan(tensors, _file_metadata(model_path).get('plan', ''))
    if plan is None or plan == config.plan or (plan == 'late fusion'
                                               and config.plan.startswith('late_')):
        return None
    expected = f"'{plan}'" if plan in PLANS else "'late_gemma' or 'late_llama'"
    return CheckpointError(
        f'{model_path}: the weights are a {plan} model, but {config_path} says plan: '
        f"'{config.plan}'; set the key 'plan' to {expected} (and the expert section to the "
        'shape the weights were trained with) in that config')


def resolve_checkpoint_dir(path):
    """
    Return the checkpoint directory `path` stands for: itself, or the one a pointer file names.

    A pointer file (a training run's `checkpoints/latest`) holds the name of a checkpoint
    directory beside it, so `--checkpoint-dir runs/x/checkpoints/latest` loads the newest one.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        return path
    try:
        with open(path, 'rb') as f:
            name = f.read(_MAX_POINTER_BYTES + 1).decode('utf-8').strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f'{path}: expected a checkpoint directory or a pointer file '
                              f'naming one, got an unreadable file ({exc})') from None
    target = os.path.join(os.path.dirname(os.path.abspath(path)), name)
    if (not name or len(name) > _MAX_POINTER_BYTES or '\n' in name or os.sep in name
            or name in ('.', '..') or not os.path.isdir(target)):
        raise CheckpointError(f'{path}: a pointer file naming {name[:80]!r}, which is not a '
                              f'checkpoint directory in {os.path.dirname(target)}')
    return target


def _check_and_copy(targets, tensors, source):
    """Copy `tensors` into `targets` (name -> Parameter); strict on names and shapes."""
    missing = set(targets) - set(tensors)
    unexpected = set(tensors) - set(targets)
    shaped = [f'{k} (file {tuple(tensors[k].shape)}, model {tuple(targets[k].shape)})'
              for k in sorted(set(targets) & set(tensors))
              if tuple(tensors[k].shape) != tuple(targets[k].shape)]
    problems = []
    if missing:
        problems.append(f'missing tensors: {name_list(missing)}')
    if unexpected:
        problems.append(f'unexpected tensors: {name_list(unexpected)}')
    if shaped:
        problems.append(f'mis-shaped tensors: {name_list(shaped)}')
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
        honour_umask(tmp)
        config.save_yaml(os.path.join(tmp, CONFIG_FILE))
        tensors = {k: v.detach().to('cpu').contiguous() for k, v in model_tensors(model).items()}
        write_safetensors(tensors, os.path.join(tmp, MODEL_FILE),
                          metadata={'format': 'pt', 'plan': config.plan, 'name': config.name})
        write_safetensors(stats.to_tensors(), os.path.join(tmp, STATS_FILE),
                          metadata={'format': 'pt'})
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


def without_pretrained_paths(config):
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
        directory: checkpoint directory, or a pointer file naming one (see
            resolve_checkpoint_dir).
        device: torch device for the model.
        dtype: torch dtype (None: the config's dtype).
        config_class: the sections to read from config.yaml (a policy passes PolicyConfig).

    Gives (model in eval mode, config, stats, tokenizer).
    """
    directory = resolve_checkpoint_dir(directory)
    if not os.path.isdir(directory):
        raise CheckpointError(f'{directory}: checkpoint directory not found')
    for name in (CONFIG_FILE, MODEL_FILE, STATS_FILE, TOKENIZER_DIR):
        if not os.path.exists(os.path.join(directory, name)):
            raise CheckpointError(f'{os.path.join(directory, name)}: missing from the '
                                  f'checkpoint (expected {CONFIG_FILE}, {MODEL_FILE}, '
                                  f'{STATS_FILE}, {TOKENIZER_DIR}/)')
    config_path = os.path.join(directory, CONFIG_FILE)
    config = config_class.from_yaml(config_path)
    if dtype is None:
        dtype = getattr(torch, config.dtype)
    stats_path = os.path.join(directory, STATS_FILE)
    stats = NormalizationStats.from_tensors(read_safetensors(stats_path), source=stats_path)
    model_path = os.path.join(directory, MODEL_FILE)
    tensors = read_safetensors(model_path)
    with torch.device(device):  # random init on the target device is much faster on a GPU
        model = SpatialVLAModel(without_pretrained_paths(config))
    try:
        _check_and_copy(model_tensors(model), tensors, model_path)
    except CheckpointError as exc:
        mismatch = _plan_mismatch(tensors, model_path, config, config_path)
        if mismatch is None:
            raise
        raise mismatch from exc
    model.config = config
    model.to(device=device, dtype=dtype).eval()
    tokenizer = load_tokenizer(os.path.join(directory, TOKENIZER_DIR))
    return model, config, stats, tokenizer


__all__ = ['CheckpointError', 'detect_plan', 'honour_umask', 'iter_safetensors',
           'load_checkpoint', 'model_tensors', 'name_list', 'read_safetensors',
           'resolve_checkpoint_dir', 'save_checkpoint', 'without_pretrained_paths',
           'write_safetensors']

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

"""Training checkpoints: a policy checkpoint plus the optimiser, schedule and RNG state.

    <run>/checkpoints/step_0000100/         loadable by the policy node (models.checkpoint)
        config.yaml, model.safetensors, normalization.safetensors, tokenizer/
        training/optimizer.safetensors      AdamW moments and steps, keyed '<param>::<key>'
        training/optimizer.json             param groups (params by name) and scalar state
        training/state.json                 step, scheduler, python / numpy RNG, metadata
        training/rng.safetensors            torch CPU (and CUDA) generator states
    <run>/checkpoints/latest                text file naming the newest complete step dir

Older checkpoints beyond the newest N are deleted after each save (`prune_checkpoints`).

Everything is written into a hidden staging directory that is renamed into place once
complete and fsynced; only then is `latest` replaced (write + fsync + rename). A process
killed at any moment leaves `latest` naming a complete checkpoint. No pickle anywhere.
"""

import dataclasses
import json
import os
import random
import shutil
import tempfile

import numpy as np
from spatialvla_ros.models.checkpoint import CheckpointError
from spatialvla_ros.models.checkpoint import model_tensors
from spatialvla_ros.models.checkpoint import read_safetensors
from spatialvla_ros.models.checkpoint import save_checkpoint
from spatialvla_ros.models.checkpoint import write_safetensors
from spatialvla_ros.models.modeling_spatialvla import SpatialVLAModel
import torch
from torch.distributed.checkpoint.state_dict import get_model_state_dict
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict
from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict
from torch.distributed.checkpoint.state_dict import StateDictOptions

CHECKPOINTS = 'checkpoints'
LATEST = 'latest'
TRAINING = 'training'
_SEP = '::'


def step_name(step):
    return f'step_{step:07d}'


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path, obj):
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())


def _read_json(path):
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f'{path}: unreadable training state: {exc}') from None


# ----------------------------------------------------------------------------- gathering
def full_model_state(loss_module, ctx):
    """{name: CPU tensor} of every model tensor once, on rank 0 (collective for FSDP)."""
    model = loss_module.model
    if ctx.strategy != 'fsdp':
        return {k: v.detach().to('cpu') for k, v in model_tensors(model).items()}
    full = get_model_state_dict(loss_module, options=StateDictOptions(full_state_dict=True,
                                                                      cpu_offload=True))
    if not ctx.is_main:
        return None
    full = {k[len('model.'):]: v for k, v in full.items() if k.startswith('model.')}
    # Canonical names (each shared tensor under its first name), as save_checkpoint writes.
    return {k: full[k] for k in model_tensors(model) if k in full}


def full_optimizer_state(loss_module, optimizer):
    """Optimiser state keyed by parameter name, on the CPU (collective for FSDP)."""
    return get_optimizer_state_dict(loss_module, optimizer, options=StateDictOptions(
        full_state_dict=True, cpu_offload=True))


def _model_for_saving(model, tensors):
    """Build a model holding `tensors` on 'meta' (under FSDP the real one holds shards)."""
    cfg = model.config
    # Nothing is read from disk: the gathered tensors replace every weight.
    cfg = dataclasses.replace(
        cfg, vision=dataclasses.replace(cfg.vision, pretrained_path=''),
        language_model=dataclasses.replace(cfg.language_model, pretrained_path=''),
        expert=dataclasses.replace(cfg.expert, pretrained_path=''))
    with torch.device('meta'):
        copy = SpatialVLAModel(cfg)
    targets = model_tensors(copy)
    missing = sorted(set(targets) - set(tensors))
    if missing:
        raise CheckpointError(f'gathered state lacks {missing[:5]}')
    for name in targets:
        module_name, _, leaf = name.rpartition('.')
        module = copy.get_submodule(module_name)
        value = tensors[name]
        if isinstance(getattr(module, leaf), torch.nn.Parameter):
            setattr(module, leaf, torch.nn.Parameter(value, requires_grad=False))
        else:
            module._buffers[leaf] = value
    return copy


# ----------------------------------------------------------------------------- optimizer I/O
def optimizer_to_files(osd):
    """Split a name-keyed optimizer state dict into (tensors, JSON-able scalars)."""
    tensors, scalars = {}, {}
    for name, state in osd['state'].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f'{name}{_SEP}{key}'] = value.detach().to('cpu').contiguous()
            else:
                scalars.setdefault(name, {})[key] = value
    groups = []
    for group in osd['param_groups']:
        groups.append({k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items()})
    return tensors, {'param_groups': groups, 'scalars': scalars}


def optimizer_from_files(tensors, meta):
    state = {}
    for key, value in tensors.items():
        name, _, leaf = key.rpartition(_SEP)
        state.setdefault(name, {})[leaf] = value
    for name, values in meta['scalars'].items():
        state.setdefault(name, {}).update(values)
    groups = []
    for group in meta['param_groups']:
        group = dict(group)
        if 'betas' in group:
            group['betas'] = tuple(group['betas'])
        groups.append(group)
    return {'state': state, 'param_groups': groups}


# ----------------------------------------------------------------------------- RNG
def rng_state():
    tensors = {'torch_cpu': torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f'torch_cuda_{i}'] = s
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors['numpy_keys'] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, py_gauss = random.getstate()
    scalars = {'numpy': [kind, int(pos), int(has_gauss), float(gauss)],
               'python': [version, list(internal), py_gauss]}
    return tensors, scalars


def set_rng_state(tensors, scalars):
    torch.set_rng_state(tensors['torch_cpu'])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith('torch_cuda_')]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[:torch.cuda.device_count()])
    kind, pos, has_gauss, gauss = scalars['numpy']
    np.random.set_state((kind, tensors['numpy_keys'].numpy().astype(np.uint32), pos,
                         has_gauss, gauss))
    version, internal, py_gauss = scalars['python']
    random.setstate((version, tuple(internal), py_gauss))


# ----------------------------------------------------------------------------- save / load
def save_training_checkpoint(run_dir, step, loss_module, optimizer, scheduler, stats, tokenizer,
                             ctx, extra=None):
    """Write checkpoint `step` atomically and point `latest` at it. Call on every rank.

    Args:
        loss_module: the FlowLossModule around the model (not the DDP wrapper).

    Returns:
        The checkpoint directory (on every rank).
    """
    model = loss_module.model
    tensors = full_model_state(loss_module, ctx)
    osd = full_optimizer_state(loss_module, optimizer)
    root = os.path.join(os.path.abspath(run_dir), CHECKPOINTS)
    final = os.path.join(root, step_name(step))
    if not ctx.is_main:
        return final
    os.makedirs(root, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f'.{step_name(step)}.staging-', dir=root)
    try:
        target = model if ctx.strategy != 'fsdp' else _model_for_saving(model, tensors)
        inner = os.path.join(staging, 'ckpt')
        save_checkpoint(inner, target, model.config, stats, tokenizer)  # modes honour the umask
        train_dir = os.path.join(inner, TRAINING)
        os.makedirs(train_dir)
        opt_tensors, opt_meta = optimizer_to_files(osd)
        write_safetensors(opt_tensors, os.path.join(train_dir, 'optimizer.safetensors'))
        _write_json(os.path.join(train_dir, 'optimizer.json'), opt_meta)
        rng_tensors, rng_scalars = rng_state()
        write_safetensors(rng_tensors, os.path.join(train_dir, 'rng.safetensors'))
        _write_json(os.path.join(train_dir, 'state.json'), {
            'step': int(step), 'scheduler': scheduler.state_dict(), 'rng': rng_scalars,
            'world_size': ctx.world_size, 'strategy': ctx.strategy, **(extra or {})})
        for folder in (train_dir, inner):
            _fsync_dir(folder)
        if os.path.isdir(final):  # re-saving a step: move the old one out of the way first
            os.replace(final, os.path.join(staging, 'old'))
        os.replace(inner, final)
        _fsync_dir(root)
        pointer = os.path.join(root, f'.{LATEST}.tmp-{os.getpid()}')
        with open(pointer, 'w', encoding='utf-8') as f:
            f.write(step_name(step) + '\n')
            f.flush()
            os.fsync(f.fileno())
        os.replace(pointer, os.path.join(root, LATEST))
        _fsync_dir(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def latest_checkpoint(run_dir):
    """Return the checkpoint `latest` names, or None when the run has none yet."""
    root = os.path.join(os.path.abspath(run_dir), CHECKPOINTS)
    pointer = os.path.join(root, LATEST)
    if not os.path.isfile(pointer):
        return None
    with open(pointer, encoding='utf-8') as f:
        name = f.read().strip()
    path = os.path.join(root, name)
    if not name.startswith('step_') or not os.path.isdir(path):
        raise CheckpointError(f'{pointer}: names {name!r}, which is not a checkpoint in {root}')
    return path


def clean_staging(run_dir):
    """Remove staging leftovers of a killed writer (never a complete checkpoint)."""
    root = os.path.join(os.path.abspath(run_dir), CHECKPOINTS)
    if os.path.isdir(root):
        for name in os.listdir(root):
            if name.startswith('.') and ('.staging-' in name or '.tmp' in name):
                path = os.path.join(root, name)
                shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)


def _step_of(name):
    """Return the step a checkpoint directory name holds ('step_0000100' -> 100), else None."""
    digits = name[len('step_'):]
    return int(digits) if name.startswith('step_') and digits.isdigit() else None


def prune_checkpoints(run_dir, keep_last):
    """Delete all but the newest `keep_last` checkpoints; returns the deleted directories.

    The checkpoint `latest` names (the one a resumed run continues from) counts as the newest
    and is never deleted, nor is any newer one; only older ones go, oldest first. Each is
    renamed to a hidden name before removal, so a process killed meanwhile leaves no
    half-deleted checkpoint under a step name (clean_staging removes the leftover).
    """
    latest = latest_checkpoint(run_dir)
    if latest is None or keep_last < 1:
        return []
    root, newest = os.path.dirname(latest), _step_of(os.path.basename(latest))
    older = sorted((step, name) for name in os.listdir(root)
                   if (step := _step_of(name)) is not None and step < newest
                   and os.path.isdir(os.path.join(root, name)))
    deleted = []
    for _, name in older[:max(0, len(older) - (keep_last - 1))]:
        hidden = os.path.join(root, f'.{name}.tmp-delete')
        shutil.rmtree(hidden, ignore_errors=True)
        os.replace(os.path.join(root, name), hidden)
        shutil.rmtree(hidden, ignore_errors=True)
        deleted.append(os.path.join(root, name))
    return deleted


def load_model_weights(model, checkpoint_dir):
    """Copy a checkpoint's weights into `model` (before any wrapping); strict on names/shapes."""
    path = os.path.join(checkpoint_dir, 'model.safetensors')
    tensors = read_safetensors(path)
    targets = model_tensors(model)
    if set(targets) != set(tensors):
        diff = sorted(set(targets) ^ set(tensors))
        raise CheckpointError(f'{path}: tensor names differ from the model ({diff[:5]}...)')
    with torch.no_grad():
        for name, target in targets.items():
            if tuple(tensors[name].shape) != tuple(target.shape):
                raise CheckpointError(f'{path}: {name} has shape {tuple(tensors[name].shape)}, '
                                      f'model {tuple(target.shape)}')
            target.copy_(tensors[name])


def load_training_state(checkpoint_dir, loss_module, optimizer, scheduler):
    """Restore optimiser, schedule and RNG (after wrapping); returns state.json's dict."""
    train_dir = os.path.join(checkpoint_dir, TRAINING)
    state = _read_json(os.path.join(train_dir, 'state.json'))
    osd = optimizer_from_files(read_safetensors(os.path.join(train_dir, 'optimizer.safetensors')),
                               _read_json(os.path.join(train_dir, 'optimizer.json')))
    # strict=False: parameters that never receive a gradient (the vision tower's last layer
    # when features come from the one before, the VLM's final norm) have no AdamW state.
    set_optimizer_state_dict(loss_module, optimizer, osd,
                             options=StateDictOptions(full_state_dict=True, strict=False))
    scheduler.load_state_dict(state['scheduler'])
    set_rng_state(read_safetensors(os.path.join(train_dir, 'rng.safetensors')), state['rng'])
    return state


__all__ = ['CHECKPOINTS', 'LATEST', 'clean_staging', 'full_model_state', 'latest_checkpoint',
           'load_model_weights', 'load_training_state', 'prune_checkpoints',
           'save_training_checkpoint', 'step_name']

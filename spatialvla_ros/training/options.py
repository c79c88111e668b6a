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

"""Options of one training run, defined once for the `spatialvla_train` flags and the node.

`TrainOptions` is the one table: each field holds its default, help text and allowed values.
The command's flags (`add_arguments`: field `out_dir` is `--out-dir`), the train node's ROS
parameters (same names) and both help texts (`describe_options`) are generated from its
fields. The architecture and the recipe live in the experiment YAML (config.train); these
options override a few recipe values for one run (steps, batch size, ...). Torch-free, so
`--help` and option errors answer at once.
"""

import argparse
import dataclasses
from dataclasses import dataclass
import os

# Set (to anything but '' or '0') to see the traceback of a failed run (as `--debug` does).
DEBUG_ENV = 'SPATIALVLA_DEBUG'
# A run set up wrong (bad data dir, missing topic, bad config key, checkpoint problem) raises
# one of these with a message naming what was wrong; the fronts print that one line.
USER_ERRORS = (ValueError, OSError)
_ROS_KINDS = {str: 'string', tuple: 'string array', int: 'integer', float: 'double',
              bool: 'bool'}


def _option(default, text, choices=None, required=False):
    return dataclasses.field(default=default, metadata={'help': text, 'choices': choices,
                                                        'required': required})


@dataclass(frozen=True)
class TrainOptions:
    """Runtime options of a training run; 0 / -1 / '' take the value of the config file."""

    config: str = _option('', 'experiment YAML (config/late_gemma.yaml, ...)', required=True)
    data: tuple = _option((), 'rosbag2 directories, or folders of them (mcap or sqlite3), or '
                          'LeRobot v3 dataset directories', required=True)
    out_dir: str = _option('runs/train',
                           'run directory: checkpoints/, train_log.csv, plot, cache/')
    strategy: str = _option('single', 'single | ddp | fsdp (ddp / fsdp: launch with torchrun)',
                            ('single', 'ddp', 'fsdp'))
    device: str = _option('auto', 'auto (GPU if any) | cpu | cuda | cuda:N')
    precision: str = _option('auto', 'auto (bf16 autocast on GPU, fp32 on CPU) | fp32 | bf16',
                             ('auto', 'fp32', 'bf16'))
    steps: int = _option(0, 'optimiser steps (0: train.steps of the config); with resume, '
                         'more steps than the checkpoint had extend the run')
    batch_size: int = _option(0, 'global batch size over all processes (0: train.batch_size)')
    learning_rate: float = _option(0.0, 'peak learning rate (0: train.learning_rate)')
    warmup_steps: int = _option(-1, 'warm-up steps (-1: train.warmup_steps)')
    seed: int = _option(-1, 'seed of data order, noise and init (-1: train.seed)')
    trainable: str = _option('', "'' (config) | all | expert_only (freezes encoder + VLM)",
                             ('', 'all', 'expert_only'))
    gradient_checkpointing: str = _option('', "'' (config) | true | false", ('', 'true', 'false'))
    val_every: int = _option(0, 'validate every N steps (0: train.checkpoint_every)')
    val_max_samples: int = _option(256, 'held-out samples per validation (evenly spaced; 0: all)')
    val_batch_size: int = _option(0, 'samples per validation forward (0: the batch size)')
    checkpoint_every: int = _option(0, 'checkpoint every N steps (0: train.checkpoint_every)')
    keep_last: int = _option(3, 'keep the newest N checkpoints, delete older ones (0: keep '
                             'all); the one `latest` names is never deleted')
    log_every: int = _option(0, 'CSV row every N steps (0: train.log_every)')
    resume: bool = _option(False, 'continue from <out_dir>/checkpoints/latest; with other steps '
                           'or warm-up than the checkpoint, the learning rate from there on is '
                           'that of a run planned with the new ones (warm-up, then cosine to '
                           'the new total)')
    init_checkpoint: str = _option('', 'start from this policy checkpoint (fine-tuning)')
    cache_dir: str = _option('', "decoded-episode cache ('' = <out_dir>/cache, 'none' = memory "
                             'only)')
    points_dtype: str = _option('float32', 'storage dtype of cached xyz maps: float32 | float16',
                                ('float32', 'float16'))
    keep_failed: bool = _option(False, 'also train on episodes whose outcome says success=false')
    progress: bool = _option(True, 'show a tqdm progress bar')
    plot: bool = _option(True, 'write train_loss.png at the end')

    def validate(self):
        for field in dataclasses.fields(self):
            value, allowed = getattr(self, field.name), field.metadata['choices']
            if field.metadata['required'] and not value:
                raise ValueError(f'{field.name}: got nothing, expected {field.metadata["help"]}')
            if allowed is not None and value not in allowed:
                raise ValueError(f'{field.name}: got {value!r}, expected one of '
                                 + ', '.join(repr(a) for a in allowed))
        for name in ('steps', 'batch_size', 'val_every', 'val_max_samples', 'val_batch_size',
                     'checkpoint_every', 'keep_last', 'log_every'):
            if getattr(self, name) < 0:
                raise ValueError(f'{name}: got {getattr(self, name)}, expected >= 0')
        return self


def _bool(text):
    value = str(text).strip().lower()
    if value in ('1', 'true', 'yes', 'on'):
        return True
    if value in ('0', 'false', 'no', 'off'):
        return False
    raise argparse.ArgumentTypeError(f'got {text!r}, expected true or false')


def add_arguments(parser):
    """Add a --option-name flag for every field of TrainOptions."""
    for field in dataclasses.fields(TrainOptions):
        flag = '--' + field.name.replace('_', '-')
        text, default = field.metadata['help'], field.default
        required = field.metadata['required']
        if field.type is tuple:
            parser.add_argument(flag, nargs='+', default=list(default), required=required,
                                help=text)
        elif field.type is bool:
            parser.add_argument(flag, type=_bool, nargs='?', const=True, default=default,
                                help=f'{text} (default: {default})')
        else:
            parser.add_argument(flag, type=field.type, default=default, required=required,
                                choices=field.metadata['choices'],
                                help=f'{text} (default: {default!r})')
    return parser


def describe_options():
    """One help line per option under its parameter name (the train node's --help)."""
    return ''.join(f'  {f.name} ({_ROS_KINDS[f.type]}, default {f.default!r}): '
                   f'{f.metadata["help"]}\n' for f in dataclasses.fields(TrainOptions))


def options_from_namespace(ns):
    values = {f.name: getattr(ns, f.name) for f in dataclasses.fields(TrainOptions)}
    values['data'] = tuple(values['data'])
    return TrainOptions(**values).validate()


def options_from_dict(values):
    """Build TrainOptions from a plain dict (ROS parameters); unknown keys are errors."""
    known = {f.name for f in dataclasses.fields(TrainOptions)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f'options: unknown {unknown}, expected some of {sorted(known)}')
    values = dict(values)
    if 'data' in values:
        values['data'] = tuple(values['data'])
    return TrainOptions(**values).validate()


def debug_requested(flag=False):
    """Tell whether the traceback of a failed run is wanted (`--debug` or SPATIALVLA_DEBUG)."""
    return bool(flag) or os.environ.get(DEBUG_ENV, '') not in ('', '0')


def error_line(exc):
    """Return the one line a front prints for a run set up wrong (newlines folded)."""
    return ' '.join(str(exc).split()) or type(exc).__name__


def apply_overrides(config, options):
    """Return the config with this run's overrides of train.* and the freezing switches."""
    train = config.train
    changes = {}
    for name in ('steps', 'batch_size', 'learning_rate', 'val_every', 'checkpoint_every',
                 'log_every'):
        value = getattr(options, name, 0)
        if value and hasattr(train, name):
            changes[name] = value
    if options.warmup_steps >= 0:
        changes['warmup_steps'] = options.warmup_steps
    if options.seed >= 0:
        changes['seed'] = options.seed
    if options.trainable:
        changes['trainable'] = options.trainable
    if options.gradient_checkpointing:
        changes['gradient_checkpointing'] = options.gradient_checkpointing == 'true'
    train = dataclasses.replace(train, **changes)
    if train.warmup_steps > train.steps:
        train = dataclasses.replace(train, warmup_steps=train.steps)
    return dataclasses.replace(config, train=train).validate()


__all__ = ['DEBUG_ENV', 'TrainOptions', 'USER_ERRORS', 'add_arguments', 'apply_overrides',
           'debug_requested', 'describe_options', 'error_line', 'options_from_dict',
           'options_from_namespace']

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

"""Runtime options of a training run, shared by the `train` command and the `train_node`.

One table (`OPTIONS`) defines every option once: the command builds its argparse parser from
it and the node declares its ROS parameters from it, so both front-ends take the same
options. The architecture and the recipe live in the experiment YAML (config.train); the
options here override a few recipe values for one run (steps, batch size, ...).
"""

import argparse
import dataclasses
from dataclasses import dataclass
import os

# name, type, default, help. Zero / '' means "take it from the config file".
OPTIONS = (
    ('config', str, '', 'experiment YAML (config/late_gemma.yaml, ...)'),
    ('data', list, [], 'rosbag2 directories, or folders of them (mcap or sqlite3)'),
    ('out_dir', str, 'runs/train', 'run directory: checkpoints/, train_log.csv, plot, cache/'),
    ('strategy', str, 'single', 'single | ddp | fsdp (ddp / fsdp: launch with torchrun)'),
    ('device', str, 'auto', 'auto (GPU if any) | cpu | cuda | cuda:N'),
    ('precision', str, 'auto', 'auto (bf16 autocast on GPU, fp32 on CPU) | fp32 | bf16'),
    ('steps', int, 0, 'optimiser steps (0: train.steps of the config)'),
    ('batch_size', int, 0, 'global batch size over all processes (0: train.batch_size)'),
    ('learning_rate', float, 0.0, 'peak learning rate (0: train.learning_rate)'),
    ('warmup_steps', int, -1, 'warm-up steps (-1: train.warmup_steps)'),
    ('seed', int, -1, 'seed of data order, noise and init (-1: train.seed)'),
    ('trainable', str, '', "'' (config) | all | expert_only (freezes encoder + VLM)"),
    ('gradient_checkpointing', str, '', "'' (config) | true | false"),
    ('val_every', int, 0, 'validate every N steps (0: train.checkpoint_every)'),
    ('val_max_samples', int, 256, 'held-out samples per validation (evenly spaced; 0: all)'),
    ('val_batch_size', int, 0, 'samples per validation forward (0: the batch size)'),
    ('checkpoint_every', int, 0, 'checkpoint every N steps (0: train.checkpoint_every)'),
    ('log_every', int, 0, 'CSV row every N steps (0: train.log_every)'),
    ('resume', bool, False, 'continue from <out_dir>/checkpoints/latest'),
    ('init_checkpoint', str, '', 'start from this policy checkpoint (fine-tuning)'),
    ('cache_dir', str, '', "decoded-episode cache ('' = <out_dir>/cache, 'none' = memory only)"),
    ('points_dtype', str, 'float32', 'storage dtype of cached xyz maps: float32 | float16'),
    ('keep_failed', bool, False, 'also train on episodes whose outcome says success=false'),
    ('progress', bool, True, 'show a tqdm progress bar'),
    ('plot', bool, True, 'write train_loss.png at the end'),
)
CHOICES = {
    'strategy': ('single', 'ddp', 'fsdp'),
    'precision': ('auto', 'fp32', 'bf16'),
    'trainable': ('', 'all', 'expert_only'),
    'gradient_checkpointing': ('', 'true', 'false'),
    'points_dtype': ('float32', 'float16'),
}


@dataclass(frozen=True)
class TrainOptions:
    config: str = ''
    data: tuple = ()
    out_dir: str = 'runs/train'
    strategy: str = 'single'
    device: str = 'auto'
    precision: str = 'auto'
    steps: int = 0
    batch_size: int = 0
    learning_rate: float = 0.0
    warmup_steps: int = -1
    seed: int = -1
    trainable: str = ''
    gradient_checkpointing: str = ''
    val_every: int = 0
    val_max_samples: int = 256
    val_batch_size: int = 0
    checkpoint_every: int = 0
    log_every: int = 0
    resume: bool = False
    init_checkpoint: str = ''
    cache_dir: str = ''
    points_dtype: str = 'float32'
    keep_failed: bool = False
    progress: bool = True
    plot: bool = True

    def validate(self):
        if not self.config:
            raise ValueError('config: got nothing, expected an experiment YAML path')
        if not self.data:
            raise ValueError('data: got nothing, expected rosbag2 directories or folders')
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f'{name}: got {getattr(self, name)!r}, expected one of '
                                 + ', '.join(repr(a) for a in allowed))
        for name in ('steps', 'batch_size', 'val_every', 'val_max_samples', 'val_batch_size',
                     'checkpoint_every', 'log_every'):
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
    """--option-name flags for every entry of OPTIONS."""
    for name, kind, default, text in OPTIONS:
        flag = '--' + name.replace('_', '-')
        if kind is list:
            parser.add_argument(flag, nargs='+', default=list(default), required=name == 'data',
                                help=text)
        elif kind is bool:
            parser.add_argument(flag, type=_bool, nargs='?', const=True, default=default,
                                help=f'{text} (default: {default})')
        else:
            parser.add_argument(flag, type=kind, default=default, choices=CHOICES.get(name),
                                required=name == 'config', help=f'{text} (default: {default!r})')
    return parser


def options_from_namespace(ns):
    values = {name: getattr(ns, name) for name, *_ in OPTIONS}
    values['data'] = tuple(values['data'])
    return TrainOptions(**values).validate()


def options_from_dict(values):
    """Build TrainOptions from a plain dict (ROS parameters); unknown keys are errors."""
    known = {name for name, *_ in OPTIONS}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f'options: unknown {unknown}, expected some of {sorted(known)}')
    values = dict(values)
    if 'data' in values:
        values['data'] = tuple(values['data'])
    return TrainOptions(**values).validate()


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


def build_tokenizer(config, instructions, run_dir, ctx, checkpoint=None):
    """Load or build the tokenizer: the checkpoint's, the config's or a word tokenizer.

    `checkpoint` is the one resumed or fine-tuned from: its weights need its word ids.

    Without a tokenizer_path (tiny configs) a word-level tokenizer over the dataset's
    instructions is built by rank 0 into <run_dir>/tokenizer and loaded by every rank.
    """
    from spatialvla_ros.models.tokenizer import build_word_tokenizer
    from spatialvla_ros.models.tokenizer import load_tokenizer
    from spatialvla_ros.training.distributed import barrier

    if checkpoint:
        tokenizer = load_tokenizer(os.path.join(checkpoint, 'tokenizer'))
    elif config.language_model.tokenizer_path:
        tokenizer = load_tokenizer(config.language_model.tokenizer_path)
    else:
        path = os.path.join(run_dir, 'tokenizer')
        if ctx.is_main:
            build_word_tokenizer(list(instructions), path)
        barrier(ctx)
        tokenizer = load_tokenizer(path)
    if len(tokenizer) > config.language_model.vocab_size:
        raise ValueError(f'language_model.vocab_size: got {config.language_model.vocab_size}, '
                         f"expected >= {len(tokenizer)} (the tokenizer's vocabulary)")
    return tokenizer


__all__ = ['CHOICES', 'OPTIONS', 'TrainOptions', 'add_arguments', 'apply_overrides',
           'build_tokenizer', 'options_from_dict', 'options_from_namespace']

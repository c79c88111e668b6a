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
Turn a LLaVA-3D checkpoint into a policy checkpoint (the `spatialvla_convert_llava3d` command).

    spatialvla_convert_llava3d --llava3d-dir LLaVA-3D-7B \
        --config config/llava3d_7b_deep_fusion.yaml --out checkpoints/llava3d_deep_fusion
    spatialvla_train --config config/llava3d_7b_deep_fusion.yaml --init-checkpoint \
        checkpoints/llava3d_deep_fusion --data demos/ --out-dir runs/deep_fusion

The 3D encoder (vision tower, 3D position embedding, projector) and the VLM come from the
LLaVA-3D directory (or the config's pretrained_path folders); the action expert from
expert.pretrained_path or a random init. The normalisation statistics are the identity until
training computes them from data. It prints what was loaded from where.
"""

import argparse
import os
import sys

from spatialvla_ros.core_types import NormalizationStats
from spatialvla_ros.models.checkpoint import CheckpointError
from spatialvla_ros.models.checkpoint import model_tensors
from spatialvla_ros.models.checkpoint import save_checkpoint
from spatialvla_ros.models.checkpoint import without_pretrained_paths
from spatialvla_ros.models.llava3d_weights import format_llava3d_report
from spatialvla_ros.models.llava3d_weights import load_llava3d_weights
from spatialvla_ros.models.llava3d_weights import PARTS
from spatialvla_ros.models.modeling_spatialvla import SpatialVLAModel
from spatialvla_ros.models.tokenizer import load_tokenizer
from spatialvla_ros.training.configuration_training import TrainingConfig
from spatialvla_ros.typed_config import ConfigError
import torch

DTYPES = ('config', 'float32', 'bfloat16')
DESCRIPTION = ('Write a policy checkpoint whose 3D encoder and VLM come from a LLaVA-3D '
               'checkpoint (local safetensors shards); training starts from it with '
               '--init-checkpoint, the policy node loads it with --checkpoint-dir.')


def build_parser():
    parser = argparse.ArgumentParser(prog='spatialvla_convert_llava3d', description=DESCRIPTION)
    parser.add_argument('--llava3d-dir', required=True,
                        help='LLaVA-3D directory: *.safetensors shards (+ '
                             'model.safetensors.index.json), as released')
    parser.add_argument('--config', required=True,
                        help='policy config YAML whose encoder / VLM shapes match the checkpoint '
                             '(e.g. config/llava3d_7b_deep_fusion.yaml)')
    parser.add_argument('--out', required=True, help='policy checkpoint directory to write')
    parser.add_argument('--tokenizer', default='',
                        help='tokenizer directory (default: language_model.tokenizer_path of '
                             'the config, else the LLaVA-3D directory)')
    parser.add_argument('--allow-missing', action='store_true',
                        help='keep encoder / VLM tensors the checkpoint lacks at their random '
                             'init instead of failing')
    parser.add_argument('--dtype', choices=DTYPES, default='config',
                        help="dtype of the stored weights ('config': the config's dtype)")
    return parser


def _rest_report(model, config):
    """Lines for what does not come from LLaVA-3D: the expert and the action layers."""
    ours = tuple(prefix for _, prefix, _ in PARTS)
    rest = [n for n in model_tensors(model) if not n.startswith(ours)]
    expert = [n for n in rest if n.startswith('backbone.expert.')]
    other = [n for n in rest if n not in expert]
    path = config.expert.pretrained_path
    source = f'from expert.pretrained_path {path}' if path else 'random init'
    return [f'expert: {len(expert)} tensors, {source}',
            f'action layers (suffix embedding, action head, projections): {len(other)} '
            'tensors, random init']


def convert(llava3d_dir, config_path, out, tokenizer_dir='', allow_missing=False,
            dtype='config'):
    """
    Build the policy of `config_path`, load LLaVA-3D weights into it and save a checkpoint.

    Gives (checkpoint directory, report lines).
    """
    config = TrainingConfig.from_yaml(config_path)
    tokenizer_dir = tokenizer_dir or config.language_model.tokenizer_path or llava3d_dir
    tokenizer = load_tokenizer(tokenizer_dir)
    if len(tokenizer) > config.language_model.vocab_size:
        raise ValueError(f'{config_path}: language_model.vocab_size is '
                         f'{config.language_model.vocab_size}, but the tokenizer in '
                         f'{tokenizer_dir} has {len(tokenizer)} tokens')
    model = SpatialVLAModel(config)  # the config's pretrained_path folders load here
    report = load_llava3d_weights(model, llava3d_dir, allow_missing=allow_missing)
    lines = format_llava3d_report(report) + _rest_report(model, config)
    store = config.dtype if dtype == 'config' else dtype
    model.to(getattr(torch, store))
    act = config.action
    stats = NormalizationStats.identity(act.state_dim, act.action_dim)
    # Every weight is in the checkpoint now: it must never read the source folders again.
    directory = save_checkpoint(out, model, without_pretrained_paths(config), stats, tokenizer)
    lines += [f'tokenizer: {len(tokenizer)} tokens from {tokenizer_dir}',
              'normalization: identity (training with --init-checkpoint computes it from data)',
              f'wrote {directory} ({store} weights)']
    return directory, lines


def main(args=None):
    ns = build_parser().parse_args(args)
    if not os.path.isdir(ns.llava3d_dir):
        print(f'error: --llava3d-dir {ns.llava3d_dir}: not a directory', file=sys.stderr)
        return 2
    try:
        _, lines = convert(ns.llava3d_dir, ns.config, ns.out, ns.tokenizer, ns.allow_missing,
                           ns.dtype)
    except (ConfigError, CheckpointError, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print('\n'.join(lines))
    return 0


__all__ = ['convert', 'main']


if __name__ == '__main__':
    sys.exit(main())

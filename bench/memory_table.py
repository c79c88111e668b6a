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

"""Training memory per GPU for each fusion plan and mode, from the real 7B presets.

Parameters are counted on models built on the 'meta' device (no memory, no weights), with
the trainable set each mode uses. Bytes per parameter follow the trainer: fp32 master weights
(4), fp32 gradients of trainable parameters (4), AdamW moments of trainable parameters (8);
FSDP shards all three over N processes. Activations are not included (they depend on batch,
tokens and gradient checkpointing).

    python bench/memory_table.py [--gpus 8] [--markdown]
"""

import argparse
import dataclasses
import glob
import os
import sys

GIB = 1024 ** 3
MODES = (('full', 'all'), ('expert_only', 'expert_only'))


def count(config_path, trainable):
    import torch

    from spatialvla_ros.models.modeling_spatialvla import SpatialVLAModel
    from spatialvla_ros.training.configuration_training import TrainingConfig

    cfg = TrainingConfig.from_yaml(config_path)
    cfg = dataclasses.replace(cfg, freeze_vlm=trainable == 'expert_only',
                              train=dataclasses.replace(cfg.train, trainable=trainable))
    with torch.device('meta'):
        model = SpatialVLAModel(cfg.validate())
    counts = model.num_parameters()
    largest = 0
    from spatialvla_ros.training.distributed import fsdp_units
    for unit in fsdp_units(model):
        largest = max(largest, sum(p.numel() for p in unit.parameters()))
    return cfg, counts, largest


def rows(configs, gpus):
    out = []
    for path in configs:
        for mode, trainable in MODES:
            cfg, c, largest = count(path, trainable)
            weights = 4 * c['total']
            grads = 4 * c['trainable']
            adam = 8 * c['trainable']
            single = weights + grads + adam
            # FSDP: every state sharded over the GPUs, plus one gathered unit (bf16 params and
            # fp32 grads of the largest unit) alive at a time.
            fsdp = single / gpus + largest * (2 + 4)
            out.append({'config': os.path.basename(path), 'plan': cfg.plan, 'mode': mode,
                        'total': c['total'], 'trainable': c['trainable'],
                        'weights': weights, 'grads': grads, 'adam': adam,
                        'single_ddp': single, 'fsdp': fsdp})
    return out


def main(args=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    presets = os.path.join(here, 'config', 'llava3d_7b_*.yaml')
    parser.add_argument('--configs', nargs='+', default=sorted(glob.glob(presets)))
    parser.add_argument('--gpus', type=int, default=8, help='FSDP world size (default 8)')
    ns = parser.parse_args(args)
    table = rows(ns.configs, ns.gpus)
    print(f'| plan | mode | params (B) | trainable (B) | weights fp32 | grads | AdamW | '
          f'single / DDP per GPU | FSDP x{ns.gpus} per GPU |')
    print('|---|---|---|---|---|---|---|---|---|')
    for r in table:
        print(f"| {r['plan']} | {r['mode']} | {r['total'] / 1e9:.2f} | "
              f"{r['trainable'] / 1e9:.2f} | {r['weights'] / GIB:.1f} GiB | "
              f"{r['grads'] / GIB:.1f} GiB | {r['adam'] / GIB:.1f} GiB | "
              f"{r['single_ddp'] / GIB:.1f} GiB | {r['fsdp'] / GIB:.1f} GiB |")
    return 0


if __name__ == '__main__':
    sys.exit(main())

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


"""Model latency of the three fusion plans, side by side in one run.

For each plan at the tiny size of config/<plan>.yaml (and, with --mid, a mid-size preset with
8-layer 512-wide VLM and a 256-wide expert), in fp32 and bf16: prefix time (3D encoder + VLM
(+ expert context) once), time of one denoising step (suffix only, prefix K/V cached), a full
chunk with the prefix cache (`sample_actions`) and a full chunk recomputing the prefix at every
step; the ratio recompute / cached is printed per row. Random weights: latency does not depend
on their values. Every figure is the median of --repeats runs in this one process.

    python bench/model_latency.py [--mid] [--repeats 20] [--threads 2] [--device cuda]
"""

import argparse
import dataclasses
import os
import sys

from spatialvla_ros.models.configuration_spatialvla import PLANS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mid_config(config):
    """Return a mid-size variant of a tiny config (same plan): 8 layers, VLM 512, expert 256."""
    r = dataclasses.replace
    vision = r(config.vision, image_size=224, patch_size=14, hidden_size=256,
               num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
               feature_layer=-2)
    lm = r(config.language_model, hidden_size=512, num_hidden_layers=8, num_attention_heads=8,
           num_key_value_heads=8, head_dim=64, intermediate_size=1408)
    expert = r(config.expert, hidden_size=256, num_hidden_layers=8, num_attention_heads=8,
               num_key_value_heads=1 if config.expert.architecture == 'gemma' else 8,
               head_dim=64, intermediate_size=704)
    return r(config, name=f'{config.plan}_mid', vision=vision, language_model=lm, expert=expert,
             encoder3d=r(config.encoder3d, max_visual_tokens=256),
             action=r(config.action, chunk_size=50)).validate()


def main(args=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--mid', action='store_true', help='also the mid-size preset')
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--dtypes', default='float32,bfloat16')
    parser.add_argument('--plans', default=','.join(PLANS))
    ns = parser.parse_args(args)

    import torch

    from spatialvla_ros.evaluation.latency import dummy_observation
    from spatialvla_ros.evaluation.latency import measure_model
    from spatialvla_ros.models.modeling_spatialvla import SpatialVLAModel
    from spatialvla_ros.policies.configuration_policy import PolicyConfig

    if ns.threads > 0:
        torch.set_num_threads(ns.threads)
    sizes = ['tiny'] + (['mid'] if ns.mid else [])
    print(f'model latency, median of {ns.repeats}, batch 1, device {ns.device}, '
          f'{torch.get_num_threads()} thread(s), torch {torch.__version__}')
    head = (f'{"plan":<12s} {"size":<5s} {"dtype":<9s} {"params":>9s} {"tokens":>6s} '
            f'{"prefix ms":>9s} {"step ms":>8s} {"chunk ms":>9s} {"no-cache ms":>11s} '
            f'{"ratio":>6s}')
    print(head)
    print('-' * len(head))
    for size in sizes:
        for plan in ns.plans.split(','):
            config = PolicyConfig.from_yaml(os.path.join(REPO, 'config', f'{plan}.yaml'))
            if size == 'mid':
                config = mid_config(config)
            torch.manual_seed(0)
            base = SpatialVLAModel(config).eval()
            obs = dummy_observation(config)
            for dtype in ns.dtypes.split(','):
                model = base.to(device=ns.device, dtype=getattr(torch, dtype))
                out = measure_model(model, obs, repeats=ns.repeats)
                params = model.num_parameters()['total']
                tokens = config.encoder3d.max_visual_tokens + config.language_model.max_text_tokens
                flag = '' if out['recompute_matches'] else '  (!) cached and recomputed differ'
                print(f'{plan:<12s} {size:<5s} {dtype:<9s} {params:>9,d} {tokens:>6d} '
                      f'{out["prefix_s"] * 1e3:>9.2f} {out["step_s"] * 1e3:>8.2f} '
                      f'{out["chunk_s"] * 1e3:>9.2f} {out["chunk_recompute_s"] * 1e3:>11.2f} '
                      f'{out["recompute_ratio"]:>5.1f}x{flag}', flush=True)
            del base, model
    print('ratio = chunk recomputing the prefix at every denoising step / chunk with the '
          'prefix K/V cached (same process, same inputs)')
    return 0


if __name__ == '__main__':
    sys.exit(main())

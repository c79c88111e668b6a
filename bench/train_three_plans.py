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

"""Proof that every fusion plan learns: held-out action MSE <= 25 % of predict-the-mean.

Records scripted-expert demonstrations in the simulator (one mcap bag per episode), trains
each plan at its tiny CPU config (config/<plan>.yaml) on the same episodes with the same
held-out split, and prints held-out action MSE (robot units, full denoised chunks) against
the baseline that always predicts the training mean action.

    python bench/train_three_plans.py --out runs/three_plans [--episodes 64] [--steps 2000]
"""

import argparse
import json
import os
import subprocess
import sys
import time

from spatialvla_ros.models.configuration_spatialvla import PLANS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(args=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default=os.path.join(REPO, 'runs', 'three_plans'))
    parser.add_argument('--episodes', type=int, default=64, help='demonstrations to record')
    parser.add_argument('--tasks', default='reach', help='simulator tasks (comma list)')
    parser.add_argument('--image-size', type=int, default=64, help='camera image size [px]')
    parser.add_argument('--steps', type=int, default=2000,
                        help="optimiser steps per plan (0: the config's train.steps)")
    parser.add_argument('--plans', nargs='+', default=list(PLANS), choices=PLANS)
    parser.add_argument('--threshold', type=float, default=0.25,
                        help='pass if val_mse / baseline_mse <= this')
    ns = parser.parse_args(args)
    demos = os.path.join(ns.out, 'demos')
    # generate_demos keeps what an earlier run recorded with the same settings.
    subprocess.run([sys.executable, '-m', 'spatialvla_ros.tools.generate_demos', '--out',
                    demos, '--episodes', str(ns.episodes), '--tasks', ns.tasks,
                    '--image-size', str(ns.image_size), '--no-cloud'], check=True)
    results = {}
    for plan in ns.plans:
        run = os.path.join(ns.out, plan)
        summary = os.path.join(run, 'summary.json')
        start = time.monotonic()
        cmd = [sys.executable, '-m', 'spatialvla_ros.tools.train', '--config',
               os.path.join(REPO, 'config', f'{plan}.yaml'), '--data', demos, '--out-dir', run,
               '--cache-dir', os.path.join(ns.out, 'cache'), '--val-every', '250',
               '--val-max-samples', '0', '--progress', 'false', '--summary-json', summary]
        if ns.steps:
            cmd += ['--steps', str(ns.steps)]
        subprocess.run(cmd, check=True)
        with open(summary, encoding='utf-8') as f:
            results[plan] = json.load(f)
        results[plan]['wall_s'] = time.monotonic() - start
    print()
    print('| plan | params | steps | train / val episodes | val samples | held-out MSE | '
          'mean baseline MSE | ratio | pass (<= %.0f %%) | wall [s] |' % (100 * ns.threshold))
    print('|---|---|---|---|---|---|---|---|---|---|')
    ok = True
    for plan, r in results.items():
        passed = r['mse_ratio'] <= ns.threshold
        ok &= passed
        print(f"| {plan} | {r.get('params', '')} | {r['steps']} | {r['train_episodes']} / "
              f"{r['val_episodes']} | {r['val_samples']} | {r['val_mse']:.5f} | "
              f"{r['baseline_mse']:.5f} | {r['mse_ratio']:.3f} | {'yes' if passed else 'NO'} | "
              f"{r['wall_s']:.0f} |")
    for plan, r in results.items():
        print(f'{plan} per-step MSE (first -> last of the chunk): '
              + ' '.join(f'{v:.4f}' for v in r['val_mse_per_step']))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())

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

"""Train a SpatialVLA policy on rosbag2 demonstrations (the `spatialvla_train` command).

    spatialvla_train --config config/late_gemma.yaml --data demos/ --out-dir runs/gemma
    torchrun --nproc-per-node 2 -m spatialvla_ros.tools.train --strategy ddp ...   (or fsdp)

The checkpoint it writes (<out-dir>/checkpoints/latest) is what the policy node loads.
"""

import argparse
import json
import logging
import sys

from spatialvla_ros.training.options import add_arguments
from spatialvla_ros.training.options import options_from_namespace


def build_parser():
    parser = argparse.ArgumentParser(
        prog='spatialvla_train',
        description='Train a SpatialVLA policy (any fusion plan) on rosbag2 demonstrations; '
                    'single process, or DDP / FSDP under torchrun.')
    add_arguments(parser)
    parser.add_argument('--summary-json', default='',
                        help='also write the final summary (metrics, paths) to this file')
    return parser


def main(args=None):
    ns = build_parser().parse_args(args)   # --help exits here, before torch is imported
    try:
        options = options_from_namespace(ns)
    except ValueError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    from spatialvla_ros.training.trainer import train

    summary = train(options)
    if summary is None:
        return 0
    brief = {k: v for k, v in summary.items() if not k.endswith(('_per_dim', '_per_step'))
             and k != 'warnings'}
    brief['warnings'] = len(summary.get('warnings', []))
    if summary.get('rank', 0) == 0:
        print(json.dumps(brief, indent=1, default=str))
        if ns.summary_json:
            with open(ns.summary_json, 'w', encoding='utf-8') as f:
                json.dump(summary, f, indent=1, default=str)
    return 0


if __name__ == '__main__':
    sys.exit(main())

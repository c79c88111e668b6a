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
    spatialvla_train ... --out-dir runs/gemma --resume --steps 3000   (extend the run)

The checkpoint it writes (<out-dir>/checkpoints/latest) is what the policy node loads; the
newest --keep-last (3) checkpoints are kept. Errors in the setup of a run print one line and
exit with status 2 (--debug adds the traceback).
"""

import argparse
import json
import logging
import sys
import traceback

from spatialvla_ros.training.options import add_arguments
from spatialvla_ros.training.options import DEBUG_ENV
from spatialvla_ros.training.options import debug_requested
from spatialvla_ros.training.options import error_line
from spatialvla_ros.training.options import options_from_namespace
from spatialvla_ros.training.options import USER_ERRORS


def build_parser():
    parser = argparse.ArgumentParser(
        prog='spatialvla_train',
        description='Train a SpatialVLA policy (any fusion plan) on rosbag2 demonstrations; '
                    'single process, or DDP / FSDP under torchrun. A run set up wrong (data, '
                    'topics, config, checkpoint) exits with status 2 and a one-line error.')
    add_arguments(parser)
    parser.add_argument('--summary-json', default='',
                        help='also write the final summary (metrics, paths) to this file')
    parser.add_argument('--debug', action='store_true',
                        help=f'print the traceback of an error too (or set {DEBUG_ENV}=1)')
    return parser


def main(args=None):
    ns = build_parser().parse_args(args)   # --help and bad flags exit here, before torch
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    try:
        options = options_from_namespace(ns)
        # Deferred: torch takes seconds to import, so option errors answer at once.
        from spatialvla_ros.training.trainer import train
        summary = train(options)
    except USER_ERRORS as exc:
        if debug_requested(ns.debug):
            traceback.print_exc()
        print(f'error: {error_line(exc)}', file=sys.stderr)
        return 2
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

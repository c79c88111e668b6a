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

"""3D tokens against the 2D ablation: closed-loop success at the nominal and shifted mounts.

Every checkpoint runs the same held-out episodes in one process (`evaluation.in_process`, the
policy loaded as the node loads it), first at the nominal camera mount, then once per
`--shift CM DEG`: each episode's mount moved by up to CM per axis and turned by up to DEG
about each axis, drawn from the episode seed (the same mounts for every checkpoint; the
policy is told each episode's mount, as the node learns it from the mount topic). A 2D
checkpoint is one trained with `encoder3d.position_encoding: none`. Prints success with its
95% Wilson interval per checkpoint, mount and task, and writes them to OUT/ablation_3d.json.

    python bench/ablation_3d.py 3d=DIR_3D 2d=DIR_2D --episodes 30 --shift 5 5 --shift 15 15

The closed-loop flags (--tasks, --episodes, --seed-start, --max-steps, --execute-steps,
--image-size, ...) mean what they mean in spatialvla_closed_loop; 0 / '' takes each
checkpoint's recipe. Shifted mounts need the camera jitter of ClosedLoopOptions
(camera_jitter_cm / camera_jitter_deg).
"""

import argparse
import dataclasses
import json
import os
import sys
import time

from spatialvla_ros.evaluation.closed_loop import summarize
from spatialvla_ros.policies.configuration_policy import PolicyConfig
from spatialvla_ros.tools.closed_loop import run_checkpoint_in_process
from spatialvla_ros.tools.flags import add_closed_loop_arguments
from spatialvla_ros.tools.flags import options_from_args


def _checkpoint(text):
    label, _, path = text.rpartition('=')
    path = path.strip()
    if not os.path.isfile(os.path.join(path, 'config.yaml')):
        raise argparse.ArgumentTypeError(f'{path!r}: no config.yaml there (expected a '
                                         'checkpoint directory, optionally LABEL=DIR)')
    return label or os.path.basename(os.path.normpath(path)), path


def encoding_of(checkpoint_dir):
    """Return '2D' for the ablation (position_encoding none), else '3D (<encoding>)'."""
    config = PolicyConfig.from_yaml(os.path.join(checkpoint_dir, 'config.yaml'))
    kind = config.encoder3d.position_encoding
    return '2D' if kind == 'none' else f'3D ({kind})'


def mounts(shifts):
    """(label, ClosedLoopOptions changes) of the nominal mount and of each shift."""
    out = [('nominal', {})]
    for cm, deg in shifts:
        out.append((f'+-{cm:g} cm, +-{deg:g} deg',
                    {'camera_jitter_cm': float(cm), 'camera_jitter_deg': float(deg)}))
    return out


def evaluate(checkpoints, ns, progress=None):
    """Run every checkpoint at every mount; return one row per checkpoint, mount and task."""
    rows = []
    for label, path in checkpoints:
        base = options_from_args(ns, path)
        kind = encoding_of(path)
        for mount, changes in mounts(ns.shift):
            options = dataclasses.replace(base, **changes)
            start = time.monotonic()
            results = run_checkpoint_in_process(path, options, progress=progress)
            wall = time.monotonic() - start
            for task, row in summarize(results, options.tasks).items():
                rows.append({'checkpoint': label, 'path': path, 'encoding': kind,
                             'mount': mount, 'task': task, 'episodes': row['episodes'],
                             'successes': row['successes'], 'success_rate': row['success_rate'],
                             'success_ci95': row['success_ci95'], 'wall_s': wall})
    return rows


def table(rows):
    """Markdown table of the rows, checkpoints side by side per mount and task."""
    lines = ['| mount | task | checkpoint | encoding | success | 95% interval |',
             '|---|---|---|---|---|---|']
    for row in sorted(rows, key=lambda r: (r['mount'] != 'nominal', r['mount'], r['task'])):
        lo, hi = row['success_ci95']
        lines.append(f"| {row['mount']} | {row['task']} | {row['checkpoint']} | "
                     f"{row['encoding']} | {row['successes']}/{row['episodes']} "
                     f"({100 * row['success_rate']:.0f}%) | {100 * lo:.0f}..{100 * hi:.0f}% |")
    return '\n'.join(lines)


def build_parser():
    parser = argparse.ArgumentParser(
        prog='ablation_3d', description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('checkpoints', nargs='+', type=_checkpoint, metavar='[LABEL=]DIR',
                        help='checkpoints to compare (e.g. 3d=DIR 2d=DIR)')
    parser.add_argument('--shift', type=float, nargs=2, action='append', default=[],
                        metavar=('CM', 'DEG'),
                        help='also evaluate with per-episode mounts moved up to CM per axis '
                             'and turned up to DEG about each axis (repeatable)')
    add_closed_loop_arguments(parser, episodes=30, out_dir='ablation_3d')
    return parser


def main(args=None):
    ns = build_parser().parse_args(args)
    rows = evaluate(ns.checkpoints, ns)
    os.makedirs(ns.out_dir, exist_ok=True)
    path = os.path.join(ns.out_dir, 'ablation_3d.json')
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(rows, f, indent=1)
    print(table(rows))
    print(f'rows: {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

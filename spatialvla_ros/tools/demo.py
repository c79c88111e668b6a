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


"""The main job in one command: the simulated Panda driven by the default policy over ROS 2.

    ./scripts/demo.sh       (sets up the machine, then: python -m spatialvla_ros.tools.demo)
    spatialvla_demo --episodes 10 --out-dir demo_output

1. obtains the default checkpoint (checkpoints/default, trained by this project's trainer with
   `make_default_checkpoint`; rebuilt with that command if it is missing);
2. starts the simulator node and the policy node as separate processes (DDS between them);
3. runs closed-loop episodes of each task the checkpoint was made for (one each by default,
   `--episodes N` for more) on held-out seeds (never seen in training), in a ROS domain of
   their own, through the same code and flags as `spatialvla_closed_loop`;
4. prints the success rate and the chunk latency and points to the report and its plots.
"""

import argparse
import os
import sys
import threading
import time

from spatialvla_ros.evaluation import report
from spatialvla_ros.evaluation.closed_loop import checkpoint_recipe
from spatialvla_ros.evaluation.closed_loop import summarize
from spatialvla_ros.evaluation.replay import distribution
from spatialvla_ros.tools.closed_loop import run_closed_loop
from spatialvla_ros.tools.flags import add_closed_loop_arguments
from spatialvla_ros.tools.flags import options_from_args

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_CHECKPOINT = os.path.join(REPO, 'checkpoints', 'default')


class Progress:
    """Numbered stage lines with elapsed time (the demo's progress indication)."""

    def __init__(self, stages):
        self.stages = stages
        self.start = time.monotonic()
        self.index = 0

    def stage(self, text):
        self.index += 1
        print(f'[demo {self.index}/{self.stages} | {self.elapsed()}] {text}', flush=True)

    def note(self, text):
        print(f'    {self.elapsed()}  {text}', flush=True)

    def elapsed(self):
        s = int(time.monotonic() - self.start)
        return f'{s // 60:02d}:{s % 60:02d}'


def build_parser():
    parser = argparse.ArgumentParser(
        prog='spatialvla_demo',
        description='Run the default SpatialVLA policy on the simulated Panda over ROS 2 '
                    '(simulator and policy node as separate processes) for a few held-out '
                    'episodes of each task; print success and latency.')
    parser.add_argument('--checkpoint', default=DEFAULT_CHECKPOINT,
                        help='policy checkpoint (default: the shipped %(default)s)')
    # Lockstep by default: the demo shows the same episodes on every run and machine.
    return add_closed_loop_arguments(parser, episodes=1, lockstep=True,
                                     out_dir=os.path.join(REPO, 'outputs', 'demo'))


def ensure_checkpoint(path, progress):
    """Return the checkpoint folder; rebuild the default one if it is missing."""
    if os.path.isfile(os.path.join(path, 'model.safetensors')):
        made = checkpoint_recipe(path).get('command', 'unknown command')
        progress.note(f'checkpoint {path} (made by: {made})')
        return path
    if os.path.abspath(path) != DEFAULT_CHECKPOINT:
        raise FileNotFoundError(f'--checkpoint {path}: no model.safetensors there')
    progress.note('the default checkpoint is missing: training it now with '
                  'make_default_checkpoint (about 15-25 minutes on 2 cores)')
    # Deferred: the recipe imports torch and the trainer, which only this rare path needs;
    # the demo itself leaves torch to the policy node's process.
    from spatialvla_ros.tools import make_default_checkpoint

    ns = make_default_checkpoint.build_parser().parse_args([])
    return make_default_checkpoint.make(ns)


def main(args=None):
    ns = build_parser().parse_args(args)
    progress = Progress(4)
    progress.stage('default checkpoint')
    try:
        checkpoint = ensure_checkpoint(os.path.abspath(ns.checkpoint), progress)
        options = options_from_args(ns, checkpoint)
    except (FileNotFoundError, ValueError) as exc:
        print(f'spatialvla_demo: error: {exc}', file=sys.stderr)
        return 1
    out_dir = os.path.abspath(ns.out_dir)
    progress.stage('starting the simulator node and the policy node (separate processes; '
                   f'logs in {out_dir})')

    heartbeat = _Heartbeat(progress)

    def on_status(text):
        progress.note(text)
        if text.startswith('starting'):
            heartbeat.start()
        else:
            heartbeat.stop()

    def on_episode(result, done, total):
        heartbeat.stop()
        if done == 1:
            progress.stage(f'closed loop: {total} episode(s) ({", ".join(options.tasks)}) on '
                           f'held-out seeds {options.seed_start}..'
                           f'{options.seed_start + options.episodes - 1}')
        verdict = 'success' if result.success else 'failure'
        timing = (f'in {result.time_to_success_s:.1f} s' if result.success
                  else f'after {result.steps} ticks')
        progress.note(f'episode {done}/{total}  {result.task} seed {result.seed}  '
                      f'"{result.instruction}": {verdict} {timing}, {result.chunks} chunks')

    try:
        results = run_closed_loop(checkpoint, options, out_dir, progress=on_episode,
                                  on_status=on_status)
    finally:
        heartbeat.stop()
    progress.stage('results')
    made = checkpoint_recipe(checkpoint).get('command', '?')
    path = report.write_closed_loop_report(
        results, options, out_dir, notes=[f'checkpoint: `{checkpoint}`', f'made by: `{made}`'])
    print()
    for task, row in summarize(results, options.tasks).items():
        lo, hi = row['success_ci95']
        print(f'  {task}: {row["successes"]}/{row["episodes"]} successful '
              f'({100 * row["success_rate"]:.0f}%, 95% interval {100 * lo:.0f}..{100 * hi:.0f}%)'
              f', mean time to success {report.fmt(row["time_to_success_s"], 3)} s')
    dist = distribution([v for r in results for v in r.latencies_s])
    print(f'  chunk latency (policy node, observation -> trajectory): p50 '
          f'{dist["p50"] * 1e3:.1f} ms, p90 {dist["p90"] * 1e3:.1f} ms, max '
          f'{dist["max"] * 1e3:.1f} ms over {dist["count"]} chunks')
    print(f'  report: {path}')
    print(f'  plots:  {os.path.join(out_dir, "closed_loop.png")}')
    print(f'  total time {progress.elapsed()}')
    return 0


class _Heartbeat:
    """Prints 'still loading' lines while the nodes start (torch import, checkpoint)."""

    def __init__(self, progress, every_s=5.0):
        self._progress, self._every = progress, every_s
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

    def _run(self):
        while not self._stop.wait(self._every):
            self._progress.note('waiting for the nodes to come up (loading torch and the '
                                'checkpoint)...')

    def stop(self):
        self._stop.set()


if __name__ == '__main__':
    sys.exit(main())

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
3. runs a few closed-loop reach episodes on held-out seeds (never seen in training);
4. prints the success rate and the chunk latency and points to the report and its plots.
"""

import argparse
import json
import os
import sys
import time

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
                    'episodes; print success and latency.')
    parser.add_argument('--checkpoint', default=DEFAULT_CHECKPOINT,
                        help='policy checkpoint (default: the shipped %(default)s)')
    parser.add_argument('--episodes', type=int, default=5, help='episodes (default: 5)')
    parser.add_argument('--task', default='', help="task (default: the checkpoint's, reach)")
    parser.add_argument('--seed-start', type=int, default=0,
                        help='first seed (0: the held-out range, 1,000,000)')
    parser.add_argument('--out-dir', default=os.path.join(REPO, 'outputs', 'demo'),
                        help='report, plots and node logs (default: %(default)s)')
    return parser


def _recipe(checkpoint):
    try:
        with open(os.path.join(checkpoint, 'recipe.json'), encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def ensure_checkpoint(path, progress):
    """Return the checkpoint folder; rebuild the default one if it is missing."""
    if os.path.isfile(os.path.join(path, 'model.safetensors')):
        recipe = _recipe(path)
        made = recipe.get('command', 'unknown command')
        progress.note(f'checkpoint {path} (made by: {made})')
        return path
    if os.path.abspath(path) != DEFAULT_CHECKPOINT:
        raise FileNotFoundError(f'--checkpoint {path}: no model.safetensors there')
    progress.note('the default checkpoint is missing: training it now with '
                  'make_default_checkpoint (about 15-25 minutes on 2 cores)')
    from spatialvla_ros.tools import make_default_checkpoint

    ns = make_default_checkpoint.build_parser().parse_args([])
    return make_default_checkpoint.make(ns)


def main(args=None):
    ns = build_parser().parse_args(args)
    if ns.episodes < 1:
        print(f'error: --episodes: got {ns.episodes}, expected >= 1', file=sys.stderr)
        return 2
    progress = Progress(4)
    progress.stage('default checkpoint')
    try:
        checkpoint = ensure_checkpoint(os.path.abspath(ns.checkpoint), progress)
    except FileNotFoundError as exc:
        print(f'spatialvla_demo: error: {exc}', file=sys.stderr)
        return 1
    recipe = _recipe(checkpoint)
    from spatialvla_ros.tools import closed_loop
    from spatialvla_ros.evaluation import report

    task = ns.task or recipe.get('recipe', {}).get('task', 'reach')
    camera = closed_loop.recipe_camera(checkpoint)
    options = closed_loop.ClosedLoopOptions(
        tasks=(task,), episodes=ns.episodes,
        seed_start=ns.seed_start or closed_loop.HELD_OUT_SEED_START,
        image_size=camera['image_size'], fov_deg=camera['fov_deg'],
        execute_steps=camera['execute_steps'])
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
            progress.stage(f'closed loop: {total} {task} episodes on held-out seeds '
                           f'{options.seed_start}..{options.seed_start + total - 1}')
        verdict = 'success' if result.success else 'failure'
        timing = (f'in {result.time_to_success_s:.1f} s' if result.success
                  else f'after {result.steps} ticks')
        progress.note(f'episode {done}/{total}  seed {result.seed}  "{result.instruction}": '
                      f'{verdict} {timing}, {result.chunks} chunks')

    try:
        results = closed_loop.run_closed_loop(checkpoint, options, out_dir,
                                              progress=on_episode, on_status=on_status)
    finally:
        heartbeat.stop()
    progress.stage('results')
    path = report.write_closed_loop_report(
        results, options, out_dir, notes=[f'checkpoint: `{checkpoint}`',
                                          f'made by: `{recipe.get("command", "?")}`'])
    row = closed_loop.summarize(results, options.tasks)[task]
    lat = row['latency_s']
    print(f'\n  success: {row["successes"]}/{row["episodes"]} {task} episodes '
          f'({100 * row["success_rate"]:.0f}%), mean time to success '
          f'{report.fmt(row["time_to_success_s"], 3)} s')
    print(f'  chunk latency (policy node, observation -> trajectory): p50 '
          f'{lat["p50"] * 1e3:.1f} ms, p90 {lat["p90"] * 1e3:.1f} ms, max '
          f'{lat["max"] * 1e3:.1f} ms over {lat["count"]} chunks')
    print(f'  report: {path}')
    print(f'  plots:  {os.path.join(out_dir, "closed_loop.png")}')
    print(f'  total time {progress.elapsed()}')
    return 0


class _Heartbeat:
    """Prints 'still loading' lines while the nodes start (torch import, checkpoint)."""

    def __init__(self, progress, every_s=5.0):
        import threading
        self._progress, self._every = progress, every_s
        self._stop = threading.Event()
        self._thread = None
        self._threading = threading

    def start(self):
        if self._thread is None:
            self._thread = self._threading.Thread(target=self._run, daemon=True)
            self._thread.start()

    def _run(self):
        while not self._stop.wait(self._every):
            self._progress.note('waiting for the nodes to come up (loading torch and the '
                                'checkpoint)...')

    def stop(self):
        self._stop.set()


if __name__ == '__main__':
    sys.exit(main())

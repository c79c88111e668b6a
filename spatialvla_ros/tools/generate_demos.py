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

"""Generate scripted-expert demonstrations: one rosbag2 (mcap) per episode, in parallel.

Episode i runs task tasks[i % len(tasks)] with seed seed_start + i and is written to
OUT/<task>_<seed:06d>/ with exactly the topics, types and stamps the sim node publishes live
(see spatialvla_ros.sim.rollout). Episodes are independent, so they are spread over worker
processes (no ROS middleware involved). OUT/summary.json lists every episode's outcome.
"""

import argparse
import json
import multiprocessing
import os
import shutil
import sys

from spatialvla_ros.sim.constants import TASKS
from tqdm import tqdm

T0_NS = 1_700_000_000 * 1_000_000_000   # stamp of every episode's first tick (fixed: reproducible)

_worker = {}


def _init_worker(options):
    # One simulator + IK solver per process, reused by its episodes (loading the Panda is slow).
    from spatialvla_ros.sim.camera import CameraSpec
    from spatialvla_ros.sim.expert import PandaIK
    from spatialvla_ros.sim.messages import SimTopics
    from spatialvla_ros.sim.panda_env import PandaEnv
    spec = CameraSpec(width=options['width'], height=options['height'],
                      renderer=options['renderer'])
    _worker['env'] = PandaEnv(spec)
    _worker['ik'] = PandaIK()
    _worker['topics'] = SimTopics(cloud='' if options['no_cloud'] else SimTopics.cloud)
    _worker['options'] = options


def _run_one(job):
    from spatialvla_ros.data.recorder import EpisodeRecorder
    from spatialvla_ros.sim import messages as sim_msgs
    from spatialvla_ros.sim.rollout import run_episode
    task_name, seed = job
    options, topics = _worker['options'], _worker['topics']
    path = os.path.join(options['out'], f'{task_name}_{seed:06d}')
    recorder = EpisodeRecorder(path, sim_msgs.topic_table(topics), sim_msgs.typestore())
    try:
        task, success, steps = run_episode(_worker['env'], task_name, seed, T0_NS,
                                           options['rate'], topics, _worker['ik'],
                                           sink=recorder.write)
    finally:
        recorder.close()
    if not success and not options['keep_failed']:
        shutil.rmtree(path)
    return {'bag': os.path.basename(path), 'task': task_name, 'seed': seed,
            'success': bool(success), 'steps': steps, 'instruction': task.instruction,
            'kept': bool(success or options['keep_failed'])}


def _image_size(text):
    try:
        if 'x' in text:
            w, h = (int(v) for v in text.lower().split('x'))
        else:
            w = h = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'got {text!r}, expected N or WxH (pixels)') from None
    if w < 8 or h < 8:
        raise argparse.ArgumentTypeError(f'got {text!r}, expected at least 8x8 pixels')
    return w, h


def _tasks(text):
    names = [t.strip() for t in text.split(',') if t.strip()]
    bad = [t for t in names if t not in TASKS]
    if not names or bad:
        raise argparse.ArgumentTypeError(f'got {text!r}, expected a comma list of {TASKS}')
    return names


def build_parser():
    parser = argparse.ArgumentParser(
        prog='generate_demos',
        description='Record scripted-expert episodes of the Panda simulator as rosbag2 (mcap) '
                    'bags, one directory per episode, using several processes.')
    parser.add_argument('--out', required=True, help='output folder (created if missing)')
    parser.add_argument('--episodes', type=int, default=30, help='number of episodes (N)')
    parser.add_argument('--tasks', type=_tasks, default=list(TASKS),
                        help='comma list of tasks, cycled over episodes (default: %(default)s)')
    parser.add_argument('--seed-start', type=int, default=0,
                        help='seed of the first episode; episode i uses seed-start + i')
    parser.add_argument('--workers', type=int, default=max(1, (os.cpu_count() or 2) - 1),
                        help='worker processes (default: cores - 1)')
    parser.add_argument('--image-size', type=_image_size, default=(128, 128),
                        help='camera image size, N or WxH pixels (default: 128)')
    parser.add_argument('--rate', type=float, default=10.0,
                        help='control and camera rate [Hz] (default: 10)')
    parser.add_argument('--renderer', choices=('tiny', 'egl'), default='tiny',
                        help='pybullet renderer (egl falls back to tiny if not loadable)')
    parser.add_argument('--no-cloud', action='store_true', help='do not record the PointCloud2')
    parser.add_argument('--keep-failed', action='store_true',
                        help='keep bags of failed episodes (their outcome says success=false)')
    return parser


def main(args=None):
    ns = build_parser().parse_args(args)
    if ns.episodes < 1:
        print(f'error: --episodes: got {ns.episodes}, expected >= 1', file=sys.stderr)
        return 2
    jobs = [(ns.tasks[i % len(ns.tasks)], ns.seed_start + i) for i in range(ns.episodes)]
    clash = [f'{t}_{s:06d}' for t, s in jobs
             if os.path.exists(os.path.join(ns.out, f'{t}_{s:06d}'))]
    if clash:
        print(f'error: --out {ns.out}: episode folders exist already ({clash[0]}, ...); '
              'choose another folder or --seed-start', file=sys.stderr)
        return 2
    os.makedirs(ns.out, exist_ok=True)
    options = {'out': ns.out, 'width': ns.image_size[0], 'height': ns.image_size[1],
               'renderer': ns.renderer, 'rate': ns.rate, 'no_cloud': ns.no_cloud,
               'keep_failed': ns.keep_failed}
    workers = max(1, min(ns.workers, len(jobs)))
    results = []
    bar = tqdm(total=len(jobs), unit='episode', desc='generate_demos')
    if workers == 1:
        _init_worker(options)
        outcomes = map(_run_one, jobs)
    else:
        pool = multiprocessing.get_context('spawn').Pool(workers, _init_worker, (options,))
        outcomes = pool.imap_unordered(_run_one, jobs)
    try:
        for result in outcomes:
            results.append(result)
            bar.update(1)
            bar.set_postfix(success=f'{sum(r["success"] for r in results)}/{len(results)}')
    finally:
        bar.close()
        if workers > 1:
            pool.close()
            pool.join()
    summary = os.path.join(ns.out, 'summary.json')
    earlier = []
    if os.path.exists(summary):                  # earlier runs into the same folder
        with open(summary, encoding='utf-8') as f:
            earlier = json.load(f).get('episodes', [])
    new = {r['bag'] for r in results}
    rows = [r for r in earlier if r.get('bag') not in new] + results
    rows.sort(key=lambda r: (r['task'], r['seed']))
    with open(summary, 'w', encoding='utf-8') as f:
        json.dump({'episodes': rows}, f, indent=1)
    for task in ns.tasks:
        rows = [r for r in results if r['task'] == task]
        if rows:
            ok = sum(r['success'] for r in rows)
            print(f'{task}: {ok}/{len(rows)} successful')
    return 0


if __name__ == '__main__':
    sys.exit(main())

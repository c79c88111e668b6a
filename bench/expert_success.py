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

"""Success rate of the scripted expert: N seeded episodes per task (default 100).

Runs exactly the episodes `generate_demos` records (same seeds, same physics, same expert),
without rendering, spread over worker processes. Prints one line per task and the failed
seeds. Usage: python bench/expert_success.py [--episodes 100] [--tasks reach,push,pick_place]
"""

import argparse
import multiprocessing
import os
import sys
import time

from spatialvla_ros.sim.constants import TASKS
from spatialvla_ros.sim.expert import PandaIK
from spatialvla_ros.sim.panda_env import PandaEnv
from spatialvla_ros.sim.rollout import run_episode

_worker = {}


def _init():
    _worker['env'] = PandaEnv(None)
    _worker['ik'] = PandaIK()


def _run(job):
    task_name, seed = job
    task, success, steps = run_episode(_worker['env'], task_name, seed, ik=_worker['ik'])
    return task_name, seed, success, steps, task.instruction


def main(args=None):
    parser = argparse.ArgumentParser(prog='expert_success', description=__doc__.split('\n')[0])
    parser.add_argument('--episodes', type=int, default=100, help='episodes per task')
    parser.add_argument('--tasks', default=','.join(TASKS), help='comma list of tasks')
    parser.add_argument('--seed-start', type=int, default=0)
    parser.add_argument('--workers', type=int, default=os.cpu_count() or 1)
    ns = parser.parse_args(args)
    tasks = [t for t in ns.tasks.split(',') if t]
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        parser.error(f'--tasks: got {bad}, expected names among {TASKS}')
    jobs = [(t, ns.seed_start + i) for t in tasks for i in range(ns.episodes)]
    start = time.perf_counter()
    with multiprocessing.get_context('spawn').Pool(max(1, ns.workers), _init) as pool:
        results = pool.map(_run, jobs, chunksize=4)
    elapsed = time.perf_counter() - start
    print(f'scripted expert, {ns.episodes} seeded episodes per task '
          f'(seeds {ns.seed_start}..{ns.seed_start + ns.episodes - 1}), {elapsed:.0f} s:')
    for task in tasks:
        rows = [r for r in results if r[0] == task]
        ok = [r for r in rows if r[2]]
        steps = sum(r[3] for r in ok) / max(len(ok), 1)
        rate = 100.0 * len(ok) / len(rows)
        print(f'  {task:<11s} success {len(ok):3d}/{len(rows)} = {rate:5.1f}%'
              f'   mean length of successes {steps:5.1f} ticks')
        for r in rows:
            if not r[2]:
                print(f'      failed seed {r[1]}: "{r[4]}" ({r[3]} ticks)')
    return 0


if __name__ == '__main__':
    sys.exit(main())

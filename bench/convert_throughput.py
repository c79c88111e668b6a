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

"""
Throughput of spatialvla_convert in MB of bag per second, both ways (users ask <= 5 min / GB).

Demonstrations: --episodes episodes of the simulator's scripted expert (tools.generate_demos,
all tasks, 128 px, depth, no cloud), recorded once into --demos and reused. The figure is the
bag bytes (all files of the bag directories) divided by the wall time of one conversion, in
this process, on the CPU as it is (2 shared cores on the project machines: a lower bound).

    python bench/convert_throughput.py [--episodes 24] [--demos /tmp/spatialvla_convert_demos]
"""

import argparse
import os
import shutil
import tempfile
import time

from spatialvla_ros.data.bag_reader import find_bags
from spatialvla_ros.data.lerobot_episodes import bags_to_lerobot
from spatialvla_ros.data.lerobot_episodes import lerobot_to_bags
from spatialvla_ros.policies.configuration_policy import PolicyConfig
from spatialvla_ros.sim.constants import TASKS
from spatialvla_ros.tools.generate_demos import DemoJob
from spatialvla_ros.tools.generate_demos import DemoSettings
from spatialvla_ros.tools.generate_demos import generate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def folder_mb(paths):
    total = 0
    for path in paths:
        for folder, _, files in os.walk(path):
            total += sum(os.path.getsize(os.path.join(folder, f)) for f in files)
    return total / 2 ** 20


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--episodes', type=int, default=24)
    parser.add_argument('--demos', default=os.path.join(tempfile.gettempdir(),
                                                        'spatialvla_convert_demos'))
    parser.add_argument('--config', default=os.path.join(REPO, 'config', 'late_gemma.yaml'))
    parser.add_argument('--workers', type=int, default=2)
    ns = parser.parse_args()
    jobs = [DemoJob(TASKS[i % len(TASKS)], i) for i in range(ns.episodes)]
    generate(ns.demos, jobs, DemoSettings(cloud=False), ns.workers, progress=False)
    bags = find_bags([ns.demos])
    config = PolicyConfig.from_yaml(ns.config)
    bag_mb = folder_mb(bags)
    work = tempfile.mkdtemp(prefix='spatialvla_convert_')
    try:
        dataset, back = os.path.join(work, 'dataset'), os.path.join(work, 'back')
        start = time.perf_counter()
        count, _ = bags_to_lerobot(bags, dataset, config)
        to_lerobot = time.perf_counter() - start
        start = time.perf_counter()
        written = lerobot_to_bags(dataset, back, config)
        to_rosbag = time.perf_counter() - start
        dataset_mb, back_mb = folder_mb([dataset]), folder_mb(written)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f'{len(bags)} bags ({count} episodes kept), {bag_mb:.1f} MB of bag, dataset '
          f'{dataset_mb:.1f} MB, bags written back {back_mb:.1f} MB')
    runs = (('to-lerobot', to_lerobot, bag_mb), ('to-rosbag', to_rosbag, back_mb))
    for name, seconds, mb in runs:
        print(f'{name}: {seconds:.1f} s, {mb / seconds:.1f} MB of bag / s, '
              f'{1024 / (mb / seconds) / 60:.1f} min per GB')


if __name__ == '__main__':
    main()

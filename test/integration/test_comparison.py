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


"""The comparison command on a tiny budget: all three plans, trained here, measured end to end.

Three 32 px reach demonstrations, two training steps per plan, one latency repeat, one
three-tick closed-loop episode per plan against one simulator process: the figures are
meaningless, the point is that every column of the table is filled from real runs and that the
table names the configuration, seeds and hardware.
"""

import csv
import json
import os
import subprocess
import sys

import pytest

NS = 1_000_000_000
PLANS = ('late_gemma', 'late_llama', 'deep_fusion')


@pytest.fixture(scope='module')
def demos(tmp_path_factory):
    from spatialvla_ros.data.recorder import EpisodeRecorder
    from spatialvla_ros.sim import messages as sim_msgs
    from spatialvla_ros.sim.camera import CameraSpec
    from spatialvla_ros.sim.rollout import run_episode
    from spatialvla_ros.sim.panda_env import PandaEnv

    root = tmp_path_factory.mktemp('compare_demos')
    env = PandaEnv(CameraSpec(width=32, height=32))
    topics = sim_msgs.SimTopics(cloud='')
    try:
        for seed in range(3):
            recorder = EpisodeRecorder(str(root / f'reach_{seed:06d}'),
                                       sim_msgs.topic_table(topics), sim_msgs.typestore())
            try:
                run_episode(env, 'reach', seed, 1_700_000_000 * NS, topics=topics,
                            sink=recorder.write)
            finally:
                recorder.close()
    finally:
        env.close()
    return str(root)


def test_compare_command_fills_one_table_for_all_plans(demos, tmp_path, ros_env):
    out = tmp_path / 'comparison'
    cmd = [sys.executable, '-m', 'spatialvla_ros.tools.compare_plans', '--data', demos,
           '--steps', '2', '--batch-size', '4', '--episodes', '1', '--max-steps', '3',
           '--image-size', '32', '--latency-repeats', '1', '--heldout-samples', '8',
           '--out-dir', str(out)]
    proc = subprocess.run(cmd, env=ros_env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = (out / 'comparison.md').read_text(encoding='utf-8')
    assert text in proc.stdout                       # printed as well as written
    with open(out / 'comparison.csv', encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    assert [r['plan'] for r in rows] == list(PLANS)
    data = json.loads((out / 'comparison.json').read_text(encoding='utf-8'))
    for row, plan in zip(rows, data['plans']):
        for column in ('params total', 'peak memory [MiB]', 'prefix [ms]', 'denoise step [ms]',
                       'chunk [ms]', 'chunk w/o prefix cache [ms]', 'held-out action MSE',
                       'MSE / mean-baseline', 'success reach'):
            assert row[column] not in ('', 'None', 'nan'), (row['plan'], column)
        assert float(row['held-out action MSE']) > 0 and float(row['chunk [ms]']) > 0
        assert plan['latency']['recompute_matches']      # cached and recomputed chunks agree
        assert plan['train']['steps'] == 2
        assert plan['closed_loop']['reach']['episodes'] == 1
        assert os.path.isfile(os.path.join(plan['checkpoint'], 'model.safetensors'))
    # The three plans differ in their expert, so in their parameter counts.
    assert len({int(r['params total']) for r in rows}) == 3
    # Every plan was scored on the same held-out episodes.
    assert len({p['heldout']['samples'] for p in data['plans']}) == 1
    for key in ('demos', 'train', 'heldout', 'closed_loop', 'latency', 'hardware', 'software'):
        assert f'**{key}**' in text
    assert 'seed 0' in text and 'held-out seeds 1000000' in text


def test_rss_peak_sees_a_short_lived_allocation():
    """The CPU peak memory of the table: an allocation freed inside the block still counts."""
    import time

    import numpy as np
    from spatialvla_ros.evaluation.latency import RssPeak

    with RssPeak() as rss:
        block = np.ones(64 * 2 ** 20 // 8)       # 64 MiB, touched
        time.sleep(0.02)                         # a few samples while it lives
        del block
    with RssPeak() as idle:
        pass
    assert rss.growth_mb > 48, rss.growth_mb
    assert idle.growth_mb < 16, idle.growth_mb

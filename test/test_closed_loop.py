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


"""Closed-loop evaluation end to end: simulator node + policy node processes over DDS.

Two short held-out reach episodes (5 control ticks each, 32 px camera) with a tiny
random-weight checkpoint: what is checked is the loop, not the policy's skill. The evaluator
must reset the simulator to each held-out seed, get one outcome per episode, see the policy's
chunks arrive, and write the report, the CSV and the plot.
"""

import csv
import json
import os

from checkpoint_utils import cached_checkpoint
import pytest


@pytest.fixture
def ros_process_env(ros_env, monkeypatch):
    """Give the in-process evaluator the test's ROS domain, as the node processes have."""
    for key in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE', 'FASTDDS_BUILTIN_TRANSPORTS'):
        monkeypatch.setenv(key, ros_env[key])
    return ros_env


def test_two_held_out_episodes_end_to_end(tmp_path_factory, tmp_path, ros_process_env):
    from spatialvla_ros.tools import closed_loop
    from spatialvla_ros.evaluation import report

    checkpoint = cached_checkpoint(tmp_path_factory, 'late_gemma')
    options = closed_loop.ClosedLoopOptions(tasks=('reach',), episodes=2, max_steps=5,
                                            image_size=32, startup_timeout_s=120.0)
    statuses = []
    results = closed_loop.run_closed_loop(checkpoint, options, str(tmp_path),
                                          env=ros_process_env, on_status=statuses.append)
    assert [r.seed for r in results] == [closed_loop.HELD_OUT_SEED_START,
                                         closed_loop.HELD_OUT_SEED_START + 1]
    from spatialvla_ros.sim.tasks import sample_episode
    for r in results:
        # The simulator ran exactly the held-out episode the seed names.
        assert r.instruction == sample_episode('reach', r.seed)[1].instruction
        assert r.task == 'reach' and 1 <= r.steps <= 5
        assert r.success or r.steps == 5
        assert r.chunks >= 1 and len(r.latencies_s) == r.chunks    # the policy was in the loop
        assert all(lat > 0 for lat in r.latencies_s)
        assert len(r.joint_positions) >= 2
    assert any('ready' in s for s in statuses)
    path = report.write_closed_loop_report(results, options, str(tmp_path))
    text = open(path, encoding='utf-8').read()
    assert '| reach | 2 |' in text and 'closed_loop.png' in text
    assert os.path.getsize(tmp_path / 'closed_loop.png') > 1000
    with open(tmp_path / 'episodes.csv', encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    assert [int(r['seed']) for r in rows] == [r.seed for r in results]
    summary = json.load(open(tmp_path / 'summary.json', encoding='utf-8'))
    assert summary['tasks']['reach']['episodes'] == 2
    for name in ('sim_node.log', 'policy_node.log'):
        assert (tmp_path / name).is_file()


def test_held_out_seeds_are_disjoint_from_demonstration_seeds():
    from spatialvla_ros.tools.closed_loop import HELD_OUT_SEED_START
    from spatialvla_ros.tools.generate_demos import build_parser

    # Demonstrations start at seed 0 and would need a million episodes to reach the range.
    assert build_parser().parse_args(['--out', 'x']).seed_start == 0
    assert HELD_OUT_SEED_START == 1_000_000

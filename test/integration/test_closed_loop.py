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
chunks arrive, and write the report, the CSV and the plot. Around it: each run holds a ROS
domain of its own, the client drives a policy node to the wanted lifecycle state from
wherever it is, and the closed-loop flags mean the same in every command.
"""

import csv
import dataclasses
import json
import os
import subprocess
import sys

from checkpoint_utils import cached_checkpoint
import numpy as np
import pytest
from spatialvla_ros.evaluation import report
from spatialvla_ros.evaluation.closed_loop import ClosedLoopOptions
from spatialvla_ros.evaluation.closed_loop import HELD_OUT_SEED_START
from spatialvla_ros.evaluation.closed_loop import policy_overrides
from spatialvla_ros.evaluation.closed_loop import sim_parameters
from spatialvla_ros.evaluation.closed_loop import summarize
from spatialvla_ros.evaluation.in_process import run as run_in_process
from spatialvla_ros.nodes.closed_loop_client import ClosedLoopClient
from spatialvla_ros.nodes.lifecycle_client import LifecycleError
from spatialvla_ros.perception.geometry import rotation_from_rpy
from spatialvla_ros.policies.policy_spatialvla import SpatialVLAPolicy
from spatialvla_ros.sim.camera import quat_to_matrix
from spatialvla_ros.sim.constants import DEFAULT_CAMERA_QUAT
from spatialvla_ros.sim.constants import DEFAULT_CAMERA_XYZ
from spatialvla_ros.sim.tasks import sample_episode
from spatialvla_ros.tools import closed_loop
from spatialvla_ros.tools import compare_plans
from spatialvla_ros.tools import demo
from spatialvla_ros.tools.flags import options_from_args
from spatialvla_ros.tools.generate_demos import build_parser as demos_parser
from spatialvla_ros.tools.processes import domain_of
from spatialvla_ros.tools.processes import isolated_domain
from spatialvla_ros.tools.processes import NodeProcess


def test_two_held_out_episodes_end_to_end(tmp_path_factory, tmp_path, ros_env):
    checkpoint = cached_checkpoint(tmp_path_factory, 'late_gemma')
    options = ClosedLoopOptions(tasks=('reach',), episodes=2, max_steps=15, image_size=32,
                                startup_timeout_s=120.0)
    statuses = []
    results = closed_loop.run_closed_loop(checkpoint, options, str(tmp_path), env=ros_env,
                                          on_status=statuses.append)
    assert [r.seed for r in results] == [HELD_OUT_SEED_START, HELD_OUT_SEED_START + 1]
    for r in results:
        # The simulator ran exactly the held-out episode the seed names.
        assert r.instruction == sample_episode('reach', r.seed)[1].instruction
        assert r.task == 'reach' and 1 <= r.steps <= 15
        assert r.success or r.steps == 15
        assert r.chunks >= 1 and len(r.latencies_s) == r.chunks    # the policy was in the loop
        assert all(lat > 0 for lat in r.latencies_s)
        assert len(r.joint_positions) >= 2
    assert any('ready' in s for s in statuses)
    # The nodes ran in a domain the run picked, not in the caller's.
    assert any('ROS domain' in s and f'domain {ros_env["ROS_DOMAIN_ID"]})' not in s
               for s in statuses), statuses
    path = report.write_closed_loop_report(results, options, str(tmp_path))
    text = open(path, encoding='utf-8').read()
    assert '| reach | 2 |' in text and 'closed_loop.png' in text
    assert os.path.getsize(tmp_path / 'closed_loop.png') > 1000
    with open(tmp_path / 'episodes.csv', encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    assert [int(r['seed']) for r in rows] == [r.seed for r in results]
    summary = json.load(open(tmp_path / 'summary.json', encoding='utf-8'))
    reach = summary['tasks']['reach']
    assert reach['episodes'] == 2
    lo, hi = reach['success_ci95']
    assert 0.0 <= lo <= reach['success_rate'] <= hi <= 1.0
    for name in ('sim_node.log', 'policy_node.log'):
        assert (tmp_path / name).is_file()


def test_in_process_runner_follows_the_same_episode_rules(tmp_path_factory, tmp_path):
    """run(policy, tasks, seeds): the simulator's episodes, a chunk per execute_steps ticks."""
    policy = SpatialVLAPolicy.from_pretrained(cached_checkpoint(tmp_path_factory, 'late_gemma'))
    seeds = [HELD_OUT_SEED_START, HELD_OUT_SEED_START + 1]
    options = ClosedLoopOptions(max_steps=5, image_size=32, execute_steps=2)
    done = []
    results = run_in_process(policy, ('reach', 'push'), seeds, options,
                             progress=lambda r, d, t: done.append((d, t)))
    assert [(r.task, r.seed) for r in results] == [(t, s) for t in ('reach', 'push')
                                                   for s in seeds]
    assert done == [(i + 1, 4) for i in range(4)]
    for r in results:
        assert r.instruction == sample_episode(r.task, r.seed)[1].instruction
        assert 1 <= r.steps <= 5 and (r.success or r.steps == 5)
        assert r.chunks == (r.steps + 1) // 2 and len(r.joint_positions) == r.steps
    # Same noise seed, same episodes: the same outcome, to the joint angle.
    again = run_in_process(policy, ('reach',), seeds[:1], options)[0]
    assert again.joint_positions == results[0].joint_positions
    # The DDS loop's summary and report take these results as they are.
    assert summarize(results, ('reach', 'push'))['push']['episodes'] == 2
    path = report.write_closed_loop_report(results, ClosedLoopOptions(
        tasks=('reach', 'push'), episodes=2, max_steps=5, image_size=32), str(tmp_path),
        loop='simulator and policy in one process')
    assert 'in one process' in open(path, encoding='utf-8').read()
    # The same through the command: spatialvla_closed_loop --in-process.
    out = tmp_path / 'cli'
    assert closed_loop.main(['--checkpoint', cached_checkpoint(tmp_path_factory, 'late_gemma'),
                             '--in-process', '--episodes', '1', '--max-steps', '3',
                             '--image-size', '32', '--out-dir', str(out)]) == 0
    summary = json.loads((out / 'summary.json').read_text(encoding='utf-8'))
    assert summary['tasks']['reach']['episodes'] == 1
    assert summary['episodes'][0]['seed'] == HELD_OUT_SEED_START
    assert 'in one process' in (out / 'report.md').read_text(encoding='utf-8')


def test_client_drives_the_policy_node_from_any_state(tmp_path_factory, tmp_path, ros_env):
    """No autostart: the client configures and activates, then deactivates, by asking first."""
    checkpoint = cached_checkpoint(tmp_path_factory, 'late_gemma')
    with isolated_domain(ros_env) as env:
        argv = [sys.executable, '-m', 'spatialvla_ros.nodes.policy_node', '--ros-args', '-p',
                f'checkpoint_dir:={checkpoint}']
        with NodeProcess('policy node', argv, str(tmp_path / 'policy.log'), env) as policy:
            client = ClosedLoopClient(ClosedLoopOptions(), domain_of(env))
            try:
                assert client.ensure_policy_state('active', 120.0, (policy,)) == 'active'
                assert client.policy_state() == 'active'
                assert client.ensure_policy_state('inactive', 30.0, (policy,)) == 'inactive'
                assert client.ensure_policy_state('active', 30.0, (policy,)) == 'active'
            finally:
                client.close()
        # A node that is gone: a clear error naming the node and the state, not a crash.
        client = ClosedLoopClient(ClosedLoopOptions(policy_node='/nobody'), domain_of(env))
        try:
            with pytest.raises(LifecycleError, match='/nobody: not active .*not answering'):
                client.ensure_policy_state('active', 2.0)
        finally:
            client.close()


def test_parallel_runs_hold_different_domains():
    with isolated_domain({}) as a, isolated_domain({}) as b:
        assert a['ROS_DOMAIN_ID'] != b['ROS_DOMAIN_ID']
        assert 1 <= int(a['ROS_DOMAIN_ID']) <= 101 and 1 <= int(b['ROS_DOMAIN_ID']) <= 101
        # Another process sees both domains as taken too (the lock is a file lock).
        code = ('from spatialvla_ros.tools.processes import isolated_domain\n'
                'with isolated_domain({}) as c:\n    print(c["ROS_DOMAIN_ID"])')
        out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                             env=dict(os.environ), timeout=60, check=True)
        assert out.stdout.strip() not in (a['ROS_DOMAIN_ID'], b['ROS_DOMAIN_ID'])


def test_closed_loop_flags_mean_the_same_in_every_command(tmp_path):
    """0 / '' take the checkpoint's recipe.json; a value given wins; same for every command."""
    checkpoint = tmp_path / 'ckpt'
    checkpoint.mkdir()
    (checkpoint / 'recipe.json').write_text(json.dumps(
        {'image_size': 64, 'fov_deg': 38.0, 'execute_steps': 8, 'recipe': {'task': 'push'}}))
    flags = ['--episodes', '3', '--seed-start', '5', '--max-steps', '7']
    parsers = {'closed_loop': (closed_loop.build_parser(), ['--checkpoint', str(checkpoint)]),
               'demo': (demo.build_parser(), []),
               'compare': (compare_plans.build_parser(), [])}
    for name, (parser, extra) in parsers.items():
        ns = parser.parse_args(extra + flags)
        options = options_from_args(ns, str(checkpoint))
        assert (options.tasks, options.image_size, options.fov_deg, options.execute_steps) == \
            (('push',), 64, 38.0, 8), name
        assert (options.episodes, options.seed_start, options.max_steps) == (3, 5, 7), name
        ns = parser.parse_args(extra + flags + ['--execute-steps', '0', '--image-size', '32',
                                                '--tasks', 'reach,push'])
        options = options_from_args(ns, str(checkpoint))
        assert (options.tasks, options.image_size, options.execute_steps) == \
            (('reach', 'push'), 32, 8), name
        # Without a recipe: the simulator's camera and a new chunk for every frame.
        options = options_from_args(parser.parse_args(extra), '')
        assert (options.tasks, options.image_size, options.fov_deg, options.execute_steps,
                options.seed_start) == (('reach',), 128, 60.0, 0, HELD_OUT_SEED_START), name
        with pytest.raises(SystemExit):
            parser.parse_args(extra + ['--tasks', 'fly'])
        # --lockstep / --no-lockstep mean the same everywhere; only the default differs (the
        # demo runs in lockstep so that it shows the same episodes on every run).
        assert options_from_args(parser.parse_args(extra + ['--lockstep']), '').lockstep
        assert not options_from_args(parser.parse_args(extra + ['--no-lockstep']), '').lockstep
        assert options_from_args(parser.parse_args(extra), '').lockstep == (name == 'demo')


def test_camera_mount_flags_reach_the_simulator_and_only_its_topic_the_policy():
    parser = closed_loop.build_parser()
    default = options_from_args(parser.parse_args(['--checkpoint', 'x']), '')
    assert (default.camera_xyz, default.camera_quat) == (DEFAULT_CAMERA_XYZ, DEFAULT_CAMERA_QUAT)
    assert (default.camera_jitter_cm, default.camera_jitter_deg) == (0.0, 0.0)
    ns = parser.parse_args(['--checkpoint', 'x', '--camera-xyz', '1.0', '0.1', '0.8',
                            '--camera-rpy-deg', '-150', '5', '95', '--camera-jitter-cm', '3',
                            '--camera-jitter-deg', '4'])
    options = options_from_args(ns, '')
    sim = sim_parameters(options)
    assert sim['camera_xyz'] == [1.0, 0.1, 0.8]
    np.testing.assert_allclose(quat_to_matrix(sim['camera_quat']),
                               rotation_from_rpy(*np.radians([-150.0, 5.0, 95.0])), atol=1e-12)
    assert (sim['camera_jitter_cm'], sim['camera_jitter_deg']) == (3.0, 4.0)
    # the policy node is told to wait for the simulator's mount topic, never given the mount
    policy = policy_overrides(options)
    assert policy['require_camera_pose'] is True
    assert not any('camera' in k and k != 'require_camera_pose' for k in policy), policy
    with pytest.raises(SystemExit):
        parser.parse_args(['--checkpoint', 'x', '--camera-jitter-cm', '-1'])


def test_held_out_seeds_are_disjoint_from_demonstration_seeds():
    # Demonstrations start at seed 0 and would need a million episodes to reach the range.
    assert demos_parser().parse_args(['--out', 'x']).seed_start == 0
    assert HELD_OUT_SEED_START == 1_000_000


# --- lockstep ---------------------------------------------------------------------------------
# Six ticks, a chunk every second tick, 32 px: long enough that a real-time loop would execute
# other actions from run to run (the chunks land at whatever tick inference ends).
LOCKSTEP = ClosedLoopOptions(tasks=('reach',), episodes=2, max_steps=6, image_size=32,
                             execute_steps=2, lockstep=True, startup_timeout_s=120.0)


def _lockstep_env():
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               FASTDDS_BUILTIN_TRANSPORTS='LARGE_DATA', PYTHONUNBUFFERED='1')
    env.setdefault('OMP_NUM_THREADS', '1')
    return env


@pytest.fixture(scope='module')
def lockstep_run(tmp_path_factory):
    """(checkpoint, results) of one lockstep DDS run, shared: starting the nodes is the cost."""
    checkpoint = cached_checkpoint(tmp_path_factory, 'late_gemma')
    out = tmp_path_factory.mktemp('lockstep_a')
    return checkpoint, closed_loop.run_closed_loop(checkpoint, LOCKSTEP, str(out),
                                                   env=_lockstep_env())


def _outcomes(results):
    return [(r.task, r.seed, r.success, r.steps, r.chunks) for r in results]


def test_lockstep_runs_give_identical_outcomes(lockstep_run, tmp_path):
    checkpoint, first = lockstep_run
    again = closed_loop.run_closed_loop(checkpoint, LOCKSTEP, str(tmp_path), env=_lockstep_env())
    assert _outcomes(again) == _outcomes(first)
    assert [r.seed for r in first] == [HELD_OUT_SEED_START, HELD_OUT_SEED_START + 1]
    for a, b in zip(first, again):
        # A chunk per observation (every second tick), each one executed: ticks 0, 2, 4.
        assert a.chunks == (a.steps + 1) // 2 and len(a.joint_positions) == a.steps + 1
        # The same actions executed, to the last bit of every joint angle at every tick.
        assert a.joint_times_s == b.joint_times_s
        assert a.joint_positions == b.joint_positions
    assert 'lockstep' in (tmp_path / 'sim_node.log').read_text(encoding='utf-8')


def test_in_process_runner_agrees_with_the_lockstep_dds_loop(lockstep_run):
    checkpoint, dds = lockstep_run
    policy = SpatialVLAPolicy.from_pretrained(checkpoint)
    local = run_in_process(policy, LOCKSTEP.tasks, LOCKSTEP.seeds(), LOCKSTEP)
    _assert_same_episodes(local, dds)


def _assert_same_episodes(local, dds):
    assert _outcomes(local) == _outcomes(dds)
    for a, b in zip(local, dds):
        # Same observation -> same chunk -> same executed actions: the joint states of every
        # tick (the DDS loop also records the state after the last one).
        np.testing.assert_allclose(np.array(a.joint_positions),
                                   np.array(b.joint_positions[:len(a.joint_positions)]),
                                   rtol=0, atol=1e-9)


def test_a_moved_and_randomised_mount_reaches_the_policy_through_its_topic(tmp_path_factory,
                                                                           tmp_path):
    """The simulator moves its camera; the node learns each episode's mount from the topic.

    In lockstep with require_camera_pose the node answers only with a mount from the topic,
    and its chunks agree with the in-process runner's, which unprojects with the episode's
    mount message: the same mount reached both.
    """
    checkpoint = cached_checkpoint(tmp_path_factory, 'late_gemma')
    options = dataclasses.replace(LOCKSTEP, episodes=2, max_steps=4, startup_timeout_s=300.0,
                                  camera_xyz=(0.95, 0.05, 0.8), camera_jitter_cm=10.0,
                                  camera_jitter_deg=10.0)
    dds = closed_loop.run_closed_loop(checkpoint, options, str(tmp_path), env=_lockstep_env())
    policy = SpatialVLAPolicy.from_pretrained(checkpoint)
    local = run_in_process(policy, options.tasks, options.seeds(), options)
    _assert_same_episodes(local, dds)
    # with the checkpoint's own (nominal) mount the in-process chunks differ: the mount counts
    nominal = dataclasses.replace(policy.config.data, camera_pose_topic='')
    policy.model.config = dataclasses.replace(policy.config, data=nominal)
    blind = run_in_process(policy, options.tasks, options.seeds(), options)
    assert any(not np.allclose(a.joint_positions, c.joint_positions, rtol=0, atol=1e-6)
               for a, c in zip(local, blind))

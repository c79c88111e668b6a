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

"""Execution modes: RTC's soft mask and guided sampling, delay estimate, scheduler, cadence."""

import argparse
import math
import os

from checkpoint_utils import cached_checkpoint
import numpy as np
import pytest
from repo_paths import REPO_ROOT
from spatialvla_ros.core_types import RawObservation
from spatialvla_ros.evaluation.closed_loop import ClosedLoopOptions
from spatialvla_ros.evaluation.closed_loop import policy_overrides
from spatialvla_ros.evaluation.execution_metrics import execution_metrics
from spatialvla_ros.evaluation.execution_metrics import jerk_rms
from spatialvla_ros.evaluation.execution_metrics import seam_jump
from spatialvla_ros.evaluation.execution_metrics import Trajectory
from spatialvla_ros.models import flow_matching as fm
from spatialvla_ros.policies.execution import CadenceMeter
from spatialvla_ros.policies.execution import ChunkPrefix
from spatialvla_ros.policies.execution import DelayEstimator
from spatialvla_ros.policies.execution import ExecutionScheduler
from spatialvla_ros.policies.execution import LatencyInjector
from spatialvla_ros.policies.policy_spatialvla import SpatialVLAPolicy
from spatialvla_ros.tools.flags import add_closed_loop_arguments
from spatialvla_ros.tools.flags import options_from_args
import torch

DEFAULT_CHECKPOINT = os.path.join(REPO_ROOT, 'checkpoints', 'default')
MS = 1_000_000


def test_soft_mask_is_the_papers_exponential_decay():
    w = fm.prefix_weights(2, 6, 10)
    ramp = np.array([4, 3, 2, 1]) / 5.0                     # linear ramp over [start, end)
    expected = np.concatenate([[1, 1], ramp * np.expm1(ramp) / math.expm1(1.0), [0] * 4])
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-6, atol=1e-7)
    assert torch.all(w[2:6] < 1) and torch.all(w[2:5] > w[3:6])   # strictly decaying
    assert torch.equal(fm.prefix_weights(0, 0, 5), torch.zeros(5))
    assert torch.equal(fm.prefix_weights(3, 3, 5), torch.tensor([1., 1., 1., 0., 0.]))
    assert torch.equal(fm.prefix_weights(4, 2, 5), torch.tensor([1., 1., 0., 0., 0.]))


def _velocity(x, t):
    # A smooth nonlinear field, so the guidance has a Jacobian to go through.
    return torch.tanh(x) * (1.0 + t[:, None, None]) - 0.3


def test_guided_sampling_without_guidance_is_plain_sampling():
    noise = torch.randn(2, 10, 3, generator=torch.Generator().manual_seed(0))
    target = torch.ones(10, 3)
    plain = fm.euler_sample(_velocity, noise, 10)
    for weights, beta in ((torch.zeros(10), 5.0), (fm.prefix_weights(3, 8, 10), 0.0)):
        guided = fm.guided_euler_sample(_velocity, noise, 10, target, weights, beta)
        assert torch.equal(guided, plain)


def test_guided_sampling_pulls_the_overlap_towards_the_target():
    noise = torch.randn(1, 10, 3, generator=torch.Generator().manual_seed(1))
    target = torch.full((10, 3), 2.0)
    plain = fm.euler_sample(_velocity, noise, 10)
    guided = fm.guided_euler_sample(_velocity, noise, 10, target, fm.prefix_weights(3, 7, 10),
                                    5.0)
    error = (guided - target).abs().mean(-1)[0]
    plain_error = (plain - target).abs().mean(-1)[0]
    assert torch.all(error[:3] < 0.5 * plain_error[:3])       # committed: pulled hard


def test_delay_estimate_ignores_the_cold_start_and_a_single_slow_inference():
    est = DelayEstimator(dt=0.1, window=10)
    assert est.steps() == 0                                  # nothing counted yet
    est.add(2.5)                                             # cold start after activation
    assert est.steps() == 0
    for _ in range(5):
        est.add(0.12)
    assert est.steps() == 2                                  # ceil(0.12 / 0.1)
    est.add(0.9)                                             # one slow inference
    assert est.steps() == 2
    est.add(0.55)                                            # a second one raises it
    assert est.steps() == 6
    est.reset()
    est.add(3.0)
    assert est.steps() == 0


def test_latency_injection_is_seeded():
    slept = []
    a = LatencyInjector(0.1, 0.05, seed=3, sleep=slept.append)
    b = LatencyInjector(0.1, 0.05, seed=3, sleep=lambda s: None)
    delays = [a.wait() for _ in range(5)]
    assert delays == [b.draw() for _ in range(5)] == slept
    assert all(0.1 <= d < 0.15 for d in delays) and len(set(delays)) == 5
    with pytest.raises(ValueError, match='injected latency'):
        LatencyInjector(-1.0)


def test_rtc_prefix_is_the_previous_chunk_aligned_in_time():
    sched = ExecutionScheduler('rtc', dt=0.1, max_guidance_weight=5.0)
    assert sched.prefix(10**9, 10) is None                   # no previous chunk yet
    previous = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    sched.published(previous, 10**9, 10**9, 10**9 + 250 * MS)   # cold start: not counted
    sched.published(previous, 10**9, 10**9, 10**9 + 250 * MS)   # delay 0.25 s -> d = 3
    prefix = sched.prefix(10**9 + 400 * MS, 10)              # observed 4 periods later
    assert prefix.committed == 3 and prefix.max_guidance_weight == 5.0
    np.testing.assert_array_equal(prefix.actions[:6, 0], [4, 5, 6, 7, 8, 9])
    np.testing.assert_array_equal(prefix.weights, fm.prefix_weights(3, 6, 10).numpy())
    assert ExecutionScheduler('async', dt=0.1).prefix(10**9, 10) is None


def test_sync_waits_for_the_executed_actions_and_stamps_at_ready():
    sched = ExecutionScheduler('sync', dt=0.1, execution_horizon=4)
    assert sched.may_start(0, busy=False) and not sched.may_start(0, busy=True)
    chunk = np.zeros((10, 2), np.float32)
    sent, stamp = sched.output(chunk, stamp_ns=5, ready_ns=300 * MS)
    assert sent.shape == (4, 2) and stamp == 300 * MS
    sched.published(sent, stamp, 5, 300 * MS)
    assert not sched.may_start(699 * MS, busy=False) and sched.may_start(700 * MS, busy=False)
    sent, stamp = ExecutionScheduler('async', dt=0.1).output(chunk, 5, 300 * MS)
    assert sent is chunk and stamp == 5


def test_cadence_counts_periods_without_a_due_action():
    meter = CadenceMeter()
    meter.reset(0)
    meter.published(200 * MS, 1000 * MS, 0.2)     # nothing due for the first 0.2 s
    meter.published(900 * MS, 1500 * MS, 0.1)     # replaces the first before it ran out
    assert meter.starved_fraction(1500 * MS) == pytest.approx(0.2 / 1.5)
    assert meter.starved_fraction(2000 * MS) == pytest.approx(0.7 / 2.0)   # held since 1.5 s
    assert meter.chunks_per_s(2000 * MS) == pytest.approx(1.0)
    assert meter.latencies() == [0.2, 0.1]


@pytest.fixture(scope='module')
def policy():
    return SpatialVLAPolicy.from_pretrained(DEFAULT_CHECKPOINT)


def _observation(policy, seed=0):
    cfg, rng = policy.config, np.random.default_rng(seed)
    size = cfg.vision.image_size
    u = np.linspace(-0.2, 0.2, size, dtype=np.float32)
    points = np.stack(np.broadcast_arrays(u[None, :], u[:, None], np.float32(0.9)), -1)
    return RawObservation(images=[rng.integers(0, 256, (size, size, 3), dtype=np.uint8)],
                          points=[points.astype(np.float32)],
                          state=np.zeros(cfg.action.state_dim, np.float32),
                          instruction='reach the red cube',
                          camera_names=[c.name for c in cfg.data.cameras])


def test_rtc_with_zero_delay_and_nothing_to_hold_is_plain_sampling(policy):
    obs = _observation(policy)
    plain = policy.predict_chunk(obs, seed=4)
    h = policy.config.action.chunk_size
    nothing = ChunkPrefix(actions=plain + 0.3, weights=np.zeros(h, np.float32), committed=0,
                          max_guidance_weight=5.0)
    np.testing.assert_array_equal(policy.predict_chunk(obs, seed=4, prefix=nothing), plain)
    # The scheduler gives no prefix at zero delay before any chunk: sampling stays plain.
    assert ExecutionScheduler('rtc', dt=policy.config.action.dt).prefix(0, h) is None


def test_rtc_keeps_the_committed_prefix_exactly(policy):
    obs = _observation(policy, seed=1)
    plain = policy.predict_chunk(obs, seed=5)
    h = plain.shape[0]
    held = policy.predict_chunk(_observation(policy, seed=2), seed=9)   # another chunk
    prefix = ChunkPrefix(actions=held, weights=fm.prefix_weights(3, h - 8, h).numpy(),
                         committed=3, max_guidance_weight=5.0)
    chunk = policy.predict_chunk(obs, seed=5, prefix=prefix)
    np.testing.assert_array_equal(chunk[:3], held[:3])
    soft = slice(3, h - 8)                            # guided, not copied: pulled towards it
    assert np.abs(chunk[soft] - held[soft]).mean() < np.abs(plain[soft] - held[soft]).mean()


def test_seam_jump_is_the_boundary_step_over_the_median_step():
    times = np.arange(8) * 0.1
    q = np.zeros((8, 9))
    q[:, 0] = [0.0, 0.01, 0.02, 0.03, 0.08, 0.09, 0.10, 0.11]   # a 0.05 jump after tick 3
    q[:, 8] = np.arange(8)                                      # a finger: not an arm joint
    trajectories = [Trajectory(0.0, 0.0, 20, 0.1), Trajectory(0.35, 0.3, 20, 0.1)]
    largest, nominal, ratio = seam_jump(times, q, trajectories)
    assert largest == pytest.approx(0.05) and nominal == pytest.approx(0.01)
    assert ratio == pytest.approx(5.0)
    metrics = execution_metrics(times, q, trajectories, 0.7)
    assert metrics['seam_jump'] == pytest.approx(5.0)
    assert metrics['starved_fraction'] == 0.0 and metrics['chunks_per_s'] == pytest.approx(2 / 0.7)
    smooth = np.outer(np.arange(8) * 0.1, np.ones(7))          # constant velocity: no jerk
    assert jerk_rms(times, smooth) == pytest.approx(0.0, abs=1e-6)
    assert jerk_rms(times, q) > 1.0
    unrecorded = execution_metrics(times, q, None, 0.7)       # the in-process runner
    assert math.isnan(unrecorded['starved_fraction']) and math.isnan(unrecorded['seam_jump'])


def test_closed_loop_flags_reach_the_policy_node():
    parser = add_closed_loop_arguments(argparse.ArgumentParser())
    ns = parser.parse_args(['--execution', 'rtc', '--inject-latency-ms', '250',
                            '--execute-steps', '4'])
    options = options_from_args(ns)
    assert (options.execution, options.inject_latency_ms) == ('rtc', 250.0)
    params = policy_overrides(options)
    assert params['execution'] == 'rtc' and params['inject_latency_ms'] == 250.0
    assert params['execution_horizon'] == 4
    assert policy_overrides(ClosedLoopOptions())['execution'] == 'async'   # the node's default
    with pytest.raises(SystemExit):
        parser.parse_args(['--execution', 'later'])
    with pytest.raises(ValueError, match='--inject-latency-ms'):
        options_from_args(parser.parse_args(['--inject-latency-ms', '-5']))


@pytest.mark.parametrize('plan', ['late_gemma', 'late_llama'])
def test_rtc_guidance_runs_through_every_fusion_plan(tmp_path_factory, plan):
    """Guided sampling runs through each backbone; the committed actions stay exact.

    The shipped checkpoint is deep fusion; these are the late-fusion decoders.
    """
    tiny = SpatialVLAPolicy.from_pretrained(cached_checkpoint(tmp_path_factory, plan))
    obs = _observation(tiny)
    plain = tiny.predict_chunk(obs, seed=1)
    h = plain.shape[0]
    held = tiny.predict_chunk(_observation(tiny, seed=3), seed=2)
    prefix = ChunkPrefix(actions=held, weights=fm.prefix_weights(2, h - 2, h).numpy(),
                         committed=2, max_guidance_weight=5.0)
    chunk = tiny.predict_chunk(obs, seed=1, prefix=prefix)
    assert np.isfinite(chunk).all() and not np.array_equal(chunk, plain)
    np.testing.assert_array_equal(chunk[:2], held[:2])

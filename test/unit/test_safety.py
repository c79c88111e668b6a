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

"""The safety filter: which chunks pass, are clamped or rejected, and how it is configured."""

import dataclasses
import os

import numpy as np
import pytest
from repo_paths import REPO_ROOT
from spatialvla_ros.policies.configuration_policy import PolicyConfig
from spatialvla_ros.policies.safety import SafetyConfig
from spatialvla_ros.policies.safety import SafetyFilter
from spatialvla_ros.sim import constants as panda

DT = 0.1
TIMES = (np.arange(10) + 1) * DT
HOME = np.array([0.0, -0.6, 0.0, -2.4, 0.0, 1.8, 0.785, 0.04])
PANDA = SafetyConfig(lower=panda.LOWER_LIMITS, upper=panda.UPPER_LIMITS,
                     max_velocity=panda.VELOCITY_LIMITS,
                     max_acceleration=panda.ACCELERATION_LIMITS,
                     max_first_step=tuple(0.2 * v for v in panda.VELOCITY_LIMITS))


def smooth_chunk(speed=0.5):
    """From HOME, every arm joint at `speed` rad/s after one period of speeding up."""
    velocity = np.full(10, speed)
    velocity[0] = speed / 2
    path = HOME[None, :] + np.cumsum(velocity * DT)[:, None] * np.r_[np.ones(7), 0.0]
    return path.astype(np.float32)


def judge(chunk, mode='clamp', current=HOME, times=TIMES, config=PANDA):
    return SafetyFilter(dataclasses.replace(config, mode=mode), 8)(chunk, times, current)


def within_every_limit(verdict, current=HOME, times=TIMES):
    f = SafetyFilter(PANDA, 8)
    path = np.vstack([current, verdict.chunk])
    return f.violations(path, np.diff(times, prepend=0.0)) == {}


def test_a_chunk_within_every_limit_passes_unchanged():
    chunk = smooth_chunk()
    verdict = judge(chunk)
    assert verdict.outcome == 'passed' and verdict.reasons == () and verdict.chunk is chunk
    assert judge(chunk, 'reject').chunk is chunk
    # Exactly at a limit (float32 round-off included) is within it.
    at_limit = np.tile(np.float32(panda.UPPER_LIMITS), (10, 1))
    assert judge(at_limit, current=np.asarray(panda.UPPER_LIMITS)).outcome == 'passed'


@pytest.mark.parametrize('case', ['velocity', 'acceleration', 'first_step', 'position'])
def test_each_limit_is_caught_clamped_or_rejected(case):
    chunk = smooth_chunk().astype(np.float64)
    times, current = TIMES, HOME
    if case == 'velocity':       # joint 2 moves 0.3 rad in one period (3 rad/s > 2.175)
        chunk[5:, 1] += 0.3
    elif case == 'acceleration':  # joint 2 reverses from +0.5 to -0.5 rad/s in one period
        chunk[6:, 1] = chunk[5, 1] - 0.5 * DT * np.arange(1, 5)
    elif case == 'first_step':  # 0.8 rad away, but one second later: slow, yet a far start
        times = TIMES + 0.9
        chunk = np.tile(HOME, (10, 1))
        chunk[:, 0] += 0.8
    else:                        # the finger is commanded past its 0.04 m opening
        chunk[:, 7] = np.linspace(0.04, 0.06, 10)
    clamped = judge(chunk, 'clamp', current, times)
    # A jump in velocity is a jump in acceleration too: the first reason is the one made.
    assert clamped.outcome == 'clamped' and clamped.reasons[0] == case, clamped.detail
    assert clamped.detail.startswith(case)
    assert within_every_limit(clamped, current, times)
    assert not np.allclose(clamped.chunk, chunk)
    rejected = judge(chunk, 'reject', current, times)
    assert rejected.outcome == 'rejected' and rejected.chunk is None
    assert rejected.reasons == clamped.reasons


def test_the_step_from_the_current_state_counts():
    chunk = smooth_chunk()
    current = HOME.copy()
    current[2] -= 0.3            # the first point is 0.3 rad ahead of the state: 3 rad/s
    verdict = judge(chunk, current=current)
    assert verdict.reasons[0] == 'velocity' and 'point 0, joint 2' in verdict.detail
    assert within_every_limit(verdict, current)


def test_non_finite_values_are_always_rejected():
    chunk = smooth_chunk()
    chunk[3, 4] = np.nan
    for mode in ('clamp', 'reject'):
        verdict = judge(chunk, mode)
        assert (verdict.outcome, verdict.chunk, verdict.reasons) == ('rejected', None,
                                                                     ('nonfinite',))
        assert 'point 3, joint 4' in verdict.detail
    current = HOME.copy()
    current[0] = np.inf
    assert judge(smooth_chunk(), current=current).reasons == ('nonfinite',)


def test_clamp_keeps_every_limit_and_touches_only_what_it_must():
    rng = np.random.default_rng(0)
    lower, upper = np.asarray(panda.LOWER_LIMITS), np.asarray(panda.UPPER_LIMITS)
    for _ in range(200):  # wild chunks: random points anywhere in (and beyond) the range
        current = rng.uniform(lower, upper)
        chunk = rng.uniform(lower - 0.5, upper + 0.5, size=(10, 8))
        verdict = judge(chunk, current=current)
        assert verdict.outcome == 'clamped', verdict.detail
        assert within_every_limit(verdict, current)
    # A chunk that breaks a limit only at its last point keeps the points before it.
    chunk = smooth_chunk().astype(np.float64)
    chunk[-1, 0] += 0.5
    verdict = judge(chunk)
    np.testing.assert_array_equal(verdict.chunk[:-1], chunk[:-1])
    assert verdict.chunk[-1, 0] < chunk[-1, 0]


def test_no_path_within_the_limits_is_rejected_as_unclampable():
    current = HOME.copy()
    current[3] = panda.UPPER_LIMITS[3] + 0.5   # beyond a limit by more than a step can undo
    verdict = judge(np.tile(HOME, (10, 1)), current=current)
    assert verdict.outcome == 'rejected' and verdict.reasons[-1] == 'unclampable'


def test_bad_configuration_and_inputs_are_named():
    with pytest.raises(ValueError, match=r'max_velocity: got 3 values, expected 8'):
        SafetyFilter(SafetyConfig(max_velocity=(1.0, 1.0, 1.0)), 8)
    with pytest.raises(ValueError, match=r'max_acceleration: got \[0.0\], expected values > 0'):
        SafetyFilter(SafetyConfig(max_acceleration=(0.0,)), 1)
    with pytest.raises(ValueError, match=r"mode: got 'off'"):
        SafetyFilter(SafetyConfig(mode='off'), 8)
    with pytest.raises(ValueError, match=r'lower\[0\]: got 1.0, expected < upper\[0\]'):
        SafetyFilter(SafetyConfig(lower=(1.0,), upper=(0.0,)), 1)
    f = SafetyFilter(PANDA, 8)
    with pytest.raises(ValueError, match='times'):
        f(smooth_chunk(), TIMES[::-1], HOME)
    with pytest.raises(ValueError, match=r'chunk: got shape \(10, 7\)'):
        f(smooth_chunk()[:, :7], TIMES, HOME)


def test_node_limits_come_from_the_checkpoint_or_the_panda():
    from spatialvla_ros.nodes.policy_parameters import safety_config
    from spatialvla_ros.typed_config import ConfigError
    act = PolicyConfig.from_yaml(os.path.join(REPO_ROOT, 'config', 'late_gemma.yaml')).action
    values = {'safety_mode': 'clamp', 'velocity_limit_scale': 0.5,
              'acceleration_limit_scale': 1.0, 'max_first_step_s': 0.2}
    config, source = safety_config(act, values)
    assert config.max_velocity == tuple(v * 0.5 for v in panda.VELOCITY_LIMITS)
    assert config.max_acceleration == panda.ACCELERATION_LIMITS
    assert config.max_first_step == pytest.approx([v * 0.1 for v in panda.VELOCITY_LIMITS])
    assert config.lower == panda.LOWER_LIMITS and 'velocity: Panda' in source
    own = dataclasses.replace(act, velocity_limits=(1.0,) * 8)
    assert safety_config(own, values)[0].max_velocity == (0.5,) * 8
    other = dataclasses.replace(act, names=tuple(f'j{i}' for i in range(8)))
    config, source = safety_config(other, dict(values, max_first_step_s=0.0))
    assert (config.max_velocity, config.max_acceleration, config.max_first_step) == ((),) * 3
    assert 'velocity: none' in source
    with pytest.raises(ValueError, match="parameter 'velocity_limit_scale': got 0.0"):
        safety_config(act, dict(values, velocity_limit_scale=0.0))
    with pytest.raises(ConfigError, match=r"'action.velocity_limits\[2\]'"):
        dataclasses.replace(act, velocity_limits=(1.0, 1.0, -1.0) + (1.0,) * 5).validate(
            'action')


def test_node_stats_count_clamped_and_rejected_chunks_by_reason():
    from spatialvla_ros.nodes.policy_runtime import NodeStats
    stats = NodeStats(throttle_s=100.0)
    assert stats.values()['safety.rejected_chunks'] == 0
    chunk = smooth_chunk().astype(np.float64)
    chunk[5:, 1] += 0.3
    assert stats.safety_verdict(judge(chunk)) is True
    assert stats.safety_verdict(judge(chunk)) is False  # throttled log, still counted
    assert stats.safety_verdict(judge(chunk, 'reject')) is True
    assert stats.safety_verdict(judge(smooth_chunk())) is False
    values = stats.values()
    assert (values['safety.clamped_chunks'], values['safety.clamped.velocity']) == (2, 2)
    assert (values['safety.rejected_chunks'], values['safety.rejected.velocity']) == (1, 1)
    assert values['safety.rejected.nonfinite'] == 0 and values['suppressed.unsafe'] == 1

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

"""What the default safety filter does to a checkpoint's chunks in the in-process closed loop.

Runs held-out episodes in one process (the runner applies the policy node's default filter),
then judges every chunk the policy gave again to count passed / clamped / rejected chunks by
reason and the largest change the clamp made per joint. Usage:
python bench/safety_filter.py [--checkpoint checkpoints/default] [--episodes 20]
"""

import argparse
import collections
import sys

import numpy as np
from spatialvla_ros.evaluation import in_process
from spatialvla_ros.evaluation.closed_loop import ClosedLoopOptions
from spatialvla_ros.evaluation.closed_loop import HELD_OUT_SEED_START
from spatialvla_ros.evaluation.closed_loop import recipe_camera
from spatialvla_ros.nodes.policy_runtime import load_policy
from spatialvla_ros.policies.safety import SafetyConfig
from spatialvla_ros.policies.safety import SafetyFilter
from spatialvla_ros.sim.constants import published_limits


class RecordingPolicy:
    """The policy, remembering (state, chunk) of every call."""

    def __init__(self, policy):
        self.policy, self.config, self.calls = policy, policy.config, []

    def predict_chunk(self, obs, seed=None):
        chunk = self.policy.predict_chunk(obs, seed=seed)
        self.calls.append((obs.state.copy(), chunk.copy()))
        return chunk


def main(args=None):
    parser = argparse.ArgumentParser(prog='safety_filter', description=__doc__.split('\n')[0])
    parser.add_argument('--checkpoint', default='checkpoints/default')
    parser.add_argument('--episodes', type=int, default=20, help='episodes per task')
    ns = parser.parse_args(args)
    policy = RecordingPolicy(load_policy(ns.checkpoint, device='cpu', num_threads=1)[0])
    camera = recipe_camera(ns.checkpoint)
    options = ClosedLoopOptions(image_size=camera['image_size'], fov_deg=camera['fov_deg'],
                                execute_steps=camera['execute_steps'])
    seeds = range(HELD_OUT_SEED_START, HELD_OUT_SEED_START + ns.episodes)
    results = in_process.run(policy, camera['tasks'], seeds, options)
    act = policy.config.action
    safety = SafetyFilter(SafetyConfig.for_action(act, published_limits(act.names)),
                          act.action_dim)
    times = (np.arange(act.chunk_size) + 1) * act.dt
    counts, change = collections.Counter(), np.zeros(act.action_dim)
    for state, chunk in policy.calls:
        verdict = safety(chunk, times, state[:act.action_dim])
        counts[verdict.outcome] += 1
        counts.update(f'{verdict.outcome}.{r}' for r in verdict.reasons)
        if verdict.chunk is not None:
            change = np.maximum(change, np.abs(verdict.chunk - chunk).max(axis=0))
    print(f'{ns.checkpoint}: {sum(r.success for r in results)}/{len(results)} successful, '
          f'{len(policy.calls)} chunks: ' + ', '.join(f'{k} {n}' for k, n in sorted(
              counts.items())))
    print('largest change by the clamp per joint: ' + ' '.join(f'{c:.4f}' for c in change))
    return 0


if __name__ == '__main__':
    sys.exit(main())

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

"""Execution modes through DDS: the simulator and policy node processes in real time.

One short reach episode per mode with the shipped checkpoint and 200 ms injected into every
inference. async must send a new trajectory while the previous one still has actions due (it
computes while the arm moves); sync must let every trajectory run out before the next one
is sent (the arm holds while it computes) and send only the executed actions. What is checked
is the order of events the modes promise, recorded by the evaluator, not how fast they are.
"""

import dataclasses
import os

from repo_paths import REPO_ROOT
from spatialvla_ros.evaluation.closed_loop import ClosedLoopOptions
from spatialvla_ros.tools import closed_loop

CHECKPOINT = os.path.join(REPO_ROOT, 'checkpoints', 'default')
OPTIONS = ClosedLoopOptions(tasks=('reach',), episodes=1, max_steps=20, image_size=64,
                            fov_deg=38.0, execute_steps=2, inject_latency_ms=200.0,
                            startup_timeout_s=600.0)   # a loaded machine: minutes


def _ends(trajectories):
    return [t.start_s + t.points * t.dt for t in trajectories]


def test_async_sends_while_executing_and_sync_waits(tmp_path, ros_env):
    runs = {}
    for mode in ('async', 'sync'):
        options = dataclasses.replace(OPTIONS, execution=mode)
        [result] = closed_loop.run_closed_loop(CHECKPOINT, options, str(tmp_path / mode),
                                               env=ros_env)
        runs[mode] = result.trajectories
        assert len(result.trajectories) >= 2, (mode, result)
    overlapping = [b.arrival_s < end for b, end in zip(runs['async'][1:], _ends(runs['async']))]
    assert any(overlapping) and all(t.points == 20 for t in runs['async'])
    sync = runs['sync']
    assert all(t.points == 2 for t in sync)
    # Stamped when ready, both on the policy node's clock: the next starts after the last ends.
    assert all(b.start_s >= end for b, end in zip(sync[1:], _ends(sync)))

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


"""Evaluation of trained policies, without ROS: the runners' outcome rules, metrics and reports.

- `closed_loop`: what a closed-loop episode is and how results are summarised (success per task
  with 95% Wilson intervals, time to success), shared by the DDS loop (`nodes.closed_loop_client`
  + `tools.closed_loop`) and the in-process runner (`in_process`);
- `execution_metrics`: seam jump, jerk RMS and cadence of an episode's executed trajectory;
- `replay`: alignment of predicted chunks with recorded actions and its error metrics;
- `report`: Markdown, CSV, JSON and plots of replays, closed loops and checkpoints;
- `comparison` (the plan comparison table) and `latency` (model timing) import torch and the
  trainer, so they are imported by their path, not from here.

Nothing in this package imports rclpy.
"""

from .closed_loop import ClosedLoopOptions
from .closed_loop import EpisodeResult
from .closed_loop import HELD_OUT_SEED_START
from .closed_loop import summarize
from .closed_loop import wilson_interval
from .replay import align
from .replay import replay_metrics

__all__ = ['ClosedLoopOptions', 'EpisodeResult', 'HELD_OUT_SEED_START', 'align',
           'replay_metrics', 'summarize', 'wilson_interval']

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
ROS-free inference: raw observations in, action chunks in robot units out.

`SpatialVLAProcessor` turns RawObservations into model tensors and normalised actions back into
robot units; `SpatialVLAPolicy` pairs it with a model loaded from a checkpoint (and, on
request, compiles the denoising step). Nodes, evaluators and the simulator loop all use these.
`execution` says how chunks meet an arm that keeps moving (sync, async, rtc: Real-Time
Chunking), with the online delay estimate, latency injection and the cadence meter.
`SafetyFilter` holds the joint limits every commanded chunk must keep (clamp or reject).
"""

from .execution import EXECUTION_MODES
from .execution import ExecutionScheduler
from .policy_spatialvla import compile_model
from .policy_spatialvla import SpatialVLAPolicy
from .processor_spatialvla import SpatialVLAProcessor
from .safety import SafetyConfig
from .safety import SafetyFilter
from .safety import SafetyVerdict

__all__ = ['EXECUTION_MODES', 'ExecutionScheduler', 'SafetyConfig', 'SafetyFilter',
           'SafetyVerdict', 'SpatialVLAPolicy', 'SpatialVLAProcessor', 'compile_model']

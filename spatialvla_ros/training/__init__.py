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

"""Offline training of SpatialVLA policies (ROS-free; the command and the node are thin fronts).

Modules in reading order: `options` (the one definition of a run's options, torch-free),
`schedule` (warm-up + cosine learning rate), `loss` (flow-matching loss from seeded noise),
`distributed` (single / DDP / FSDP2), `validation` (held-out action MSE), `progress` (CSV log,
bar, plot), `train_state` (atomic checkpoints with optimiser and RNG state, keep-last
pruning), `trainer` (the loop: `Trainer`, `train`), `grounding` (the instruction-grounding
pre-training of the default checkpoint). Only the torch-free options are exported here, so
`--help` stays instant; import the trainer from `spatialvla_ros.training.trainer`.
"""

from .options import add_arguments
from .options import apply_overrides
from .options import options_from_dict
from .options import TrainOptions

__all__ = ['TrainOptions', 'add_arguments', 'apply_overrides', 'options_from_dict']

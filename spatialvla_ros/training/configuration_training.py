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

"""The training recipe, and the whole experiment file the trainer reads and checkpoints write.

An experiment's `config.yaml` holds the network's keys at the top level, a `data:` section and a
`train:` section. `TrainingConfig` reads all three; policies read only the first two
(policies.configuration_policy.PolicyConfig), so the file format stays one file.
"""

from dataclasses import dataclass
from dataclasses import field
from typing import Literal

from spatialvla_ros.policies.configuration_policy import PolicyConfig
from spatialvla_ros.typed_config import require


@dataclass(frozen=True)
class TrainConfig:
    """The training recipe: the `train:` section of an experiment file."""

    batch_size: int = 8
    steps: int = 1000
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int = 50
    grad_clip_norm: float = 1.0
    gradient_checkpointing: bool = False
    trainable: Literal['all', 'expert_only'] = 'all'  # 'expert_only' freezes encoder + VLM
    seed: int = 0
    val_fraction: float = 0.2        # share of episodes held out for validation
    log_every: int = 10
    checkpoint_every: int = 200

    def apply_to(self, model):
        """Freeze the encoder + VLM ('expert_only') and switch on gradient checkpointing."""
        if self.trainable == 'expert_only':
            model.freeze_vlm()
        if self.gradient_checkpointing:
            model.set_gradient_checkpointing(True)

    def validate(self, prefix):
        for name in ('batch_size', 'steps', 'log_every', 'checkpoint_every'):
            value = getattr(self, name)
            require(value >= 1, f'{prefix}.{name}', value, 'an integer >= 1')
        require(self.learning_rate > 0, f'{prefix}.learning_rate', self.learning_rate, '> 0')
        require(0 <= self.warmup_steps <= self.steps, f'{prefix}.warmup_steps',
                self.warmup_steps, f'in [0, steps={self.steps}]')
        require(0 <= self.val_fraction < 1, f'{prefix}.val_fraction', self.val_fraction,
                'in [0, 1)')


@dataclass(frozen=True)
class TrainingConfig(PolicyConfig):
    """PolicyConfig plus the `train:` section, checked against the network's freezing."""

    sections_read_elsewhere = ()

    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self):
        super().validate()
        self.train.validate('train')
        # Deep fusion updates the VLM inside every joint layer: it can be frozen only when the
        # recipe trains the expert alone.
        if self.plan == 'deep_fusion':
            require(not self.freeze_vlm or self.train.trainable == 'expert_only', 'freeze_vlm',
                    self.freeze_vlm,
                    "false for deep fusion unless train.trainable is 'expert_only'")
        return self

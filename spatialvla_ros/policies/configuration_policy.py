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

"""What a policy reads from a checkpoint's `config.yaml`: the network plus its data topics.

The file's `train:` section is the trainer's (training.configuration_training): a policy skips
it, so loading a checkpoint never needs the training code.
"""

from dataclasses import dataclass
from dataclasses import field

from spatialvla_ros.models.configuration_spatialvla import SpatialVLAConfig
from spatialvla_ros.perception.configuration import DataConfig


@dataclass(frozen=True)
class PolicyConfig(SpatialVLAConfig):
    """SpatialVLAConfig (top-level keys) plus the `data:` section (topics, cameras)."""

    sections_read_elsewhere = ('train',)

    data: DataConfig = field(default_factory=DataConfig)

    def validate(self):
        super().validate()
        self.data.validate('data')
        return self

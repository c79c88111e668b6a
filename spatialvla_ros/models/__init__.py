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
The network, ROS-free: 3D encoder, LLaVA-3D's Llama, flow-matching action expert, checkpoints.

`SpatialVLAModel` (modeling_spatialvla) joins the 3D encoder (modeling_encoder3d), the VLM and
the action expert through the backbone of `config.plan`: late fusion (modeling_late_fusion) or
deep fusion (modeling_deep_fusion), both masked and cached by fusion_common. flow_matching holds
the time convention, loss and Euler sampler; checkpoint the safetensors I/O; tokenizer the
instruction tokenizer. Import the rest from the modules.
"""

from spatialvla_ros.models.checkpoint import CheckpointError
from spatialvla_ros.models.checkpoint import load_checkpoint
from spatialvla_ros.models.checkpoint import save_checkpoint
from spatialvla_ros.models.fusion_common import attention_inputs
from spatialvla_ros.models.fusion_common import PrefixCache
from spatialvla_ros.models.modeling_deep_fusion import LlamaDeepFusion
from spatialvla_ros.models.modeling_late_fusion import LateFusionBackbone
from spatialvla_ros.models.modeling_spatialvla import ModelBatch
from spatialvla_ros.models.modeling_spatialvla import ModelObservation
from spatialvla_ros.models.modeling_spatialvla import SpatialVLAModel
from spatialvla_ros.models.modeling_spatialvla import suffix_ar_mask

__all__ = [
    'CheckpointError',
    'LateFusionBackbone',
    'LlamaDeepFusion',
    'ModelBatch',
    'ModelObservation',
    'PrefixCache',
    'SpatialVLAModel',
    'attention_inputs',
    'load_checkpoint',
    'save_checkpoint',
    'suffix_ar_mask',
]

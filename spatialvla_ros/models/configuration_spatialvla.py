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

"""Configuration of the SpatialVLA network: 3D encoder, VLM, action expert, fusion plan.

The model keys sit at the top level of an experiment's / checkpoint's `config.yaml`; its `data:`
section (topics, cameras) belongs to perception and its `train:` section to the trainer, which
read them with their own configs. The network reads only this one.
"""

from dataclasses import dataclass
from dataclasses import field
from typing import Literal

from spatialvla_ros.typed_config import require
from spatialvla_ros.typed_config import YamlConfig

# The fusion plans, the one place they are spelled out (CLIs, parameters and loops read it).
PLANS = ('late_gemma', 'late_llama', 'deep_fusion')


@dataclass(frozen=True)
class VisionConfig:
    model_type: Literal['clip', 'siglip'] = 'clip'  # transformers vision tower family
    image_size: int = 336            # square input resolution of the tower [px]
    patch_size: int = 14             # ViT patch size [px]; grid = image_size // patch_size
    hidden_size: int = 1024          # width of the tower's patch features
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    intermediate_size: int = 4096
    feature_layer: int = -2          # hidden-state index used (LLaVA: second-to-last layer)
    pretrained_path: str = ''        # local directory with tower weights ('' = random init)

    def validate(self, prefix):
        require(self.image_size % self.patch_size == 0, f'{prefix}.image_size', self.image_size,
                f'a multiple of patch_size={self.patch_size}')
        require(self.hidden_size % self.num_attention_heads == 0, f'{prefix}.hidden_size',
                self.hidden_size,
                f'a multiple of num_attention_heads={self.num_attention_heads}')
        require(-self.num_hidden_layers - 1 <= self.feature_layer <= self.num_hidden_layers,
                f'{prefix}.feature_layer', self.feature_layer,
                f'a hidden-state index within [-{self.num_hidden_layers + 1}, '
                f'{self.num_hidden_layers}]')


@dataclass(frozen=True)
class Encoder3DConfig:
    # LLaVA-3D MLP or SpatialVLA Ego3D sin/cos; 'none' is the 2D ablation: the tower's patch
    # tokens as they are, no base-frame position and no voxel pooling (the points are not read).
    position_encoding: Literal['mlp', 'sincos', 'none'] = 'mlp'
    sincos_frequencies: int = 8      # frequencies per axis for 'sincos'
    voxel_size: float = 0.2          # edge of the pooling voxel [m] (LLaVA-3D uses 0.2)
    max_visual_tokens: int = 1024    # deterministic cap on pooled voxels per sample
    min_depth: float = 0.05          # depth outside [min_depth, max_depth] is invalid [m]
    max_depth: float = 10.0
    workspace_min: tuple = (-2.0, -2.0, -1.0)  # voxel grid origin in the base frame [m]

    def validate(self, prefix):
        require(self.voxel_size > 0, f'{prefix}.voxel_size', self.voxel_size, 'a value > 0')
        require(self.max_visual_tokens >= 1, f'{prefix}.max_visual_tokens',
                self.max_visual_tokens, 'an integer >= 1')
        require(0 <= self.min_depth < self.max_depth, f'{prefix}.min_depth', self.min_depth,
                f'0 <= min_depth < max_depth={self.max_depth}')
        require(self.sincos_frequencies >= 1, f'{prefix}.sincos_frequencies',
                self.sincos_frequencies, 'an integer >= 1')
        require(len(self.workspace_min) == 3, f'{prefix}.workspace_min', self.workspace_min,
                'three numbers (x, y, z)')


@dataclass(frozen=True)
class TransformerConfig:
    """Shape of a Llama or Gemma decoder (the VLM's language model or the action expert)."""

    architecture: Literal['llama', 'gemma'] = 'llama'
    hidden_size: int = 4096
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int = 32    # < num_attention_heads means grouped-query attention
    head_dim: int = 128
    intermediate_size: int = 11008
    vocab_size: int = 32000
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    max_position_embeddings: int = 4096
    pretrained_path: str = ''        # local directory for from_pretrained ('' = random init)

    def validate(self, prefix):
        for name in ('hidden_size', 'num_hidden_layers', 'num_attention_heads',
                     'num_key_value_heads', 'head_dim', 'intermediate_size', 'vocab_size'):
            value = getattr(self, name)
            require(value >= 1, f'{prefix}.{name}', value, 'an integer >= 1')
        require(self.num_attention_heads % self.num_key_value_heads == 0,
                f'{prefix}.num_key_value_heads', self.num_key_value_heads,
                f'a divisor of num_attention_heads={self.num_attention_heads}')


@dataclass(frozen=True)
class LanguageModelConfig(TransformerConfig):
    tokenizer_path: str = ''         # local tokenizer directory ('' = the checkpoint's own)
    max_text_tokens: int = 48        # instruction tokens kept (longer ones are truncated)
    prefix_attention: Literal['causal', 'bidirectional'] = 'causal'  # LLaVA's Llama is causal

    def validate(self, prefix):
        super().validate(prefix)
        require(self.architecture == 'llama', f'{prefix}.architecture', self.architecture,
                "'llama' (LLaVA-3D's language model)")
        require(self.max_text_tokens >= 1, f'{prefix}.max_text_tokens', self.max_text_tokens,
                'an integer >= 1')


@dataclass(frozen=True)
class ActionConfig:
    action_dim: int = 8              # dimensions of one action (e.g. 7 joints + gripper)
    state_dim: int = 8               # dimensions of the proprioceptive state
    chunk_size: int = 50             # actions predicted per observation (horizon H)
    dt: float = 0.1                  # time between two actions of a chunk [s]
    names: tuple = ()                # one name per action dimension (joint names)
    lower_limits: tuple = ()         # position limits per dimension ((): none)
    upper_limits: tuple = ()
    # Largest |velocity| [unit/s] and |acceleration| [unit/s^2] per dimension of a commanded
    # trajectory ((): the policy node takes the Panda's published limits when `names` are the
    # simulator Panda's, and checks none otherwise); .inf leaves one dimension unlimited.
    velocity_limits: tuple = ()
    acceleration_limits: tuple = ()

    def validate(self, prefix):
        for name in ('action_dim', 'state_dim', 'chunk_size'):
            value = getattr(self, name)
            require(value >= 1, f'{prefix}.{name}', value, 'an integer >= 1')
        require(self.dt > 0, f'{prefix}.dt', self.dt, 'a period > 0 [s]')
        require(len(self.names) in (0, self.action_dim), f'{prefix}.names', self.names,
                f'{self.action_dim} names (action_dim) or none')
        for name in ('lower_limits', 'upper_limits', 'velocity_limits', 'acceleration_limits'):
            value = getattr(self, name)
            require(len(value) in (0, self.action_dim), f'{prefix}.{name}', value,
                    f'{self.action_dim} numbers (action_dim) or none')
        for name in ('velocity_limits', 'acceleration_limits'):
            for i, value in enumerate(getattr(self, name)):
                require(value > 0, f'{prefix}.{name}[{i}]', value, 'a limit > 0 (.inf: none)')
        require(len(self.lower_limits) == len(self.upper_limits), f'{prefix}.upper_limits',
                self.upper_limits, 'as many values as lower_limits')
        for i, (lo, hi) in enumerate(zip(self.lower_limits, self.upper_limits)):
            require(lo < hi, f'{prefix}.lower_limits[{i}]', lo, f'< upper_limits[{i}]={hi}')


@dataclass(frozen=True)
class FlowConfig:
    """Flow matching in the openpi convention: t = 1 is pure noise, t = 0 the data."""

    num_steps: int = 10              # Euler steps at inference (dt = -1 / num_steps)
    time_beta_alpha: float = 1.5     # training time t ~ Beta(alpha, beta) * (1 - t_min) + t_min
    time_beta_beta: float = 1.0
    time_min: float = 0.001

    def validate(self, prefix):
        require(self.num_steps >= 1, f'{prefix}.num_steps', self.num_steps, 'an integer >= 1')
        require(self.time_beta_alpha > 0 and self.time_beta_beta > 0,
                f'{prefix}.time_beta_alpha', self.time_beta_alpha, 'Beta parameters > 0')
        require(0 <= self.time_min < 1, f'{prefix}.time_min', self.time_min, 'in [0, 1)')


@dataclass(frozen=True)
class SpatialVLAConfig(YamlConfig):
    """The network: its parts, the fusion plan and the weights' dtype."""

    sections_read_elsewhere = ('data', 'train')

    name: str = 'spatialvla'
    plan: Literal[PLANS] = 'late_gemma'
    dtype: Literal['float32', 'bfloat16'] = 'float32'
    # No gradient into encoder + VLM. Deep fusion allows it only with train.trainable
    # 'expert_only' (checked by training.configuration_training.TrainingConfig).
    freeze_vlm: bool = False
    vision: VisionConfig = field(default_factory=VisionConfig)
    encoder3d: Encoder3DConfig = field(default_factory=Encoder3DConfig)
    language_model: LanguageModelConfig = field(default_factory=LanguageModelConfig)
    expert: TransformerConfig = field(default_factory=TransformerConfig)
    action: ActionConfig = field(default_factory=ActionConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)

    def validate(self):
        self.vision.validate('vision')
        self.encoder3d.validate('encoder3d')
        self.language_model.validate('language_model')
        self.expert.validate('expert')
        self.action.validate('action')
        self.flow.validate('flow')
        vlm, expert = self.language_model, self.expert
        if self.plan == 'late_gemma':
            require(expert.architecture == 'gemma', 'expert.architecture', expert.architecture,
                    "'gemma' for plan 'late_gemma'")
        else:
            require(expert.architecture == 'llama', 'expert.architecture', expert.architecture,
                    f"'llama' for plan '{self.plan}'")
        if self.plan == 'deep_fusion':
            # Both streams share every attention op: layers and attention shapes must match.
            for name in ('num_hidden_layers', 'num_attention_heads', 'num_key_value_heads',
                         'head_dim'):
                require(getattr(expert, name) == getattr(vlm, name), f'expert.{name}',
                        getattr(expert, name),
                        f'language_model.{name}={getattr(vlm, name)} (deep fusion shares '
                        'attention layer by layer)')
        return self

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

"""Typed configuration of a spatialvla_ros policy, loaded from YAML and validated once.

One YAML file describes one experiment: the 3D encoder, the VLM, the action expert, the fusion
plan, the action space, the data topics and the training recipe. Everything below the loader
receives these frozen dataclasses, never raw dicts.
"""

import argparse
import dataclasses
from dataclasses import dataclass
from dataclasses import field
import os
import sys
import typing
from typing import Literal

import yaml

PLANS = ('late_gemma', 'late_llama', 'deep_fusion')


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or inconsistent."""


def _require(ok, key, value, expected):
    if not ok:
        raise ConfigError(f"key '{key}': got {value!r}, expected {expected}")


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
        _require(self.image_size % self.patch_size == 0, f'{prefix}.image_size', self.image_size,
                 f'a multiple of patch_size={self.patch_size}')
        _require(self.hidden_size % self.num_attention_heads == 0, f'{prefix}.hidden_size',
                 self.hidden_size,
                 f'a multiple of num_attention_heads={self.num_attention_heads}')
        _require(-self.num_hidden_layers - 1 <= self.feature_layer <= self.num_hidden_layers,
                 f'{prefix}.feature_layer', self.feature_layer,
                 f'a hidden-state index within [-{self.num_hidden_layers + 1}, '
                 f'{self.num_hidden_layers}]')


@dataclass(frozen=True)
class Encoder3DConfig:
    position_encoding: Literal['mlp', 'sincos'] = 'mlp'  # LLaVA-3D MLP or SpatialVLA Ego3D sin/cos
    sincos_frequencies: int = 8      # frequencies per axis for 'sincos'
    voxel_size: float = 0.2          # edge of the pooling voxel [m] (LLaVA-3D uses 0.2)
    max_visual_tokens: int = 1024    # deterministic cap on pooled voxels per sample
    min_depth: float = 0.05          # depth outside [min_depth, max_depth] is invalid [m]
    max_depth: float = 10.0
    workspace_min: tuple = (-2.0, -2.0, -1.0)  # voxel grid origin in the base frame [m]

    def validate(self, prefix):
        _require(self.voxel_size > 0, f'{prefix}.voxel_size', self.voxel_size, 'a value > 0')
        _require(self.max_visual_tokens >= 1, f'{prefix}.max_visual_tokens',
                 self.max_visual_tokens, 'an integer >= 1')
        _require(0 <= self.min_depth < self.max_depth, f'{prefix}.min_depth', self.min_depth,
                 f'0 <= min_depth < max_depth={self.max_depth}')
        _require(self.sincos_frequencies >= 1, f'{prefix}.sincos_frequencies',
                 self.sincos_frequencies, 'an integer >= 1')
        _require(len(self.workspace_min) == 3, f'{prefix}.workspace_min', self.workspace_min,
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
            _require(value >= 1, f'{prefix}.{name}', value, 'an integer >= 1')
        _require(self.num_attention_heads % self.num_key_value_heads == 0,
                 f'{prefix}.num_key_value_heads', self.num_key_value_heads,
                 f'a divisor of num_attention_heads={self.num_attention_heads}')


@dataclass(frozen=True)
class LanguageModelConfig(TransformerConfig):
    tokenizer_path: str = ''         # local tokenizer directory ('' = the checkpoint's own)
    max_text_tokens: int = 48        # instruction tokens kept (longer ones are truncated)
    prefix_attention: Literal['causal', 'bidirectional'] = 'causal'  # LLaVA's Llama is causal

    def validate(self, prefix):
        super().validate(prefix)
        _require(self.architecture == 'llama', f'{prefix}.architecture', self.architecture,
                 "'llama' (LLaVA-3D's language model)")
        _require(self.max_text_tokens >= 1, f'{prefix}.max_text_tokens', self.max_text_tokens,
                 'an integer >= 1')


@dataclass(frozen=True)
class ActionConfig:
    action_dim: int = 8              # dimensions of one action (e.g. 7 joints + gripper)
    state_dim: int = 8               # dimensions of the proprioceptive state
    chunk_size: int = 50             # actions predicted per observation (horizon H)
    dt: float = 0.1                  # time between two actions of a chunk [s]
    names: tuple = ()                # one name per action dimension (joint names)
    lower_limits: tuple = ()         # clip limits per dimension ((): no clipping)
    upper_limits: tuple = ()

    def validate(self, prefix):
        for name in ('action_dim', 'state_dim', 'chunk_size'):
            value = getattr(self, name)
            _require(value >= 1, f'{prefix}.{name}', value, 'an integer >= 1')
        _require(self.dt > 0, f'{prefix}.dt', self.dt, 'a period > 0 [s]')
        _require(len(self.names) in (0, self.action_dim), f'{prefix}.names', self.names,
                 f'{self.action_dim} names (action_dim) or none')
        for name in ('lower_limits', 'upper_limits'):
            value = getattr(self, name)
            _require(len(value) in (0, self.action_dim), f'{prefix}.{name}', value,
                     f'{self.action_dim} numbers (action_dim) or none')
        _require(len(self.lower_limits) == len(self.upper_limits), f'{prefix}.upper_limits',
                 self.upper_limits, 'as many values as lower_limits')
        for i, (lo, hi) in enumerate(zip(self.lower_limits, self.upper_limits)):
            _require(lo < hi, f'{prefix}.lower_limits[{i}]', lo, f'< upper_limits[{i}]={hi}')


@dataclass(frozen=True)
class FlowConfig:
    """Flow matching in the openpi convention: t = 1 is pure noise, t = 0 the data."""

    num_steps: int = 10              # Euler steps at inference (dt = -1 / num_steps)
    time_beta_alpha: float = 1.5     # training time t ~ Beta(alpha, beta) * (1 - t_min) + t_min
    time_beta_beta: float = 1.0
    time_min: float = 0.001

    def validate(self, prefix):
        _require(self.num_steps >= 1, f'{prefix}.num_steps', self.num_steps, 'an integer >= 1')
        _require(self.time_beta_alpha > 0 and self.time_beta_beta > 0,
                 f'{prefix}.time_beta_alpha', self.time_beta_alpha, 'Beta parameters > 0')
        _require(0 <= self.time_min < 1, f'{prefix}.time_min', self.time_min, 'in [0, 1)')


@dataclass(frozen=True)
class CameraConfig:
    name: str = 'camera'
    color_topic: str = '/camera/color/image_raw'
    depth_topic: str = '/camera/depth/image_raw'      # '' when the camera gives a cloud
    camera_info_topic: str = '/camera/color/camera_info'
    cloud_topic: str = ''                             # PointCloud2 instead of depth ('' = off)
    # Camera-to-base transform: translation [m] and quaternion (x, y, z, w).
    base_from_camera_xyz: tuple = (0.0, 0.0, 0.0)
    base_from_camera_quat: tuple = (0.0, 0.0, 0.0, 1.0)

    def validate(self, prefix):
        _require(bool(self.color_topic), f'{prefix}.color_topic', self.color_topic,
                 'a topic name')
        _require(bool(self.depth_topic) != bool(self.cloud_topic), f'{prefix}.depth_topic',
                 self.depth_topic, f'exactly one of depth_topic / cloud_topic '
                 f'(cloud_topic={self.cloud_topic!r})')
        _require(len(self.base_from_camera_xyz) == 3, f'{prefix}.base_from_camera_xyz',
                 self.base_from_camera_xyz, 'three numbers')
        _require(len(self.base_from_camera_quat) == 4, f'{prefix}.base_from_camera_quat',
                 self.base_from_camera_quat, 'four numbers (x, y, z, w)')
        norm = sum(q * q for q in self.base_from_camera_quat) ** 0.5
        _require(abs(norm - 1.0) < 1e-3, f'{prefix}.base_from_camera_quat',
                 self.base_from_camera_quat, 'a unit quaternion')


@dataclass(frozen=True)
class DataConfig:
    """Which topics are the observation, the state, the instruction and the action."""

    cameras: tuple = (CameraConfig(),)
    state_topic: str = '/joint_states'
    instruction_topic: str = '/spatialvla/instruction'
    action_topic: str = '/spatialvla/expert_trajectory'  # JointTrajectory commanded in the demos
    sync_slop: float = 0.02          # max stamp difference inside one synchronised set [s]

    def validate(self, prefix):
        _require(len(self.cameras) >= 1, f'{prefix}.cameras', self.cameras, 'at least one camera')
        names = [c.name for c in self.cameras]
        _require(len(set(names)) == len(names), f'{prefix}.cameras', names, 'unique camera names')
        for i, cam in enumerate(self.cameras):
            cam.validate(f'{prefix}.cameras[{i}]')
        _require(self.sync_slop >= 0, f'{prefix}.sync_slop', self.sync_slop, 'a value >= 0 [s]')


@dataclass(frozen=True)
class TrainConfig:
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

    def validate(self, prefix):
        for name in ('batch_size', 'steps', 'log_every', 'checkpoint_every'):
            value = getattr(self, name)
            _require(value >= 1, f'{prefix}.{name}', value, 'an integer >= 1')
        _require(self.learning_rate > 0, f'{prefix}.learning_rate', self.learning_rate, '> 0')
        _require(0 <= self.warmup_steps <= self.steps, f'{prefix}.warmup_steps',
                 self.warmup_steps, f'in [0, steps={self.steps}]')
        _require(0 <= self.val_fraction < 1, f'{prefix}.val_fraction', self.val_fraction,
                 'in [0, 1)')


@dataclass(frozen=True)
class SpatialVLAConfig:
    name: str = 'spatialvla'
    plan: Literal['late_gemma', 'late_llama', 'deep_fusion'] = 'late_gemma'
    dtype: Literal['float32', 'bfloat16'] = 'float32'
    freeze_vlm: bool = False         # late fusion only: no gradient into encoder + VLM
    vision: VisionConfig = field(default_factory=VisionConfig)
    encoder3d: Encoder3DConfig = field(default_factory=Encoder3DConfig)
    language_model: LanguageModelConfig = field(default_factory=LanguageModelConfig)
    expert: TransformerConfig = field(default_factory=TransformerConfig)
    action: ActionConfig = field(default_factory=ActionConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self):
        self.vision.validate('vision')
        self.encoder3d.validate('encoder3d')
        self.language_model.validate('language_model')
        self.expert.validate('expert')
        self.action.validate('action')
        self.flow.validate('flow')
        self.data.validate('data')
        self.train.validate('train')
        vlm, expert = self.language_model, self.expert
        if self.plan == 'late_gemma':
            _require(expert.architecture == 'gemma', 'expert.architecture', expert.architecture,
                     "'gemma' for plan 'late_gemma'")
        else:
            _require(expert.architecture == 'llama', 'expert.architecture', expert.architecture,
                     f"'llama' for plan '{self.plan}'")
        if self.plan == 'deep_fusion':
            # Both streams share every attention op: layers and attention shapes must match.
            for name in ('num_hidden_layers', 'num_attention_heads', 'num_key_value_heads',
                         'head_dim'):
                _require(getattr(expert, name) == getattr(vlm, name), f'expert.{name}',
                         getattr(expert, name),
                         f'language_model.{name}={getattr(vlm, name)} (deep fusion shares '
                         'attention layer by layer)')
            _require(not self.freeze_vlm or self.train.trainable == 'expert_only', 'freeze_vlm',
                     self.freeze_vlm,
                     "false for deep fusion unless train.trainable is 'expert_only'")
        return self

    def to_dict(self):
        return dataclasses.asdict(self)


def _type_name(tp):
    if typing.get_origin(tp) is Literal:
        return 'one of ' + ', '.join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, '__name__', str(tp))


def _convert(value, tp, default, key):
    """Check one YAML value against a dataclass field type; return the typed value."""
    if dataclasses.is_dataclass(tp):
        _require(isinstance(value, dict), key, value, f'a mapping of {tp.__name__} keys')
        return _build(tp, value, key)
    if typing.get_origin(tp) is Literal:
        _require(value in typing.get_args(tp), key, value, _type_name(tp))
        return value
    if tp is bool:
        _require(isinstance(value, bool), key, value, 'true or false')
        return value
    if tp is int:
        _require(isinstance(value, int) and not isinstance(value, bool), key, value,
                 'an integer')
        return value
    if tp is float:
        _require(isinstance(value, (int, float)) and not isinstance(value, bool), key, value,
                 'a number')
        return float(value)
    if tp is str:
        _require(isinstance(value, str), key, value, 'a string')
        return value
    if tp is tuple:
        _require(isinstance(value, (list, tuple)), key, value, 'a list')
        if default and dataclasses.is_dataclass(default[0]):
            return tuple(_convert(v, type(default[0]), None, f'{key}[{i}]')
                         for i, v in enumerate(value))
        item_type = type(default[0]) if default else None
        out = []
        for i, v in enumerate(value):
            if item_type in (int, float) or (item_type is None and isinstance(v, (int, float))):
                out.append(_convert(v, float if item_type is None else item_type, None,
                                    f'{key}[{i}]'))
            elif item_type is not None:
                out.append(_convert(v, item_type, None, f'{key}[{i}]'))
            else:
                _require(isinstance(v, str), f'{key}[{i}]', v, 'a string or a number')
                out.append(v)
        return tuple(out)
    raise TypeError(f'unsupported config type {tp} for {key}')


def _build(cls, data, prefix=''):
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f'{prefix}.{unknown[0]}' if prefix else unknown[0]
        raise ConfigError(f"key '{key}': unknown key, expected one of: "
                          + ', '.join(sorted(fields)))
    kwargs = {}
    for name, value in data.items():
        f = fields[name]
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        key = f'{prefix}.{name}' if prefix else name
        kwargs[name] = _convert(value, hints[name], default, key)
    return cls(**kwargs)


def config_from_dict(data, source='<dict>'):
    """Build and validate a config; every error names `source`, the key and the expectation."""
    try:
        _require(isinstance(data, dict), '<top level>', type(data).__name__,
                 'a mapping of config sections')
        return _build(SpatialVLAConfig, data).validate()
    except ConfigError as exc:
        raise ConfigError(f'{source}: {exc}') from None


def load_config(path):
    """Load a YAML experiment config (safe_load) and validate it once."""
    path = os.fspath(path)
    try:
        with open(path, encoding='utf-8') as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f'{path}: config file not found') from None
    except yaml.YAMLError as exc:
        raise ConfigError(f'{path}: not valid YAML: {exc}') from None
    return config_from_dict(data if data is not None else {}, source=path)


def save_config(config, path):
    with open(path, 'w', encoding='utf-8') as f:
        yaml.safe_dump(_plain(config.to_dict()), f, sort_keys=False)


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def main(args=None):
    parser = argparse.ArgumentParser(
        prog='spatialvla_check_config',
        description='Load and validate spatialvla_ros YAML configs; print a summary of each.')
    parser.add_argument('configs', nargs='+', help='YAML config files to validate')
    ns = parser.parse_args(args)
    status = 0
    for path in ns.configs:
        try:
            cfg = load_config(path)
        except ConfigError as exc:
            print(f'error: {exc}', file=sys.stderr)
            status = 1
            continue
        print(f'{path}: ok (plan={cfg.plan}, vlm layers={cfg.language_model.num_hidden_layers}, '
              f'expert width={cfg.expert.hidden_size}, chunk={cfg.action.chunk_size})')
    return status


if __name__ == '__main__':
    sys.exit(main())

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

"""Every shipped config loads; each kind of broken config yields its own precise message."""

import dataclasses
import glob
import os

import pytest
from repo_paths import REPO_ROOT
from spatialvla_ros.models.configuration_spatialvla import PLANS
from spatialvla_ros.models.configuration_spatialvla import SpatialVLAConfig
from spatialvla_ros.models.modeling_spatialvla import SpatialVLAModel
from spatialvla_ros.policies.configuration_policy import PolicyConfig
from spatialvla_ros.tools import check_config
from spatialvla_ros.training.configuration_training import TrainingConfig
from spatialvla_ros.typed_config import ConfigError
import yaml

REPO = REPO_ROOT
CONFIGS = sorted(glob.glob(os.path.join(REPO, 'config', '*.yaml')))


def test_there_are_six_configs():
    names = {os.path.basename(p) for p in CONFIGS}
    assert {'late_gemma.yaml', 'late_llama.yaml', 'deep_fusion.yaml'} <= names
    assert len([n for n in names if n.startswith('llava3d_7b_')]) == 3


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
def test_config_loads(path):
    cfg = TrainingConfig.from_yaml(path)
    assert cfg.plan in PLANS
    assert len(cfg.action.names) in (0, cfg.action.action_dim)


def test_real_presets_have_paper_shapes():
    for plan in ('late_gemma2b', 'late_llama', 'deep_fusion'):
        cfg = TrainingConfig.from_yaml(os.path.join(REPO, 'config', f'llava3d_7b_{plan}.yaml'))
        vlm = cfg.language_model
        assert (vlm.hidden_size, vlm.num_hidden_layers, vlm.num_attention_heads,
                vlm.head_dim) == (4096, 32, 32, 128)
        assert (cfg.vision.image_size, cfg.vision.patch_size) == (336, 14)
    path = os.path.join(REPO, 'config', 'llava3d_7b_late_gemma2b.yaml')
    gemma = TrainingConfig.from_yaml(path).expert
    assert (gemma.hidden_size, gemma.num_hidden_layers, gemma.num_attention_heads,
            gemma.num_key_value_heads, gemma.head_dim) == (2048, 18, 8, 1, 256)


def test_save_and_reload_is_identical(tmp_path):
    for path in CONFIGS:
        cfg = TrainingConfig.from_yaml(path)
        out = tmp_path / os.path.basename(path)
        cfg.save_yaml(out)
        assert TrainingConfig.from_yaml(out) == cfg


def _edit(section, key, value):
    def apply(data):
        target = data
        for part in section:
            target = target[part]
        target[key] = value
    return apply


BROKEN = [
    # (edit, words the message must contain)
    (_edit([], 'colour', 'red'), ["key 'colour'", 'unknown key', 'expected one of']),
    (_edit(['expert'], 'hidden_sise', 32), ["key 'expert.hidden_sise'", 'unknown key']),
    (_edit([], 'plan', 'early_fusion'), ["key 'plan'", "'early_fusion'", "'deep_fusion'"]),
    (_edit(['action'], 'chunk_size', 'ten'), ["key 'action.chunk_size'", "'ten'",
                                              'an integer']),
    (_edit(['action'], 'chunk_size', 2.5), ["key 'action.chunk_size'", 'an integer']),
    (_edit(['action'], 'dt', -0.1), ["key 'action.dt'", '-0.1', '> 0']),
    (_edit(['action'], 'names', ['a', 'b']), ["key 'action.names'", '8 names']),
    (_edit([], 'freeze_vlm', 'yes'), ["key 'freeze_vlm'", 'true or false']),
    (_edit(['expert'], 'num_attention_heads', 8),
     ["key 'expert.num_attention_heads'", '8', 'language_model.num_attention_heads=4']),
    (_edit(['expert'], 'head_dim', 8), ["key 'expert.head_dim'", 'language_model.head_dim=16']),
    (_edit(['expert'], 'num_hidden_layers', 3),
     ["key 'expert.num_hidden_layers'", 'language_model.num_hidden_layers=2']),
    (_edit(['expert'], 'architecture', 'gemma'), ["key 'expert.architecture'", "'llama'"]),
    (_edit(['language_model'], 'num_key_value_heads', 3),
     ["key 'language_model.num_key_value_heads'", 'a divisor of num_attention_heads=4']),
    (_edit(['vision'], 'image_size', 70), ["key 'vision.image_size'", 'a multiple of']),
    (_edit(['encoder3d'], 'voxel_size', 0), ["key 'encoder3d.voxel_size'", '> 0']),
    (_edit(['encoder3d'], 'position_encoding', 'rope'),
     ["key 'encoder3d.position_encoding'", "'mlp'", "'sincos'"]),
    (_edit(['flow'], 'num_steps', 0), ["key 'flow.num_steps'", '>= 1']),
    (_edit([], 'vision', [1, 2]), ["key 'vision'", 'a mapping']),
    (lambda d: d['data']['cameras'][0].update(cloud_topic='/points'),
     ["key 'data.cameras[0].depth_topic'", 'exactly one of']),
    (lambda d: d['data']['cameras'][0].update(base_from_camera_quat=[0, 0, 0, 2]),
     ["key 'data.cameras[0].base_from_camera_quat'", 'unit quaternion']),
    (_edit(['train'], 'warmup_steps', 10**6), ["key 'train.warmup_steps'", 'in [0, steps=']),
]


@pytest.mark.parametrize('edit,words', BROKEN, ids=[w[0] for _, w in BROKEN])
def test_broken_config_message(tmp_path, edit, words):
    with open(os.path.join(REPO, 'config', 'deep_fusion.yaml')) as f:
        data = yaml.safe_load(f)
    edit(data)
    path = tmp_path / 'broken.yaml'
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        TrainingConfig.from_yaml(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    for word in words:
        assert word in message, f'{word!r} not in {message!r}'


def test_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match='config file not found'):
        TrainingConfig.from_yaml(tmp_path / 'missing.yaml')
    bad = tmp_path / 'bad.yaml'
    bad.write_text('plan: [unclosed\n')
    with pytest.raises(ConfigError, match='not valid YAML'):
        TrainingConfig.from_yaml(bad)
    listy = tmp_path / 'list.yaml'
    listy.write_text('- 1\n- 2\n')
    with pytest.raises(ConfigError, match='a mapping of config sections'):
        TrainingConfig.from_yaml(listy)


@pytest.mark.parametrize('content,words', [
    (bytes(range(128, 256)) * 4, ['not UTF-8 YAML']),
    (b'', ['is empty', 'expected a mapping']),
    (b'# only a comment\n', ['is empty', 'expected a mapping']),
    (b'just a string\n', ['expected a mapping', 'str']),
    (b'- 1\n- 2\n', ['expected a mapping', 'list']),
], ids=['random_bytes', 'empty', 'comment_only', 'string', 'list'])
@pytest.mark.parametrize('cls', [SpatialVLAConfig, PolicyConfig, TrainingConfig])
def test_config_file_that_is_not_a_mapping(tmp_path, content, words, cls):
    path = tmp_path / 'config.yaml'
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        cls.from_yaml(path)
    message = str(info.value)
    assert '\n' not in message and message.startswith(f'{path}: '), message
    for word in words:
        assert word in message, f'{word!r} not in {message!r}'
    assert 'gemma' not in message                    # not a misleading architecture error


def test_invalid_yaml_message_is_one_line(tmp_path):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('plan: late_gemma\nvision: [unclosed\n')
    with pytest.raises(ConfigError) as info:
        TrainingConfig.from_yaml(bad)
    assert '\n' not in str(info.value) and str(info.value).startswith(f'{bad}: not valid YAML')


SHIPPED = os.path.join(REPO, 'checkpoints', 'default', 'config.yaml')


def test_each_layer_reads_its_sections_of_one_file():
    full = TrainingConfig.from_yaml(SHIPPED)
    policy = PolicyConfig.from_yaml(SHIPPED)
    model = SpatialVLAConfig.from_yaml(SHIPPED)
    assert policy.data == full.data and not hasattr(policy, 'train')
    assert not hasattr(model, 'data') and not hasattr(model, 'train')
    for name in (f.name for f in dataclasses.fields(SpatialVLAConfig)):
        assert getattr(model, name) == getattr(policy, name) == getattr(full, name)


def test_sections_of_other_layers_are_skipped_but_typos_are_not(tmp_path):
    with open(os.path.join(REPO, 'config', 'late_gemma.yaml')) as f:
        data = yaml.safe_load(f)
    data['train']['warmup_steps'] = 10 ** 6           # broken recipe: only training refuses
    path = tmp_path / 'config.yaml'
    path.write_text(yaml.safe_dump(data))
    assert PolicyConfig.from_yaml(path).plan == 'late_gemma'
    with pytest.raises(ConfigError, match="key 'train.warmup_steps'"):
        TrainingConfig.from_yaml(path)
    data['trian'] = {}
    path.write_text(yaml.safe_dump(data))
    for cls in (SpatialVLAConfig, PolicyConfig, TrainingConfig):
        with pytest.raises(ConfigError, match="key 'trian': unknown key"):
            cls.from_yaml(path)


def test_deep_fusion_freezing_is_checked_against_the_recipe(tmp_path):
    with open(os.path.join(REPO, 'config', 'deep_fusion.yaml')) as f:
        data = yaml.safe_load(f)
    data['freeze_vlm'] = True
    path = tmp_path / 'config.yaml'
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="key 'freeze_vlm'.*train.trainable is 'expert_only'"):
        TrainingConfig.from_yaml(path)
    data['train']['trainable'] = 'expert_only'
    path.write_text(yaml.safe_dump(data))
    assert TrainingConfig.from_yaml(path).freeze_vlm


def test_the_trainer_applies_the_recipe_to_the_model():
    path = os.path.join(REPO, 'config', 'deep_fusion.yaml')
    cfg = TrainingConfig.from_yaml(path)
    model = SpatialVLAModel(SpatialVLAConfig.from_yaml(path))   # no train section at all
    assert not model.backbone.gradient_checkpointing
    assert all(p.requires_grad for p in model.parameters()) and not model.vlm_frozen
    recipe = dataclasses.replace(cfg.train, trainable='expert_only', gradient_checkpointing=True)
    recipe.apply_to(model)
    assert model.vlm_frozen
    assert not any(p.requires_grad for p in model.vlm.parameters())
    assert not any(p.requires_grad for p in model.encoder3d.parameters())
    assert any(p.requires_grad for p in model.action_head.parameters())
    assert model.backbone.gradient_checkpointing


def test_check_config_cli(tmp_path, capsys):
    assert check_config.main([os.path.join(REPO, 'config', 'deep_fusion.yaml')]) == 0
    assert 'ok (plan=deep_fusion' in capsys.readouterr().out
    empty = tmp_path / 'empty.yaml'
    empty.write_text('')
    assert check_config.main([str(empty), os.path.join(REPO, 'config', 'late_gemma.yaml')]) == 1
    captured = capsys.readouterr()
    assert captured.err == f'error: {empty}: the file is empty, expected a mapping of config ' \
        'sections\n'
    assert 'ok (plan=late_gemma' in captured.out

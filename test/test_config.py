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

import glob
import os

import pytest
from spatialvla_ros.config import ConfigError
from spatialvla_ros.config import load_config
from spatialvla_ros.config import save_config
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(REPO, 'config', '*.yaml')))


def test_there_are_six_configs():
    names = {os.path.basename(p) for p in CONFIGS}
    assert {'late_gemma.yaml', 'late_llama.yaml', 'deep_fusion.yaml'} <= names
    assert len([n for n in names if n.startswith('llava3d_7b_')]) == 3


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
def test_config_loads(path):
    cfg = load_config(path)
    assert cfg.plan in ('late_gemma', 'late_llama', 'deep_fusion')
    assert len(cfg.action.names) in (0, cfg.action.action_dim)


def test_real_presets_have_paper_shapes():
    for plan in ('late_gemma2b', 'late_llama', 'deep_fusion'):
        cfg = load_config(os.path.join(REPO, 'config', f'llava3d_7b_{plan}.yaml'))
        vlm = cfg.language_model
        assert (vlm.hidden_size, vlm.num_hidden_layers, vlm.num_attention_heads,
                vlm.head_dim) == (4096, 32, 32, 128)
        assert (cfg.vision.image_size, cfg.vision.patch_size) == (336, 14)
    gemma = load_config(os.path.join(REPO, 'config', 'llava3d_7b_late_gemma2b.yaml')).expert
    assert (gemma.hidden_size, gemma.num_hidden_layers, gemma.num_attention_heads,
            gemma.num_key_value_heads, gemma.head_dim) == (2048, 18, 8, 1, 256)


def test_save_and_reload_is_identical(tmp_path):
    for path in CONFIGS:
        cfg = load_config(path)
        out = tmp_path / os.path.basename(path)
        save_config(cfg, out)
        assert load_config(out) == cfg


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
        load_config(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    for word in words:
        assert word in message, f'{word!r} not in {message!r}'


def test_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match='config file not found'):
        load_config(tmp_path / 'missing.yaml')
    bad = tmp_path / 'bad.yaml'
    bad.write_text('plan: [unclosed\n')
    with pytest.raises(ConfigError, match='not valid YAML'):
        load_config(bad)
    listy = tmp_path / 'list.yaml'
    listy.write_text('- 1\n- 2\n')
    with pytest.raises(ConfigError, match='a mapping of config sections'):
        load_config(listy)

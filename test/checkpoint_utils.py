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
Tiny random checkpoints for tests that need a loadable policy (nodes, evaluator, tools).

Use the `tiny_checkpoint` fixture (import it into a test module) or call
`make_tiny_checkpoint(directory)`. The fixture builds each variant once per pytest session
(a module-level cache), because several test modules share it.
"""

import os
import tempfile

import numpy as np
import pytest
from repo_paths import REPO_ROOT

REPO = REPO_ROOT
CONFIG_DIR = os.path.join(REPO, 'config')
WORDS = ('pick', 'up', 'the', 'red', 'green', 'blue', 'cube', 'and', 'place', 'it', 'in',
         'tray', 'push', 'reach', 'a', 'to', 'left', 'right')

_cache = {}


def make_tiny_checkpoint(directory, plan='late_gemma', seed=0, edit_config=None):
    """
    Write a random-weight checkpoint of config/<plan>.yaml to `directory`; return the path.

    `edit_config(config) -> config` may change runtime-relevant fields first (cameras,
    action limits). The statistics are not the identity (mean at the middle of the joint
    limits, std a tenth of their range) so un-normalisation is visible in the actions.
    """
    import torch

    from spatialvla_ros.training.configuration_training import TrainingConfig
    from spatialvla_ros.models.checkpoint import save_checkpoint
    from spatialvla_ros.models.modeling_spatialvla import SpatialVLAModel
    from spatialvla_ros.models.tokenizer import build_word_tokenizer
    from spatialvla_ros.core_types import NormalizationStats

    config = TrainingConfig.from_yaml(os.path.join(CONFIG_DIR, f'{plan}.yaml'))
    if edit_config is not None:
        config = edit_config(config).validate()
    torch.manual_seed(seed)
    model = SpatialVLAModel(config).eval()
    act = config.action
    if act.lower_limits:
        lower = np.asarray(act.lower_limits, dtype=np.float32)
        upper = np.asarray(act.upper_limits, dtype=np.float32)
        action_mean, action_std = (lower + upper) / 2, (upper - lower) / 10
    else:
        action_mean = np.full(act.action_dim, 0.5, np.float32)
        action_std = np.full(act.action_dim, 0.2, np.float32)
    state_mean = np.resize(action_mean, act.state_dim).astype(np.float32)
    state_std = np.resize(action_std, act.state_dim).astype(np.float32)
    stats = NormalizationStats(state_mean, state_std, action_mean, action_std)
    with tempfile.TemporaryDirectory() as tokenizer_dir:
        tokenizer = build_word_tokenizer(list(WORDS), tokenizer_dir)
        return save_checkpoint(directory, model, config, stats, tokenizer)


def cached_checkpoint(tmp_path_factory, plan='late_gemma', key=None, edit_config=None):
    """Build (once per session and `key`) a tiny checkpoint and return its directory."""
    key = key or plan
    if key not in _cache:
        base = tmp_path_factory.mktemp(f'ckpt_{key}')
        _cache[key] = make_tiny_checkpoint(str(base / 'checkpoint'), plan=plan,
                                           edit_config=edit_config)
    return _cache[key]


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory):
    """Directory of a tiny late_gemma checkpoint (one RGB-D camera, 8 Panda joints)."""
    return cached_checkpoint(tmp_path_factory, 'late_gemma')

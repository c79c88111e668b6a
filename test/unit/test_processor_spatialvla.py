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

"""Processor (normalisation, tokenisation, collation, clipping) and the policy's action queue."""

import copy
import dataclasses
import os

import numpy as np
import pytest
from repo_paths import REPO_ROOT
from spatialvla_ros.core_types import NormalizationStats
from spatialvla_ros.core_types import RawObservation
from spatialvla_ros.models.modeling_encoder3d import patch_positions
from spatialvla_ros.models.modeling_encoder3d import resize_images
from spatialvla_ros.models.modeling_spatialvla import SpatialVLAModel
from spatialvla_ros.models.tokenizer import tokenize_instructions
from spatialvla_ros.perception.configuration import CameraConfig
from spatialvla_ros.policies.configuration_policy import PolicyConfig
from spatialvla_ros.policies.policy_spatialvla import SpatialVLAPolicy
from spatialvla_ros.policies.processor_spatialvla import SpatialVLAProcessor
from spatialvla_ros.sim.vocabulary import build_demo_tokenizer
import torch

CONFIG_DIR = os.path.join(REPO_ROOT, 'config')


@pytest.fixture(scope='module')
def config():
    return PolicyConfig.from_yaml(os.path.join(CONFIG_DIR, 'late_llama.yaml'))


@pytest.fixture(scope='module')
def tokenizer(tmp_path_factory):
    return build_demo_tokenizer(str(tmp_path_factory.mktemp('tok')))


@pytest.fixture(scope='module')
def stats():
    rng = np.random.default_rng(0)
    return NormalizationStats.from_arrays(rng.normal(0.3, 2.0, (200, 8)),
                                          rng.normal(-0.1, 0.5, (200, 10, 8)))


def raw_obs(rng, h=48, w=64, instruction='pick up the red cube', state_dim=8):
    points = rng.uniform(0.2, 0.8, (h, w, 3)).astype(np.float32)
    points[:5] = np.nan  # invalid depth rows
    return RawObservation(images=[rng.integers(0, 256, (h, w, 3), dtype=np.uint8)],
                          points=[points], state=rng.normal(size=state_dim).astype(np.float32),
                          instruction=instruction, camera_names=['front'])


def test_stats_match_numpy_and_floor_constant_dims():
    rng = np.random.default_rng(1)
    states = rng.normal(size=(50, 3))
    states[:, 2] = 4.0                                   # a joint that never moved
    actions = rng.normal(size=(50, 6, 2))
    mask = rng.random((50, 6)) > 0.3
    actions[~mask] = 1e6                                 # padded steps must not count
    stats = NormalizationStats.from_arrays(states, actions, mask, std_floor=1e-2)
    np.testing.assert_allclose(stats.state_mean, states.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats.state_std[:2], states[:, :2].std(0), rtol=1e-6)
    assert stats.state_std[2] == pytest.approx(1e-2)
    np.testing.assert_allclose(stats.action_mean, actions[mask].mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.action_std, actions[mask].std(0), rtol=1e-5)
    back = NormalizationStats.from_tensors(stats.to_tensors())
    for key in ('state_mean', 'state_std', 'action_mean', 'action_std'):
        np.testing.assert_array_equal(getattr(back, key), getattr(stats, key))
    tensors = stats.to_tensors()
    del tensors['action_std']
    with pytest.raises(ValueError, match='action_std'):
        NormalizationStats.from_tensors(tensors, source='x.safetensors')
    with pytest.raises(ValueError, match='NaN'):
        NormalizationStats.from_arrays(np.full((3, 2), np.nan), np.zeros((3, 2)))


def test_observations_to_model_layout(config, tokenizer, stats):
    rng = np.random.default_rng(2)
    raws = [raw_obs(rng), raw_obs(rng, instruction='push the blue block to the left')]
    obs = SpatialVLAProcessor(config, tokenizer, stats).observations_to_model(raws)
    assert obs.images.shape == (2, 1, 3, 48, 64) and obs.images.dtype == torch.float32
    # pixel (row 7, col 9, green) of sample 1 lands at [1, view 0, channel 1, 7, 9]
    assert obs.images[1, 0, 1, 7, 9].item() == pytest.approx(raws[1].images[0][7, 9, 1] / 255.0)
    assert obs.points.shape == (2, 1, 48, 64, 3)
    assert torch.isnan(obs.points[0, 0, :5]).all() and torch.isfinite(obs.points[0, 0, 5:]).all()
    expected = (raws[0].state - stats.state_mean) / stats.state_std
    np.testing.assert_allclose(obs.state[0].numpy(), expected, rtol=1e-5, atol=1e-6)
    ids, mask = tokenize_instructions(tokenizer, [r.instruction for r in raws],
                                      config.language_model.max_text_tokens)
    assert torch.equal(obs.input_ids, ids) and torch.equal(obs.attention_mask, mask)
    assert obs.attention_mask.dtype == torch.bool
    assert obs.input_ids.shape == (2, config.language_model.max_text_tokens)
    # no unknown words in the demo vocabulary
    assert not (obs.input_ids[obs.attention_mask] == tokenizer.unk_token_id).any()


def test_bad_observations_name_the_field(config, tokenizer, stats):
    proc = SpatialVLAProcessor(config, tokenizer, stats)
    rng = np.random.default_rng(3)
    bad = raw_obs(rng)
    bad.images = [bad.images[0].astype(np.float32)]
    with pytest.raises(ValueError, match=r'observations\[1\].*images\[0\]'):
        proc.observations_to_model([raw_obs(rng), bad])
    bad = raw_obs(rng, state_dim=5)
    with pytest.raises(ValueError, match=r'observations\[0\].*state'):
        proc.observations_to_model([bad])
    bad = raw_obs(rng)
    bad.state[2] = np.nan
    with pytest.raises(ValueError, match='state'):
        proc.observations_to_model([bad])
    bad = raw_obs(rng)
    bad.images.append(bad.images[0])
    bad.points.append(bad.points[0])
    with pytest.raises(ValueError, match='cameras'):
        proc.observations_to_model([bad])
    with pytest.raises(ValueError, match='observations'):
        proc.observations_to_model([])


def plane_points(h, w):
    """Return the xyz map of a tilted plane seen by an h x w camera (smooth, like a table)."""
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([0.3 + 0.4 * (u + 0.5) / w, -0.2 + 0.4 * (v + 0.5) / h,
                     0.1 * (u + 0.5) / w], axis=-1).astype(np.float32)


def test_cameras_of_different_sizes_run_end_to_end(config, tokenizer, stats):
    # A 48x64 camera beside a 30x40 one (and a batch whose observations differ in size):
    # each camera goes to the tower's input size, its 3D positions stay its own.
    front = config.data.cameras[0]
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, cameras=(
        front, CameraConfig(name='side', color_topic='/side/color/image_raw',
                            depth_topic='/side/depth/image_raw',
                            camera_info_topic='/side/color/camera_info'))))
    proc = SpatialVLAProcessor(config, tokenizer, stats)
    rng = np.random.default_rng(12)
    raws = []
    for sizes in (((48, 64), (30, 40)), ((30, 40), (30, 40))):
        raw = raw_obs(rng, *sizes[0])
        raw.images.append(rng.integers(0, 256, sizes[1] + (3,), dtype=np.uint8))
        raw.points = [plane_points(*sizes[0]), plane_points(*sizes[1])]
        raw.points[1][:4] = np.nan                       # invalid depth stays invalid
        raw.camera_names = ['front', 'side']
        raws.append(raw)
    obs = proc.observations_to_model(raws)
    size = config.vision.image_size
    assert obs.images.shape == (2, 2, 3, size, size)
    assert obs.points.shape == (2, 2, size, size, 3)
    for b, raw in enumerate(raws):
        for v, (img, pts) in enumerate(zip(raw.images, raw.points)):
            native = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
            # the image the encoder would make of this camera alone, to the last bit
            torch.testing.assert_close(obs.images[b, v], resize_images(native, size)[0],
                                       rtol=0, atol=0)
            # every resampled point is one of the camera's own points (none interpolated)
            mine = {tuple(p) for p in pts.reshape(-1, 3)[np.isfinite(pts).all(-1).reshape(-1)]}
            got = obs.points[b, v].reshape(-1, 3).numpy()
            assert {tuple(p) for p in got[np.isfinite(got).all(-1)]} <= mine
            # and each patch's 3D position is the one of the native map within a pixel
            grid = size // config.vision.patch_size
            resampled, ok = patch_positions(obs.points[b, v][None, None], grid)
            ref, ref_ok = patch_positions(torch.from_numpy(pts)[None, None], grid)
            assert torch.equal(ok, ref_ok)
            pixel = 0.4 / min(pts.shape[:2])
            torch.testing.assert_close(resampled[ok], ref[ok], rtol=0, atol=pixel)
    torch.manual_seed(0)
    policy = SpatialVLAPolicy(SpatialVLAModel(config), proc)
    chunks = policy.predict_chunks(raws, seed=3)
    assert chunks.shape == (2, 10, 8) and np.isfinite(chunks).all()
    actions = rng.normal(size=(10, 8)).astype(np.float32)
    batch = proc.collate([(raw, actions, np.ones(10, bool)) for raw in raws])
    loss = policy.model.compute_loss(batch, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    loss.backward()


def test_collate_normalises_and_masks(config, tokenizer, stats):
    proc = SpatialVLAProcessor(config, tokenizer, stats)
    rng = np.random.default_rng(4)
    actions = rng.normal(size=(10, 8)).astype(np.float32)
    mask = np.arange(10) < 6
    actions[~mask] = np.nan                               # garbage past the episode end
    batch = proc.collate([(raw_obs(rng), actions, mask), (raw_obs(rng), actions, mask)])
    assert batch.actions.shape == (2, 10, 8) and batch.action_mask.dtype == torch.bool
    expected = (actions[:6] - stats.action_mean) / stats.action_std
    np.testing.assert_allclose(batch.actions[0, :6].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert torch.all(batch.actions[:, 6:] == 0)
    assert torch.equal(batch.action_mask[1], torch.from_numpy(mask))
    with pytest.raises(ValueError, match=r'samples\[0\]\.actions'):
        proc.collate([(raw_obs(rng), actions[:5], mask)])
    with pytest.raises(ValueError, match=r'samples\[0\]\.action_mask'):
        proc.collate([(raw_obs(rng), actions, mask.astype(np.int64))])


def test_actions_to_robot_unnormalises_and_refuses_nan(config, tokenizer, stats):
    proc = SpatialVLAProcessor(config, tokenizer, stats)
    lower = np.array(config.action.lower_limits, dtype=np.float32)
    upper = np.array(config.action.upper_limits, dtype=np.float32)
    rng = np.random.default_rng(5)
    inside = rng.uniform(lower, upper, size=(2, 10, 8)).astype(np.float32)
    normalised = torch.from_numpy(stats.normalize_action(inside).astype(np.float32))
    np.testing.assert_allclose(proc.actions_to_robot(normalised), inside, rtol=1e-5, atol=1e-5)
    huge = torch.full((1, 10, 8), 1e3)
    out = proc.actions_to_robot(huge.to(torch.bfloat16))
    # Not clipped: the joint limits are the safety filter's, which counts what it clamps.
    np.testing.assert_allclose(out[0, 0], stats.unnormalize_action(np.full(8, 1e3)), rtol=1e-5)
    assert np.all(out[0, 0] > upper) and np.all(proc.actions_to_robot(-huge)[0, 3] < lower)
    huge[0, 4, 2] = float('nan')
    with pytest.raises(ValueError, match='NaN'):
        proc.actions_to_robot(huge)
    with pytest.raises(ValueError, match='actions'):
        proc.actions_to_robot(torch.zeros(10, 8))


def test_policy_seeded_chunks(config, tokenizer, stats):
    torch.manual_seed(0)
    model = SpatialVLAModel(config)
    policy = SpatialVLAPolicy(model, SpatialVLAProcessor(config, tokenizer, stats))
    rng = np.random.default_rng(6)
    obs = raw_obs(rng)
    chunk = policy.predict_chunk(obs, seed=7)
    assert chunk.shape == (10, 8) and chunk.dtype == np.float32 and np.isfinite(chunk).all()
    np.testing.assert_array_equal(chunk, policy.predict_chunk(obs, seed=7))
    assert not np.array_equal(chunk, policy.predict_chunk(obs, seed=8))
    both = policy.predict_chunks([obs, raw_obs(rng)], seed=7)
    assert both.shape == (2, 10, 8)


def test_compiled_policy_gives_the_eager_actions(config, tokenizer, stats):
    # torch.compile of the denoising step (inductor, as the node uses it): warm-up compiles,
    # then live observations give the eager chunks within float tolerance.
    torch.manual_seed(0)
    processor = SpatialVLAProcessor(config, tokenizer, stats)
    eager = SpatialVLAPolicy(SpatialVLAModel(config), processor)
    compiled = SpatialVLAPolicy(copy.deepcopy(eager.model), processor, compile=True)
    assert compiled.compiled and not eager.compiled
    assert compiled.warmup() > 0
    rng = np.random.default_rng(11)
    for _ in range(2):
        obs = raw_obs(rng)
        np.testing.assert_allclose(compiled.predict_chunk(obs, seed=3),
                                   eager.predict_chunk(obs, seed=3), rtol=1e-4, atol=1e-5)
    # parameter names are untouched: a compiled policy's model saves like an eager one
    assert list(compiled.model.state_dict()) == list(eager.model.state_dict())


def test_demo_vocabulary_covers_every_simulator_instruction(tokenizer):
    from spatialvla_ros.sim.panda_env import COLOURS
    from spatialvla_ros.sim.panda_env import SHAPES
    from spatialvla_ros.sim.tasks import DIRECTIONS
    names = [f'{c} {s}' for c in COLOURS for s in SHAPES]
    texts = [f'reach the {n}' for n in names] + [f'put the {n} in the tray' for n in names]
    texts += [f'push the {n} {d}' for n in names for d in DIRECTIONS]
    texts += [f'put the {n} on the {c} cube' for n in names for c in COLOURS]
    ids, mask = tokenize_instructions(tokenizer, texts, 16)
    assert mask[:, -1].sum() == 0                       # nothing truncated at 16 tokens
    assert not (ids[mask] == tokenizer.unk_token_id).any()

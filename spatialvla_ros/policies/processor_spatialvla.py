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
Everything between a `RawObservation` (numpy, robot units) and the model's tensors.

Pre-processing: validate, images uint8 -> float [0, 1] (B, V, 3, H, W), points stacked (cameras
of different resolutions: each brought to the vision tower's input size), state normalised,
instruction tokenised. Post-processing: unnormalise the action chunk and refuse non-finite
values; joint limits are the safety filter's (policies/safety.py), applied by what commands the
robot. The statistics travel with the checkpoint (normalization.safetensors) so the policy
node, the bag evaluator and training share them.
"""

import numpy as np
from spatialvla_ros.models.modeling_encoder3d import resize_images
from spatialvla_ros.models.modeling_spatialvla import ModelBatch
from spatialvla_ros.models.modeling_spatialvla import ModelObservation
from spatialvla_ros.models.tokenizer import tokenize_instructions
from spatialvla_ros.perception import geometry
import torch


class SpatialVLAProcessor:
    """Turns raw observations into model inputs and model actions into robot commands."""

    def __init__(self, config, tokenizer, stats):
        if stats.state_dim != config.action.state_dim:
            raise ValueError(f'normalization.state_mean: got {stats.state_dim} dims, expected '
                             f'action.state_dim={config.action.state_dim}')
        if stats.action_dim != config.action.action_dim:
            raise ValueError(f'normalization.action_mean: got {stats.action_dim} dims, '
                             f'expected action.action_dim={config.action.action_dim}')
        self.config = config
        self.tokenizer = tokenizer
        self.stats = stats

    @property
    def num_cameras(self):
        return len(self.config.data.cameras)

    def _validate(self, raws):
        if isinstance(raws, (str, bytes)) or not hasattr(raws, '__len__') or len(raws) == 0:
            raise ValueError(f'observations: got {type(raws).__name__}, expected a non-empty '
                             'list of RawObservation')
        for i, raw in enumerate(raws):
            if not hasattr(raw, 'validate'):
                raise TypeError(f'observations[{i}]: got {type(raw).__name__}, '
                                'expected RawObservation')
            try:
                raw.validate(num_cameras=self.num_cameras, state_dim=self.config.action.state_dim)
            except ValueError as exc:
                raise ValueError(f'observations[{i}]: {exc}') from None
            if not isinstance(raw.instruction, str):
                raise ValueError(f'observations[{i}]: observation.instruction: got '
                                 f'{type(raw.instruction).__name__}, expected str')

    def _to_tower_size(self, raws):
        """
        Images (B, V, 3, S, S) float32 and points (B, V, S, S, 3) of cameras of mixed sizes.

        Each camera's image is resized as the encoder resizes any image (`resize_images`, to
        the tower's S x S input), so its patch features are the ones it would get alone; its
        xyz map is resampled to S x S by nearest neighbour with the same pixel-centre
        alignment, so every output pixel keeps a real base-frame point of the pixel it shows
        (no interpolation across depth edges, NaN never mixes with valid points).
        """
        size = self.config.vision.image_size
        images, points = [], []
        for raw in raws:
            for img, pts in zip(raw.images, raw.points):
                img = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]
                images.append(resize_images(img.to(torch.float32).div_(255.0), size)[0])
                points.append(geometry.resize_nearest(pts, size, size).astype(np.float32))
        b, v = len(raws), len(raws[0].images)
        return (torch.stack(images).reshape(b, v, 3, size, size),
                np.stack(points).reshape(b, v, size, size, 3))

    def observations_to_model(self, raws):
        """
        Validate and stack raw observations into a `ModelObservation` on the CPU.

        Arguments, by name:
            raws: list of B `RawObservation` with the same camera count. When every image of
                the batch has one size (H, W) they are stacked as they are; otherwise (cameras
                of different resolutions) every camera is brought to the vision tower's input
                size S x S (`_to_tower_size`) and H = W = S.

        Gives a ModelObservation with images (B, V, 3, H, W) float32 in [0, 1], points
        (B, V, H, W, 3) float32 (NaN kept: the encoder masks them), state (B, S) normalised,
        input_ids (B, L) and attention_mask (B, L) bool.
        """
        self._validate(raws)
        if len({img.shape for raw in raws for img in raw.images}) > 1:
            images, points = self._to_tower_size(raws)
        else:
            images = np.stack([np.stack(raw.images) for raw in raws])  # (B, V, H, W, 3) uint8
            # The layout change is a strided copy: on the uint8 bytes, 4x fewer than floats.
            images = torch.from_numpy(images).permute(0, 1, 4, 2, 3).contiguous()
            images = images.to(torch.float32).div_(255.0)              # (B, V, 3, H, W)
            points = np.stack([np.stack(raw.points) for raw in raws])
        points = points.astype(np.float32, copy=False)
        states = np.stack([np.asarray(raw.state, dtype=np.float32) for raw in raws])
        states = self.stats.normalize_state(states).astype(np.float32)
        input_ids, attention_mask = tokenize_instructions(
            self.tokenizer, [raw.instruction for raw in raws],
            self.config.language_model.max_text_tokens)
        return ModelObservation(
            images=images,
            points=torch.from_numpy(np.ascontiguousarray(points)),
            state=torch.from_numpy(states),
            input_ids=torch.as_tensor(input_ids, dtype=torch.long),
            attention_mask=torch.as_tensor(attention_mask).bool())

    def normalize_actions(self, actions, action_mask, index=0):
        """Check one chunk (H, A) in robot units and normalise it; padded steps become 0."""
        act = self.config.action
        actions = np.asarray(actions, dtype=np.float32)
        mask = np.asarray(action_mask)
        if actions.shape != (act.chunk_size, act.action_dim):
            raise ValueError(f'samples[{index}].actions: got shape {actions.shape}, expected '
                             f'({act.chunk_size}, {act.action_dim}) (chunk_size, action_dim)')
        if mask.shape != (act.chunk_size,) or mask.dtype != np.bool_:
            raise ValueError(f'samples[{index}].action_mask: got {mask.dtype} {mask.shape}, '
                             f'expected bool ({act.chunk_size},)')
        if not np.all(np.isfinite(actions[mask])):
            raise ValueError(f'samples[{index}].actions: contains NaN or inf in valid steps')
        out = self.stats.normalize_action(actions).astype(np.float32)
        out[~mask] = 0.0
        return out

    def collate(self, samples):
        """Training batch from (RawObservation, actions (H, A) robot units, mask (H,) bool)."""
        if len(samples) == 0:
            raise ValueError('samples: got an empty list, expected at least one sample')
        for i, sample in enumerate(samples):
            if not isinstance(sample, (tuple, list)) or len(sample) != 3:
                raise ValueError(f'samples[{i}]: expected a tuple (RawObservation, actions, '
                                 'action_mask)')
        obs = self.observations_to_model([s[0] for s in samples])
        actions = np.stack([self.normalize_actions(s[1], s[2], i) for i, s in enumerate(samples)])
        masks = np.stack([np.asarray(s[2], dtype=bool) for s in samples])
        return ModelBatch(observation=obs, actions=torch.from_numpy(actions),
                          action_mask=torch.from_numpy(masks))

    def actions_to_robot(self, actions):
        """
        Unnormalise a predicted chunk and refuse non-finite values.

        Arguments, by name:
            actions: (B, H, A) tensor (any device / dtype) or array, normalised units.

        Gives a (B, H, A) float32 numpy array in robot units, not clipped: the safety filter
        (policies/safety.py) holds the joint limits and counts what it clamps.
        """
        if isinstance(actions, torch.Tensor):
            actions = actions.detach().to('cpu', torch.float32).numpy()
        actions = np.asarray(actions, dtype=np.float32)
        if actions.ndim != 3 or actions.shape[-1] != self.config.action.action_dim:
            raise ValueError(f'actions: got shape {actions.shape}, expected '
                             f'(B, H, {self.config.action.action_dim})')
        if not np.all(np.isfinite(actions)):
            bad = np.argwhere(~np.isfinite(actions))[0].tolist()
            raise ValueError(f'actions: model produced NaN or inf (first at index {bad}); '
                             'refusing to command the robot')
        return self.stats.unnormalize_action(actions).astype(np.float32)


__all__ = ['SpatialVLAProcessor']

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
Policy wrapper: RawObservation in, robot-unit action chunk out (no transport, no ROS).

The policy node, the bag evaluator and the simulator loop all drive this one object, so they
share the same processor (normalisation, tokenisation, non-finite refusal) and the same sampling.
"""

import time

import numpy as np
from spatialvla_ros.models.checkpoint import load_checkpoint
from spatialvla_ros.models.modeling_spatialvla import ModelObservation
from spatialvla_ros.policies.configuration_policy import PolicyConfig
from spatialvla_ros.policies.processor_spatialvla import SpatialVLAProcessor
import torch


def compile_model(model, backend='inductor'):
    """
    Compile the denoising step of `model` in place with torch.compile (inference only).

    The step (suffix embedding, expert decode against the cached prefix, action head) runs
    num_steps times per chunk on tiny tensors, so it is dominated by per-operator overhead,
    which compilation removes. The prefix (vision tower, VLM) is left eager: its time is in
    large matrix products that compilation does not speed up on the CPU (bench/peer_lerobot.py
    measures both). Parameter names and checkpoints are unchanged. Shapes are static: a new
    batch size, chunk or prefix length compiles again (run `SpatialVLAPolicy.warmup` first).
    """
    opts = {'backend': backend, 'dynamic': False}
    model.suffix_embedding.compile(**opts)
    model.action_head.compile(**opts)
    model.backbone.decode_suffix = torch.compile(model.backbone.decode_suffix, **opts)
    return model


class SpatialVLAPolicy:
    """
    Model + processor: raw observations in, action chunks in robot units out.

    Arguments, by name:
        model: SpatialVLAModel (eval mode is set here).
        processor: SpatialVLAProcessor sharing the model's config.
        num_steps: Euler steps per chunk (default: config.flow.num_steps).
        compile: torch.compile the denoising step (see `compile_model`); call `warmup` before
            serving so that compilation never lands on a live observation.
    """

    def __init__(self, model, processor, num_steps=None, compile=False):  # noqa: A002
        self.model = model.eval()
        self.processor = processor
        self.num_steps = num_steps
        self.compiled = bool(compile)
        if self.compiled:
            compile_model(self.model)

    @classmethod
    def from_pretrained(cls, directory, device='cpu', dtype=None, num_steps=None,
                        compile=False):  # noqa: A002
        """Load a checkpoint directory (see models.checkpoint) onto `device`."""
        model, config, stats, tokenizer = load_checkpoint(directory, device=device, dtype=dtype,
                                                          config_class=PolicyConfig)
        processor = SpatialVLAProcessor(config, tokenizer, stats)
        return cls(model, processor, num_steps=num_steps, compile=compile)

    @property
    def config(self):
        return self.model.config

    def _generator(self, generator, seed):
        if generator is not None and seed is not None:
            raise ValueError('give either generator or seed, not both')
        if isinstance(generator, int):  # convenience: an int is a seed
            generator, seed = None, generator
        if seed is not None:
            generator = torch.Generator(device=self.model.device).manual_seed(int(seed))
        return generator

    def predict_chunks(self, raw_observations, generator=None, seed=None, prefix=None):
        """
        Batched chunks (B, H, A) in robot units (not clipped); raises on non-finite output.

        The initial noise of sample b is row b of one (B, H, A) draw, so a sample's chunk
        depends on its position in the batch for a given seed. `prefix` (an
        `execution.ChunkPrefix`, robot units) makes every chunk a Real-Time Chunking
        continuation of it: sampled with guided inpainting towards prefix.actions under
        prefix.weights, then its first prefix.committed actions replaced by the prefix's, so
        they are exactly what the robot is executing.
        """
        observation = self.processor.observations_to_model(list(raw_observations))
        guidance = None
        if prefix is not None:
            target = self.processor.stats.normalize_action(
                np.asarray(prefix.actions, dtype=np.float32)).astype(np.float32)
            guidance = (torch.from_numpy(target), torch.as_tensor(prefix.weights),
                        prefix.max_guidance_weight)
        actions = self.model.sample_actions(observation, num_steps=self.num_steps,
                                            generator=self._generator(generator, seed),
                                            guidance=guidance)
        chunks = self.processor.actions_to_robot(actions)
        if prefix is not None and prefix.committed > 0:
            chunks[:, :prefix.committed] = prefix.actions[:prefix.committed]
        return chunks

    def predict_chunk(self, raw_observation, generator=None, seed=None, prefix=None):
        """One chunk (H, A) in robot units for one observation (see `predict_chunks`)."""
        return self.predict_chunks([raw_observation], generator=generator, seed=seed,
                                   prefix=prefix)[0]

    def warmup(self, batch_size=1, image_size=None):
        """
        Run one dummy chunk (compiles a compiled policy); give its duration [s].

        The dummy observation has the shapes of a live one (views, text length, chunk), so a
        compiled step is not compiled again on the first real observation of that batch size.
        """
        cfg = self.config
        size = image_size or cfg.vision.image_size
        views = len(cfg.data.cameras) or 1
        device, dtype = self.model.device, self.model.dtype
        lm = cfg.language_model
        ids = torch.zeros((batch_size, lm.max_text_tokens), dtype=torch.long, device=device)
        u = torch.linspace(0.0, 1.0, size, device=device)
        points = torch.stack(torch.broadcast_tensors(u[None, :], u[:, None],
                                                     torch.zeros(()).to(device)), dim=-1)
        obs = ModelObservation(
            images=torch.full((batch_size, views, 3, size, size), 0.5, device=device),
            points=points.expand(batch_size, views, size, size, 3),
            state=torch.zeros((batch_size, cfg.action.state_dim), device=device),
            input_ids=ids, attention_mask=torch.ones_like(ids, dtype=torch.bool))
        start = time.perf_counter()
        self.model.sample_actions(obs.to(device, dtype), num_steps=self.num_steps,
                                  generator=torch.Generator(device=device).manual_seed(0))
        return time.perf_counter() - start


__all__ = ['SpatialVLAPolicy', 'compile_model']

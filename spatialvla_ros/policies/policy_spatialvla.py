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
share the same processor (normalisation, tokenisation, clipping) and the same sampling.
"""

import collections

import numpy as np
from spatialvla_ros.models.checkpoint import load_checkpoint
from spatialvla_ros.policies.configuration_policy import PolicyConfig
from spatialvla_ros.policies.processor_spatialvla import SpatialVLAProcessor
import torch


class SpatialVLAPolicy:
    """
    Model + processor + lerobot-style action queue.

    Arguments, by name:
        model: SpatialVLAModel (eval mode is set here).
        processor: SpatialVLAProcessor sharing the model's config.
        n_action_steps: actions of each chunk executed before a new chunk is predicted
            (default: the whole chunk).
        num_steps: Euler steps per chunk (default: config.flow.num_steps).
    """

    def __init__(self, model, processor, n_action_steps=None, num_steps=None):
        chunk = model.config.action.chunk_size
        n_action_steps = chunk if n_action_steps is None else int(n_action_steps)
        if not 1 <= n_action_steps <= chunk:
            raise ValueError(f'n_action_steps: got {n_action_steps}, expected 1..chunk_size='
                             f'{chunk}')
        self.model = model.eval()
        self.processor = processor
        self.n_action_steps = n_action_steps
        self.num_steps = num_steps
        self._queue = collections.deque()

    @classmethod
    def from_pretrained(cls, directory, device='cpu', dtype=None, n_action_steps=None,
                        num_steps=None):
        """Load a checkpoint directory (see models.checkpoint) onto `device`."""
        model, config, stats, tokenizer = load_checkpoint(directory, device=device, dtype=dtype,
                                                          config_class=PolicyConfig)
        processor = SpatialVLAProcessor(config, tokenizer, stats)
        return cls(model, processor, n_action_steps=n_action_steps, num_steps=num_steps)

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

    def predict_chunks(self, raw_observations, generator=None, seed=None):
        """
        Batched chunks (B, H, A) in robot units, clipped; raises on non-finite output.

        The initial noise of sample b is row b of one (B, H, A) draw, so a sample's chunk
        depends on its position in the batch for a given seed.
        """
        observation = self.processor.observations_to_model(list(raw_observations))
        actions = self.model.sample_actions(observation, num_steps=self.num_steps,
                                            generator=self._generator(generator, seed))
        return self.processor.actions_to_robot(actions)

    def predict_chunk(self, raw_observation, generator=None, seed=None):
        """One chunk (H, A) in robot units for one observation."""
        return self.predict_chunks([raw_observation], generator=generator, seed=seed)[0]

    def reset(self):
        """Forget queued actions (new episode or new instruction)."""
        self._queue.clear()

    @property
    def queued_actions(self):
        return len(self._queue)

    def select_action(self, raw_observation, generator=None, seed=None):
        """Next action (A,): predicts a new chunk only when the queue is empty."""
        if not self._queue:
            chunk = self.predict_chunk(raw_observation, generator=generator, seed=seed)
            self._queue.extend(np.array(chunk[:self.n_action_steps], copy=True))
        return self._queue.popleft()


__all__ = ['SpatialVLAPolicy']

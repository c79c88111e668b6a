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

"""Learning-rate schedule: linear warm-up, then cosine decay; its state is plain JSON."""

import math


def warmup_cosine_factor(step, warmup_steps, total_steps, min_ratio=0.0):
    """Multiplier of the base learning rate for optimiser update number `step` (0-based).

    Warm-up ramps (step + 1) / warmup_steps so the first update is not taken at lr 0; the
    cosine then runs from 1 at the end of warm-up to `min_ratio` at `total_steps`.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = total_steps - warmup_steps
    if span <= 0:
        return 1.0
    progress = min(1.0, max(0.0, (step - warmup_steps) / span))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupCosineSchedule:
    """Sets each param group's lr to base_lr * factor(step) before every optimiser step.

    Unlike torch's LambdaLR its state holds no callables, so it is saved as JSON (no pickle).
    """

    def __init__(self, optimizer, warmup_steps, total_steps, min_ratio=0.0):
        if total_steps < 1:
            raise ValueError(f'total_steps: got {total_steps}, expected >= 1')
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(f'warmup_steps: got {warmup_steps}, expected 0..{total_steps}')
        self.optimizer = optimizer
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.min_ratio = float(min_ratio)
        self.base_lrs = [float(g['lr']) for g in optimizer.param_groups]
        self.step_count = 0
        self._apply()

    def factor(self):
        return warmup_cosine_factor(self.step_count, self.warmup_steps, self.total_steps,
                                    self.min_ratio)

    def _apply(self):
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group['lr'] = base * self.factor()

    def step(self):
        """Advance after an optimiser step: the next update uses the next step's lr."""
        self.step_count += 1
        self._apply()

    def state_dict(self):
        return {'step_count': self.step_count, 'base_lrs': list(self.base_lrs),
                'warmup_steps': self.warmup_steps, 'total_steps': self.total_steps,
                'min_ratio': self.min_ratio}

    def load_state_dict(self, state):
        """Continue a saved schedule; this run's warm-up and total steps win.

        Resumed with the same train config, the learning rate continues exactly. Resumed
        with other steps (a run extended from 200 to 300 steps) or another warm-up, the
        remaining updates take the rate of a run planned with this run's warm-up and total
        from the start: the cosine is laid out anew over the new total, not re-stretched.
        """
        step = int(state['step_count'])
        if step > self.total_steps:
            raise ValueError(f'steps: got {self.total_steps}, but the checkpoint is at step '
                             f'{step}; expected >= {step}')
        self.base_lrs = [float(v) for v in state['base_lrs']]
        self.min_ratio = float(state['min_ratio'])
        self.step_count = step
        self._apply()


__all__ = ['WarmupCosineSchedule', 'warmup_cosine_factor']

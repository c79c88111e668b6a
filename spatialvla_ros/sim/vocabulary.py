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

"""The words of the simulator's instructions, and a tokenizer over them."""

from spatialvla_ros.models.tokenizer import build_word_tokenizer

# Words of the simulator's instructions (sim/tasks.py: "reach the red cube", "push the blue
# sphere left", "put the green cube in the tray", ...) and a few more for hand-typed ones.
DEMO_WORDS = (
    'reach', 'push', 'pick', 'place', 'put', 'move', 'lift', 'grasp', 'open', 'close',
    'stack', 'touch', 'go', 'to', 'toward', 'towards', 'up', 'down', 'the', 'a', 'an', 'it',
    'and', 'then', 'on', 'onto', 'in', 'into', 'of', 'at', 'from', 'with', 'gripper',
    'red', 'green', 'blue', 'yellow', 'white', 'black', 'orange', 'purple',
    'cube', 'sphere', 'block', 'box', 'tray', 'duck', 'lego', 'ball', 'object', 'target',
    'table',
    'left', 'right', 'forward', 'backward', 'front', 'back', 'behind', 'near', 'far',
    'above', 'below', 'top', 'center', 'middle', 'side', 'next', 'small', 'big', 'large',
)


def build_demo_tokenizer(save_dir):
    """Word-level tokenizer over the simulator's instruction vocabulary."""
    return build_word_tokenizer(list(DEMO_WORDS), save_dir)


__all__ = ['DEMO_WORDS', 'build_demo_tokenizer']

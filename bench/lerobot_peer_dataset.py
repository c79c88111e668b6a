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
LeRobot itself writes (or reads) a small v3 dataset: the compatibility witness of the reader.

LeRobot cannot share this project's venv (0.5+ needs Python >= 3.12, the ROS 2 wheels are
CPython 3.11; 0.4.x, the last for 3.11, pins torch < 2.11, av < 16, huggingface-hub < 0.36),
so it runs in its own venv, created on first use under <repo>/.lerobot-venv from the package
registry (LeRobot 0.4.4 without its dependencies plus what its dataset modules import; torch is
the local CPU build). The worker part runs inside that venv:

    python bench/lerobot_peer_dataset.py write OUT   # LeRobot writes OUT + OUT/expected.json
    python bench/lerobot_peer_dataset.py read ROOT   # LeRobot reads ROOT, prints JSON per frame

`write` records 2 episodes (5 and 4 frames, 10 fps) of a 24x32 video camera, a float32 state,
an action, a 2-D float32 depth map and two tasks, with values that are functions of
(episode, frame), and writes them as expected.json for the test to compare.
"""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_VENV = os.path.join(REPO, '.lerobot-venv')
LEROBOT_VERSION = '0.4.4'
# LeRobot without its dependencies (wandb, rerun, gym, opencv, ... which its dataset code does
# not need), plus what lerobot.datasets imports; torch is the local CPU build.
PEER_PACKAGES = (
    'torch==2.13.0', 'torchvision==0.28.0', 'datasets>=4.0.0,<5', 'huggingface-hub>=0.34.2,<0.36',
    'av>=15,<16', 'jsonlines', 'packaging<26', 'draccus==0.10.0', 'deepdiff>=7.0.1,<9',
    'termcolor', 'einops', 'imageio<3', 'pandas', 'pyarrow', 'accelerate>=1.10.0,<2')
EPISODES = (5, 4)
SIZE = (24, 32)           # height, width
TASKS = ('pick up the red cube', 'push the blue cube')


def ensure_peer_venv(path=PEER_VENV):
    """Create the LeRobot venv when it is missing (a few minutes, once); return its python."""
    python = os.path.join(path, 'bin', 'python')
    probe = [python, '-c', f'import lerobot; assert lerobot.__version__ == "{LEROBOT_VERSION}"']
    if os.path.exists(python) and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f'creating the LeRobot venv at {path} (LeRobot {LEROBOT_VERSION}) ...',
          file=sys.stderr, flush=True)
    base = getattr(sys, '_base_executable', sys.executable)
    subprocess.run([base, '-m', 'venv', path], check=True)
    with open(os.path.join(path, '.gitignore'), 'w', encoding='utf-8') as f:
        f.write('*\n')  # never committed, whatever the repository's .gitignore says
    pip = [python, '-m', 'pip', 'install', '-q']
    subprocess.run(pip + ['--no-deps', f'lerobot=={LEROBOT_VERSION}'], check=True)
    subprocess.run(pip + list(PEER_PACKAGES), check=True)
    return python


def frame_values(episode, frame):
    """Return the values LeRobot is given for (episode, frame): plain lists, exact in float32."""
    h, w = SIZE
    base = 20 * episode + 4 * frame
    # Smooth gradients (no wrap-around edges): what a camera sees, and what codecs are made for.
    image = [[[base + 2 * x + 3 * y + 40 * c for c in range(3)] for x in range(w)]
             for y in range(h)]
    state = [episode + frame / 8.0 + j / 64.0 for j in range(8)]
    action = [-episode - frame / 4.0 - j / 32.0 for j in range(8)]
    depth = [[0.5 + episode / 4.0 + frame / 16.0 + (y * w + x) / 4096.0 for x in range(w)]
             for y in range(h)]
    return {'image': image, 'state': state, 'action': action, 'depth': depth,
            'task': TASKS[episode % len(TASKS)]}


def write(out):
    import numpy as np
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    h, w = SIZE
    features = {
        'observation.images.camera': {'dtype': 'video', 'shape': (h, w, 3),
                                      'names': ['height', 'width', 'channels']},
        'observation.state': {'dtype': 'float32', 'shape': (8,),
                              'names': [f'joint{j}' for j in range(8)]},
        'action': {'dtype': 'float32', 'shape': (8,), 'names': [f'joint{j}' for j in range(8)]},
        'observation.depth.camera': {'dtype': 'float32', 'shape': (h, w),
                                     'names': ['height', 'width']},
    }
    dataset = LeRobotDataset.create('local/peer', fps=10, features=features, root=out,
                                    use_videos=True, image_writer_threads=0)
    expected = []
    for e, length in enumerate(EPISODES):
        frames = []
        for t in range(length):
            v = frame_values(e, t)
            dataset.add_frame({
                'observation.images.camera': np.asarray(v['image'], np.uint8),
                'observation.state': np.asarray(v['state'], np.float32),
                'action': np.asarray(v['action'], np.float32),
                'observation.depth.camera': np.asarray(v['depth'], np.float32),
                'task': v['task']})
            frames.append(v)
        dataset.save_episode()
        expected.append(frames)
    dataset.finalize()
    with open(os.path.join(out, 'expected.json'), 'w', encoding='utf-8') as f:
        json.dump({'lerobot': LEROBOT_VERSION, 'episodes': expected}, f)


_LIBS = []


def _torchvision_without_ops():
    """Let torchvision import without its compiled ops (LeRobot's datasets never call them).

    The registry's torchvision wheels are CUDA builds whose ops library cannot load next to
    the local CPU torch; torchvision then registers fake kernels for two ops it never defined
    and fails to import. Defining the two schemas first lets the Python part import.
    """
    import torch
    lib = torch.library.Library('torchvision', 'DEF')
    for name in ('nms', 'qnms'):
        lib.define(f'{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')
    _LIBS.append(lib)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in ('write', 'read'):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        import lerobot  # noqa: F401
        _torchvision_without_ops()
    except ImportError:
        # Not in the LeRobot venv: create it (once) and run there.
        python = ensure_peer_venv()
        return subprocess.run([python, os.path.abspath(__file__)] + argv).returncode
    if argv[0] == 'write':
        write(argv[1])
    return 0


if __name__ == '__main__':
    sys.exit(main())

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
    python bench/lerobot_peer_dataset.py read ROOT   # LeRobotDataset(ROOT): JSON per frame

`write` records 2 episodes (5 and 4 frames, 10 fps) of a 24x32 video camera, a float32 state,
an action, a 2-D float32 depth map and two tasks, with values that are functions of
(episode, frame), and writes them as expected.json for the test to compare.
"""

import json
import os
import subprocess
import sys

from peer_lerobot import ensure_peer_venv

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
_DECODED = {}          # video path -> [(time, frame)], decoded once (the files are tiny)


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


def _pyav_decoder(video_path, timestamps, tolerance_s, backend=None):
    """Decode frames as LeRobot's decode_video_frames does, with PyAV.

    Same contract: (N, 3, H, W) float32 in [0, 1], each frame within tolerance_s of its query.
    LeRobot 0.4.4 decodes with torchcodec or torchvision.io.VideoReader, neither of which
    loads against the local CPU torch 2.13.
    """
    import av
    import torch
    frames = []
    decoded = _DECODED.get(str(video_path))
    if decoded is None:
        with av.open(str(video_path)) as container:
            stream = container.streams.video[0]
            decoded = _DECODED[str(video_path)] = [
                (float(f.pts * stream.time_base), f.to_ndarray(format='rgb24'))
                for f in container.decode(stream)]
    for t in timestamps:
        time, image = min(decoded, key=lambda d: abs(d[0] - t))
        if abs(time - t) > tolerance_s:
            raise ValueError(f'{video_path}: no frame within {tolerance_s} s of {t} s')
        frames.append(torch.from_numpy(image).permute(2, 0, 1).float() / 255.0)
    return torch.stack(frames)


def read(root):
    """Print what LeRobot's own LeRobotDataset hands out for every frame of `root`, as JSON."""
    from lerobot.datasets import lerobot_dataset
    lerobot_dataset.decode_video_frames = _pyav_decoder
    dataset = lerobot_dataset.LeRobotDataset('local/dataset', root=root)
    frames = []
    for i in range(len(dataset)):
        item = dataset[i]
        frames.append({k: (v.tolist() if hasattr(v, 'tolist') else v) for k, v in item.items()})
    for frame in frames:
        for key in dataset.meta.video_keys:
            frame[key] = [[[round(c * 255) for c in row] for row in plane]
                          for plane in frame[key]]
    json.dump({'lerobot': LEROBOT_VERSION, 'num_episodes': dataset.num_episodes,
               'video_keys': dataset.meta.video_keys, 'frames': frames}, sys.stdout)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in ('write', 'read'):
        print(__doc__, file=sys.stderr)
        return 2
    # Local files only: without this the hub client waits on the network (minutes offline).
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
    try:
        import lerobot  # noqa: F401
        _torchvision_without_ops()
    except ImportError:
        # Not in the LeRobot venv: create it (once) and run there.
        python = ensure_peer_venv(PEER_VENV, LEROBOT_VERSION, PEER_PACKAGES)
        return subprocess.run([python, os.path.abspath(__file__)] + argv).returncode
    if argv[0] == 'write':
        write(argv[1])
    else:
        read(argv[1])
    return 0


if __name__ == '__main__':
    sys.exit(main())

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

"""Live-path preprocessing latency: one RGB-D frame + camera info + joint state -> model inputs.

Times what the policy node does per frame outside the model, on one core (torch 1 thread,
the node's allocator setting `policy_runtime.reuse_freed_memory`): decode the colour image,
the depth image and the camera info (rclpy messages, as DDS delivers them), the joint state,
assemble the observation (unprojection to base-frame xyz) and the processor's tensors
(`observations_to_model`). Prints p50 / p95 per stage and in total. Run it pinned to one core:

    taskset -c 0 python bench/preprocess_latency.py

    python bench/preprocess_latency.py [--width 640] [--height 480] [--frames 50]
        [--depth-encoding 16UC1] [--checkpoint checkpoints/default]
"""

import argparse
import os
import time

import numpy as np
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import Image
from sensor_msgs.msg import JointState
from spatialvla_ros.nodes.policy_runtime import reuse_freed_memory
from spatialvla_ros.perception import conversions as cv
from spatialvla_ros.perception.messages import make_message
from spatialvla_ros.perception.observation_builder import ObservationBuilder
from spatialvla_ros.policies.policy_spatialvla import SpatialVLAPolicy
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def frame_messages(config, width, height, depth_encoding, i, rng):
    """{key: rclpy message} of one synthetic frame of camera 0 (a wall with a box)."""
    cam = config.data.cameras[0]
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    depth = np.full((height, width), 1.2, np.float32)
    depth[height // 4:height // 2, width // 3:width // 2] = 0.8 + 0.01 * (i % 10)
    depth[::17, ::13] = 0.0  # holes, as real sensors give
    f = 0.8 * width
    K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]])
    stamp = 1_700_000_000_000_000_000 + i * 33_000_000
    return {
        f'{cam.name}/color': make_message(Image, cv.rgb_to_image_fields(rgb, 'rgb8', stamp)),
        f'{cam.name}/depth': make_message(Image, cv.depth_to_image_fields(
            depth, depth_encoding, stamp)),
        f'{cam.name}/camera_info': make_message(CameraInfo, cv.camera_info_fields(
            K, width, height, stamp)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--checkpoint', default=os.path.join(REPO, 'checkpoints', 'default'))
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--frames', type=int, default=50)
    parser.add_argument('--depth-encoding', default='16UC1', choices=('16UC1', '32FC1'))
    args = parser.parse_args()
    torch.set_num_threads(1)
    reuse_freed_memory()  # as the policy node does at configure
    policy = SpatialVLAPolicy.from_pretrained(args.checkpoint)
    config, processor = policy.config, policy.processor
    if len(config.data.cameras) != 1 or not config.data.cameras[0].depth_topic:
        raise SystemExit(f'--checkpoint {args.checkpoint}: expected one RGB-D camera')
    act = config.action
    builder = ObservationBuilder(config.data, config.encoder3d, act.names, act.state_dim)
    rng = np.random.default_rng(0)
    names = list(act.names) or [f'joint{j}' for j in range(act.state_dim)]
    joints = make_message(JointState, {'name': names[::-1], 'position': np.linspace(
        -1, 1, len(names))})
    stages = {'decode': [], 'state': [], 'assemble': [], 'processor': [], 'total': []}
    for i in range(args.frames + 5):
        msgs = frame_messages(config, args.width, args.height, args.depth_encoding, i, rng)
        t0 = time.perf_counter()
        arrays = {key: builder.decode(key, msg) for key, msg in msgs.items()}
        t1 = time.perf_counter()
        state = builder.state(joints)
        t2 = time.perf_counter()
        obs = builder.assemble(arrays, state, 'pick up the red cube', 0)
        t3 = time.perf_counter()
        processor.observations_to_model([obs])
        t4 = time.perf_counter()
        if i >= 5:  # warm-up frames are not counted
            for key, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
                stages[key].append(dt * 1e3)
    print(f'preprocessing of one {args.width}x{args.height} RGB-D frame ({args.depth_encoding}) '
          f'+ camera info + joint state, torch threads {torch.get_num_threads()}, '
          f'{args.frames} frames [ms]:')
    for key, values in stages.items():
        print(f'  {key:10s} p50 {np.percentile(values, 50):7.2f}  '
              f'p95 {np.percentile(values, 95):7.2f}')


if __name__ == '__main__':
    main()

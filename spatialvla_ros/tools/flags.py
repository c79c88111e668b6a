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


"""Command-line flags shared by the commands that run the closed loop, defined once.

spatialvla_closed_loop, spatialvla_demo and spatialvla_compare take the same closed-loop flags
with the same meaning: 0 or '' means "what the checkpoint's recipe.json says" and, where the
checkpoint says nothing, the simulator's default (128 px, 60 deg, a new chunk for every camera
frame, the reach task). ROS-free, so generate_demos can share the task list parser.
"""

import argparse
import math

import numpy as np

from spatialvla_ros.evaluation.closed_loop import ClosedLoopOptions
from spatialvla_ros.evaluation.closed_loop import DEFAULT_FOV_DEG
from spatialvla_ros.evaluation.closed_loop import DEFAULT_IMAGE_SIZE
from spatialvla_ros.evaluation.closed_loop import HELD_OUT_SEED_START
from spatialvla_ros.evaluation.closed_loop import recipe_camera
from spatialvla_ros.perception.geometry import rotation_from_rpy
from spatialvla_ros.perception.geometry import rpy_from_rotation
from spatialvla_ros.policies.execution import EXECUTION_MODES
from spatialvla_ros.sim.camera import matrix_to_quat
from spatialvla_ros.sim.camera import quat_to_matrix
from spatialvla_ros.sim.constants import DEFAULT_CAMERA_QUAT
from spatialvla_ros.sim.constants import DEFAULT_CAMERA_XYZ
from spatialvla_ros.sim.constants import TASKS

# The default mount's orientation as roll, pitch, yaw [deg] (6 digits, as --help shows it).
DEFAULT_CAMERA_RPY_DEG = tuple(round(math.degrees(a), 6) + 0.0
                               for a in rpy_from_rotation(quat_to_matrix(DEFAULT_CAMERA_QUAT)))


def task_list(text):
    """Parse a comma list of simulator tasks (an argparse type)."""
    names = tuple(t.strip() for t in text.split(',') if t.strip())
    bad = [t for t in names if t not in TASKS]
    if bad:
        raise argparse.ArgumentTypeError(f'got {text!r}, expected a comma list of {TASKS}')
    return names


def non_negative(text):
    """Parse a number >= 0 (an argparse type)."""
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f'got {text}, expected a number >= 0')
    return value


def camera_quat_from_rpy_deg(rpy_deg):
    """(x, y, z, w) of a mount's roll, pitch, yaw [deg] about the base axes (URDF order)."""
    if tuple(rpy_deg) == DEFAULT_CAMERA_RPY_DEG:  # the default mount exactly, not a round trip
        return DEFAULT_CAMERA_QUAT
    return matrix_to_quat(rotation_from_rpy(*np.radians(np.asarray(rpy_deg, dtype=np.float64))))


def add_camera_jitter_arguments(parser, nominal='the nominal mount'):
    """Add --camera-jitter-cm / --camera-jitter-deg (a mount per episode seed) to `parser`."""
    parser.add_argument('--camera-jitter-cm', type=non_negative, default=0.0,
                        help=f'per episode, mount the camera at a random offset of up to this '
                             f'per axis from {nominal}, drawn from the episode seed (other seeds: '
                             'other mounts) [cm] (default: %(default)s)')
    parser.add_argument('--camera-jitter-deg', type=non_negative, default=0.0,
                        help='and turn it by up to this about each base axis, about the point '
                             'the default camera looks at (the workspace stays in view) [deg] '
                             '(default: %(default)s)')
    return parser


def _at_least(minimum):
    def parse(text):
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f'got {value}, expected >= {minimum}')
        return value
    return parse


def add_closed_loop_arguments(parser, episodes=10, out_dir='closed_loop_report',
                              min_episodes=1, lockstep=False):
    """Add the closed-loop flags, with one meaning in every command that runs the loop.

    `episodes`, `out_dir`, `min_episodes` and `lockstep` are the command's defaults.
    """
    group = parser.add_argument_group('closed loop')
    group.add_argument('--tasks', type=task_list, default=(),
                       help=f"comma list among {','.join(TASKS)} (default: the checkpoint's "
                            'tasks from its recipe.json, else reach)')
    group.add_argument('--episodes', type=_at_least(min_episodes), default=episodes,
                       help='episodes per task (default: %(default)s)')
    group.add_argument('--seed-start', type=int, default=HELD_OUT_SEED_START,
                       help='seed of the first episode of every task; episode i uses '
                            'seed-start + i (default: the held-out range, %(default)s)')
    group.add_argument('--max-steps', type=_at_least(0), default=0,
                       help='control ticks per episode (0: the task default)')
    group.add_argument('--execute-steps', type=_at_least(0), default=0,
                       help="actions executed per chunk before a new one (0: the checkpoint's "
                            'recipe, else a new chunk for every camera frame)')
    group.add_argument('--image-size', type=_at_least(0), default=0,
                       help="simulator camera size [px] (0: the checkpoint's recipe, else "
                            f'{DEFAULT_IMAGE_SIZE})')
    group.add_argument('--fov-deg', type=float, default=0.0,
                       help="simulator camera field of view [deg] (0: the checkpoint's recipe, "
                            f'else {DEFAULT_FOV_DEG:g})')
    group.add_argument('--camera-xyz', type=float, nargs=3, metavar=('X', 'Y', 'Z'),
                       default=DEFAULT_CAMERA_XYZ,
                       help='simulator camera mount: position of the optical frame in the base '
                            'frame [m] for the whole run; the policy node learns it from the '
                            'mount topic only (default: %(default)s)')
    group.add_argument('--camera-rpy-deg', type=float, nargs=3, metavar=('R', 'P', 'Y'),
                       default=DEFAULT_CAMERA_RPY_DEG,
                       help='and its orientation: roll, pitch, yaw [deg] about the base axes '
                            '(x, then y, then z; optical frame z forward, x right, y down) '
                            '(default: %(default)s)')
    add_camera_jitter_arguments(group, '--camera-xyz')
    group.add_argument('--policy-seed', type=int, default=0,
                       help="noise seed of the policy's sampler (-1: fresh noise)")
    group.add_argument('--lockstep', action=argparse.BooleanOptionalAction, default=lockstep,
                       help='simulated time advances only when the policy has answered the '
                            'current observation (/clock, use_sim_time): the same outcomes on '
                            'every run and under any CPU load, and the same as --in-process; '
                            '--no-lockstep: real time, to measure what latency does '
                            '(default: %(default)s)')
    group.add_argument('--execution', choices=EXECUTION_MODES, default='async',
                       help="the policy node's execution mode: async (the next chunk is "
                            'computed while the arm executes the current one), sync (the arm '
                            'holds while the policy thinks; --execute-steps actions per chunk) '
                            'or rtc (async with Real-Time Chunking) (default: %(default)s)')
    group.add_argument('--inject-latency-ms', type=float, default=0.0,
                       help='delay added to every inference of the policy node [ms], so a '
                            'fast checkpoint stands in for a slow model (default: %(default)s)')
    group.add_argument('--out-dir', default=out_dir,
                       help='report, plots and node logs (default: %(default)s)')
    return parser


def options_from_args(ns, checkpoint_dir=''):
    """Return ClosedLoopOptions from the shared flags; 0 / '' from the checkpoint's recipe."""
    recipe = recipe_camera(checkpoint_dir)
    return ClosedLoopOptions(
        tasks=tuple(ns.tasks) or recipe['tasks'], episodes=max(ns.episodes, 0),
        seed_start=ns.seed_start, max_steps=ns.max_steps,
        execute_steps=ns.execute_steps or recipe['execute_steps'],
        image_size=ns.image_size or recipe['image_size'],
        fov_deg=ns.fov_deg or recipe['fov_deg'], policy_seed=ns.policy_seed,
        lockstep=bool(ns.lockstep), side_camera=recipe['side_camera'],
        camera_xyz=tuple(float(v) for v in ns.camera_xyz),
        camera_quat=camera_quat_from_rpy_deg(ns.camera_rpy_deg),
        camera_jitter_cm=ns.camera_jitter_cm, camera_jitter_deg=ns.camera_jitter_deg,
        execution=ns.execution,
        inject_latency_ms=_non_negative(ns.inject_latency_ms, '--inject-latency-ms'))


def _non_negative(value, flag):
    if not value >= 0:
        raise ValueError(f'{flag}: got {value}, expected a number >= 0')
    return float(value)


__all__ = ['DEFAULT_CAMERA_RPY_DEG', 'add_camera_jitter_arguments', 'add_closed_loop_arguments',
           'camera_quat_from_rpy_deg', 'non_negative', 'options_from_args', 'task_list']

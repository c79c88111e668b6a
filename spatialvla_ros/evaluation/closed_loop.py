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


"""Closed-loop evaluation without ROS: what an episode is, its outcome and the per-task summary.

Shared by the DDS loop (`nodes.closed_loop_client` driving the simulator and policy node
processes, started by `tools.closed_loop`) and by the in-process runner (`evaluation.in_process`),
so both count successes, ticks and time to success the same way.

Held-out seeds: demonstrations are generated with seeds 0, 1, 2, ... (`generate_demos
--seed-start 0`), so closed-loop episodes use seeds from HELD_OUT_SEED_START = 1,000,000 on
(episode i of every task: seed 1,000,000 + i). A seed fixes the object layout, the target and
the instruction (`sim.tasks.sample_episode`), so these scenes never appear in training.

Lockstep (`ClosedLoopOptions.lockstep`): the simulator advances its time only when the policy
has answered the current observation (`nodes.sim_node`), publishes it on /clock, and the policy
node runs on that time (`use_sim_time`). Each chunk then sees exactly the observation the
in-process runner gives it, and with a fixed policy seed the same noise, so a checkpoint and a
seed list give the same outcomes on every run, under any CPU load, in both runners.

Camera mount: the simulator's camera sits at `camera_xyz` / `camera_quat` (base frame) for the
whole run, or, with `camera_jitter_cm` / `camera_jitter_deg`, at a mount drawn per episode
from its seed around it (`sim.camera.CameraSpec.jittered`): held-out seeds give held-out
mounts. The policy learns the mount only from the simulator's mount topic, as on a robot
(`require_camera_pose`), never from a parameter.
"""

from dataclasses import dataclass
from dataclasses import field
import json
import os

import numpy as np

from spatialvla_ros.evaluation.execution_metrics import execution_metrics
from spatialvla_ros.evaluation.replay import distribution
from spatialvla_ros.policies.configuration_policy import PolicyConfig
from spatialvla_ros.sim.constants import DEFAULT_CAMERA_QUAT
from spatialvla_ros.sim.constants import DEFAULT_CAMERA_XYZ
from spatialvla_ros.sim.messages import SimTopics

HELD_OUT_SEED_START = 1_000_000
DEFAULT_IMAGE_SIZE = 128           # the simulator's camera [px] when a checkpoint names none
DEFAULT_FOV_DEG = 60.0             # and its field of view [deg]


@dataclass(frozen=True)
class ClosedLoopOptions:
    tasks: tuple = ('reach',)
    episodes: int = 10                   # per task
    seed_start: int = HELD_OUT_SEED_START
    max_steps: int = 0                   # control ticks per episode (0: the task default)
    rate_hz: float = 10.0                # simulator control rate
    image_size: int = DEFAULT_IMAGE_SIZE  # simulator camera (square) [px]
    fov_deg: float = DEFAULT_FOV_DEG     # simulator camera field of view [deg]
    execute_steps: int = 0               # actions executed per chunk before the next one
    #                                      (0: a new chunk for every camera frame)
    policy_seed: int = 0                 # noise seed of the policy (-1: fresh noise)
    camera_xyz: tuple = DEFAULT_CAMERA_XYZ   # simulator camera mount, optical frame [m]
    camera_quat: tuple = DEFAULT_CAMERA_QUAT  # (x, y, z, w) in the base frame
    camera_jitter_cm: float = 0.0        # per-episode mount offset up to this per axis [cm]
    camera_jitter_deg: float = 0.0       # and turn up to this about each axis [deg]
    lockstep: bool = False               # simulated time waits for the policy (reproducible)
    side_camera: bool = False            # the simulator also renders its fixed side camera
    execution: str = 'async'             # the policy node's execution mode (sync, async, rtc)
    inject_latency_ms: float = 0.0       # delay added to every inference of the policy node
    sim_node: str = '/sim_node'
    policy_node: str = '/policy_node'
    outcome_topic: str = '/spatialvla/episode_outcome'
    chunk_topic: str = '/spatialvla/action_chunk'
    trajectory_topic: str = '/joint_trajectory'
    joint_states_topic: str = '/joint_states'
    startup_timeout_s: float = 180.0     # loading the nodes (torch import, checkpoint)

    def seeds(self):
        """Seeds of every task's episodes, in order."""
        return [self.seed_start + i for i in range(self.episodes)]


@dataclass
class EpisodeResult:
    task: str
    seed: int
    instruction: str
    success: bool
    steps: int                           # control ticks until the episode ended
    time_to_success_s: float             # simulated; NaN when failed
    wall_s: float
    chunks: int                          # chunks the policy published during the episode
    latencies_s: list = field(default_factory=list)
    joint_times_s: list = field(default_factory=list)
    joint_positions: list = field(default_factory=list)
    trajectories: list = None            # execution_metrics.Trajectory (None: not recorded)

    def metrics(self):
        """Seam jump, jerk RMS and cadence of the episode (`evaluation.execution_metrics`)."""
        return execution_metrics(self.joint_times_s, self.joint_positions, self.trajectories,
                                 self.joint_times_s[-1] if self.joint_times_s else 0.0)

    def summary(self):
        out = {k: v for k, v in self.__dict__.items()
               if k not in ('latencies_s', 'joint_times_s', 'joint_positions', 'trajectories')}
        out.update(self.metrics())
        return out


def time_to_success_s(success, steps, rate_hz):
    """Return the simulated seconds until success (ticks x control period; NaN if failed)."""
    return steps / rate_hz if success else float('nan')


# The policy node's input watchdog, result age and future-stamp checks guard a live robot
# against stale or delayed data. In lockstep nothing is stale: the simulator waits, so these
# checks could only turn CPU load into dropped chunks; they are opened to their maximum.
LOCKSTEP_POLICY_PARAMETERS = {'use_sim_time': True, 'input_timeout_s': 3600.0,
                              'max_observation_age_s': 3600.0, 'future_tolerance_s': 3600.0}


def policy_overrides(options, dt=0.1):
    """Return the policy node parameters of a closed-loop run."""
    # The mount comes from the simulator's topic only (never the checkpoint's own mount).
    params = {'seed': int(options.policy_seed), 'require_camera_pose': True,
              'execution': options.execution, 'execution_horizon': int(options.execute_steps),
              'inject_latency_ms': float(options.inject_latency_ms)}
    if options.lockstep:
        params.update(LOCKSTEP_POLICY_PARAMETERS)   # the simulator paces the chunks
    elif options.execute_steps > 0:
        params['max_rate_hz'] = 1.0 / (options.execute_steps * dt)
    return params


def sim_parameters(options):
    """Return the simulator node parameters of a closed-loop run (camera, rate, 1st episode)."""
    return {'task': options.tasks[0], 'seed': int(options.seed_start),
            'max_steps': int(options.max_steps), 'rate_hz': float(options.rate_hz),
            'camera_rate_hz': float(options.rate_hz), 'image_width': int(options.image_size),
            'image_height': int(options.image_size), 'camera_fov_deg': float(options.fov_deg),
            'cloud_topic': '', 'lockstep': bool(options.lockstep),
            'side_camera': bool(options.side_camera),
            'execute_steps': int(options.execute_steps), 'lockstep_peer': options.policy_node,
            'camera_xyz': [float(v) for v in options.camera_xyz],
            'camera_quat': [float(v) for v in options.camera_quat],
            'camera_jitter_cm': float(options.camera_jitter_cm),
            'camera_jitter_deg': float(options.camera_jitter_deg)}


def summarize(results, tasks):
    """
    Per task: episodes, successes, success rate with its 95% interval, time to success.

    Also the execution figures (`evaluation.execution_metrics`), averaged over the episodes:
    seam_jump (and seam_jump_max, the worst episode), jerk_rms, chunks_per_s and
    starved_fraction, and the chunk latency distribution.
    """
    out = {}
    for task in tasks:
        rows = [r for r in results if r.task == task]
        ok = [r for r in rows if r.success]
        lat = [v for r in rows for v in r.latencies_s]
        lo, hi = wilson_interval(len(ok), len(rows))
        metrics = [r.metrics() for r in rows]
        out[task] = {
            'episodes': len(rows), 'successes': len(ok),
            'success_rate': len(ok) / len(rows) if rows else float('nan'),
            'success_ci95': [lo, hi],
            'time_to_success_s': float(np.mean([r.time_to_success_s for r in ok]))
            if ok else float('nan'),
            'latency_s': distribution(lat),
            **{key: _nanmean([m[key] for m in metrics]) for key in (
                'seam_jump', 'jerk_rms', 'chunks_per_s', 'starved_fraction')},
            'seam_jump_max': _nanmax([m['seam_jump'] for m in metrics]),
            'seeds': [r.seed for r in rows]}
    return out


def _nanmean(values):
    values = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float('nan')


def _nanmax(values):
    values = np.asarray(values, dtype=np.float64)
    return float(np.nanmax(values)) if np.isfinite(values).any() else float('nan')


def wilson_interval(successes, n, z=1.96):
    """95% Wilson score interval of a success rate (NaN, NaN for n = 0)."""
    if n == 0:
        return float('nan'), float('nan')
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def checkpoint_recipe(checkpoint_dir):
    """Return how a checkpoint was recorded and run: its recipe.json, {} when it has none."""
    path = os.path.join(checkpoint_dir, 'recipe.json')
    try:
        with open(path, encoding='utf-8') as f:
            recipe = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ValueError(f'{path}: not readable as JSON ({exc})') from None
    if not isinstance(recipe, dict):
        raise ValueError(f'{path}: expected a JSON object, got {type(recipe).__name__}')
    return recipe


def uses_side_camera(data_config):
    """Tell whether a policy's cameras (its `data:` section) include the simulator's side one."""
    side = SimTopics().side_color
    return any(cam.color_topic == side for cam in data_config.cameras)


def recipe_camera(checkpoint_dir):
    """Camera and chunk execution a checkpoint was made for (defaults when it says nothing).

    Keys: image_size [px], fov_deg, execute_steps, tasks (make_default_checkpoint writes them),
    and side_camera: whether the checkpoint's config.yaml listens to the simulator's side camera.
    """
    recipe = checkpoint_recipe(checkpoint_dir) if checkpoint_dir else {}
    out = {'image_size': DEFAULT_IMAGE_SIZE, 'fov_deg': DEFAULT_FOV_DEG, 'execute_steps': 0,
           'tasks': ('reach',), 'side_camera': False}
    config = os.path.join(checkpoint_dir, 'config.yaml') if checkpoint_dir else ''
    if config and os.path.isfile(config):
        out['side_camera'] = uses_side_camera(PolicyConfig.from_yaml(config).data)
    for key, kind in (('image_size', int), ('fov_deg', float), ('execute_steps', int)):
        if key in recipe:
            out[key] = kind(recipe[key])
    inner = recipe.get('recipe', {})
    tasks = inner.get('tasks') or ([inner['task']] if 'task' in inner else None)
    if tasks:
        out['tasks'] = tuple(tasks)
    return out


__all__ = ['ClosedLoopOptions', 'DEFAULT_FOV_DEG', 'DEFAULT_IMAGE_SIZE', 'EpisodeResult',
           'HELD_OUT_SEED_START', 'LOCKSTEP_POLICY_PARAMETERS', 'checkpoint_recipe',
           'policy_overrides', 'recipe_camera', 'sim_parameters', 'summarize',
           'time_to_success_s', 'uses_side_camera', 'wilson_interval']

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


"""The closed loop in one process: simulator and policy called directly, no DDS, no timing.

    results = run(policy, ('reach', 'push'), range(1_000_000, 1_000_010))

For fast sweeps and ablations. Each tick is what the DDS loop does with an instant policy:
the simulator renders the tick's messages (`sim.rollout.SimEpisode.observe`), the policy node's
own `ObservationBuilder` turns them into the observation, the chunk passes the node's safety
filter (default parameters) and is executed as the node publishes it (stamped with the
observation, point k at (k + 1) * dt) and replaces the rest of the previous one, and a new
chunk is asked for every `execute_steps` ticks (0: every tick).
Episodes end, succeed and are timed by the simulator's own rules, and results are the DDS
loop's `EpisodeResult`s, so `summarize` and the reports take either. The DDS loop stays the
reference for what a robot sees (latency, dropped frames).

It is the DDS loop in lockstep (`ClosedLoopOptions.lockstep`) without the transport: the same
episode start, the same observation per chunk, the same noise seed per chunk
(`options.policy_seed`, as the policy node's `seed` parameter) and the same trajectory
execution, so both give the same outcomes on the same seeds (test_closed_loop.py checks the
joint angles of every tick). Load the policy as the node does (`nodes.policy_runtime.
load_policy`, same torch threads) for the chunks to agree to the last bit. The camera mount is
the simulator's (`options.camera_*`, per episode with jitter), and the policy learns it as the
node does: from the episode's mount message (`perception.mounts.CameraMounts`).
"""

import time

import numpy as np
from spatialvla_ros.core_types import NS_PER_S
from spatialvla_ros.evaluation.closed_loop import ClosedLoopOptions
from spatialvla_ros.evaluation.closed_loop import EpisodeResult
from spatialvla_ros.evaluation.closed_loop import time_to_success_s
from spatialvla_ros.evaluation.closed_loop import uses_side_camera
from spatialvla_ros.perception.observation_builder import key_topics
from spatialvla_ros.perception.observation_builder import ObservationBuilder
from spatialvla_ros.policies.safety import SafetyConfig
from spatialvla_ros.policies.safety import SafetyFilter
from spatialvla_ros.sim.camera import CameraSpec
from spatialvla_ros.sim.camera import side_camera_spec
from spatialvla_ros.sim.constants import published_limits
from spatialvla_ros.sim.messages import SimTopics
from spatialvla_ros.sim.panda_env import PandaEnv
from spatialvla_ros.sim.rollout import SimEpisode
from spatialvla_ros.sim.rollout import T0_NS


def run(policy, tasks, seeds, options=None, progress=None):
    """Run every seed of every task with `policy` in this process; returns EpisodeResults.

    Args:
        policy: a SpatialVLAPolicy (anything with `config` and `predict_chunk(obs, seed=)`).
        tasks: task names, e.g. ('reach',).
        seeds: episode seeds, the same for every task.
        options: ClosedLoopOptions for the camera, rate, max_steps, execute_steps and the
            policy's noise seed (its tasks / episodes / seed_start are not used). The side
            camera is rendered when options.side_camera says so or the policy listens to it.
        progress: optional `progress(result, done, total)` after each episode.
    """
    options = options or ClosedLoopOptions()
    seeds = [int(s) for s in seeds]
    config = policy.config
    spec = CameraSpec(width=options.image_size, height=options.image_size,
                      fov_deg=options.fov_deg, xyz=tuple(options.camera_xyz),
                      quat=tuple(options.camera_quat)).validate()
    jitter = (options.camera_jitter_cm / 100.0, options.camera_jitter_deg)
    side = None
    if options.side_camera or uses_side_camera(config.data):
        side = side_camera_spec(spec)
    env = PandaEnv(spec, side_camera_spec=side)
    topics = SimTopics(cloud='')
    builder = ObservationBuilder(config.data, config.encoder3d, config.action.names,
                                 config.action.state_dim)
    keys = {topic: key for key, topic in key_topics(config.data).items()}
    names = list(config.action.names)
    offsets = [(k + 1) * int(round(config.action.dt * NS_PER_S))
               for k in range(config.action.chunk_size)]
    # The policy node's safety filter at its default parameters, so that both loops execute
    # the same actions.
    safety = SafetyFilter(SafetyConfig.for_action(
        config.action, published_limits(config.action.names)), config.action.action_dim)
    results = []
    total = len(tasks) * len(seeds)
    try:
        for task in tasks:
            for seed in seeds:
                env.set_camera(spec.jittered(seed, *jitter))
                episode = SimEpisode(env, task, seed, T0_NS, options.rate_hz, topics,
                                     max_steps=options.max_steps)
                try:
                    result = _episode(policy, episode, builder, keys, topics, names, offsets,
                                      options, safety)
                finally:
                    episode.close()
                results.append(result)
                if progress is not None:
                    progress(result, len(results), total)
    finally:
        env.close()
    return results


def _episode(policy, episode, builder, keys, topics, names, offsets, options, safety):
    every = max(options.execute_steps, 1)
    start = time.monotonic()
    latencies, joint_times, joints = [], [], []
    t0 = episode.env.time_ns
    # The mount message of the episode start, taken as the policy node takes it (latched).
    mounts = builder.mounts
    for message in episode.start_messages():
        if message.topic == builder.data_config.camera_pose_topic:
            mounts.update(message.msg, message.topic)
    if mounts.missing():   # the node (require_camera_pose) would wait for them forever
        raise ValueError(f'data.camera_pose_topic {mounts.topic!r}: no mount for camera(s) '
                         f'{mounts.missing()}; the simulator publishes its mount on '
                         f'{topics.camera_pose} with child_frame_id {topics.camera_frame!r}')
    while True:
        new_chunk = episode.steps % every == 0
        messages = episode.observe(camera=new_chunk)
        state = next(m.msg for m in messages if m.topic == topics.joint_states)
        joint_times.append((episode.env.time_ns - t0) / NS_PER_S)
        joints.append([float(v) for v in state.position])
        if new_chunk:
            stamp = episode.env.time_ns
            by_key = {keys[m.topic]: m.msg for m in messages if m.topic in keys}
            obs = builder.build(by_key, state, episode.task.instruction, stamp,
                                mounts=mounts.snapshot(stamp))
            tick = time.monotonic()
            chunk = policy.predict_chunk(
                obs, seed=options.policy_seed if options.policy_seed >= 0 else None)
            latencies.append(time.monotonic() - tick)
            chunk = safety(chunk, np.asarray(offsets) / NS_PER_S, obs.state[:safety.dim]).chunk
            if chunk is not None:  # a rejected chunk leaves the previous trajectory running
                episode.apply_trajectory(names, stamp, offsets, np.asarray(chunk, np.float64))
        if episode.advance():
            break
    success, steps = episode.success, episode.steps
    return EpisodeResult(
        task=episode.task.name, seed=episode.seed, instruction=episode.task.instruction,
        success=success, steps=steps,
        time_to_success_s=time_to_success_s(success, steps, options.rate_hz),
        wall_s=time.monotonic() - start, chunks=len(latencies), latencies_s=latencies,
        joint_times_s=joint_times, joint_positions=joints)


__all__ = ['run']

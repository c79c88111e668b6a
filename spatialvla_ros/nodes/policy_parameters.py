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
The policy node's ROS parameters as plain data: declared by the node, listed by --help.

Runtime knobs only (the architecture comes from the checkpoint). No rclpy here, so the table
also serves `policy_node --help`, the launch tools and the tests.
"""

import dataclasses
from dataclasses import dataclass
import textwrap

from spatialvla_ros.models.configuration_spatialvla import PLANS
from spatialvla_ros.policies.execution import EXECUTION_MODES
from spatialvla_ros.policies.safety import FIRST_STEP_S
from spatialvla_ros.policies.safety import SAFETY_MODES
from spatialvla_ros.policies.safety import SafetyConfig
from spatialvla_ros.sim.constants import published_limits


@dataclass(frozen=True)
class NodeParameter:
    """One ROS parameter of the policy node: default, meaning and allowed range."""

    name: str
    default: object
    description: str
    low: object = None               # inclusive range for numbers (None: unbounded)
    high: object = None
    choices: tuple = ()              # allowed strings (empty: any)


# Runtime knobs only: the architecture comes from the checkpoint. Camera parameters
# (cameras.<name>.*) are declared at configure time, once the checkpoint names the cameras.
NODE_PARAMETERS = (
    NodeParameter('checkpoint_dir', '', 'Checkpoint directory (config.yaml, model.safetensors, '
                  'normalization.safetensors, tokenizer/). Required: configure fails without.'),
    NodeParameter('plan', '', "Expected fusion plan; configure fails if the checkpoint's plan "
                  "differs ('' accepts any).", choices=('',) + PLANS),
    NodeParameter('device', 'auto', "Torch device: 'auto' (cuda when available, else cpu), "
                  "'cpu', 'cuda', 'cuda:N'."),
    NodeParameter('dtype', 'auto', "Model dtype: 'auto' (the checkpoint's), float32, bfloat16, "
                  'float16.', choices=('auto', 'float32', 'bfloat16', 'float16')),
    NodeParameter('num_threads', 1, "Torch intra-op threads, set at configure (0: torch's "
                  'default, one per core). 1 suits small onboard computers: with two other busy '
                  'processes on the CPU, chunk p95 was 44-49 ms with 1 thread and 200-229 ms '
                  'with 2.', 0, 1024),
    NodeParameter('num_steps', 0, 'Euler denoising steps per chunk (0: the checkpoint config).',
                  0, 1000),
    NodeParameter('compile', False, 'torch.compile the denoising step at configure (same '
                  'actions within float tolerance, less time per step). Off by default: '
                  'compiling takes 20-170 s on a CPU. Configure ends with one warm-up chunk '
                  'either way, so neither compilation nor the slow first inference lands on a '
                  'live observation.'),
    NodeParameter('seed', -1, 'Seed of the initial noise of every chunk (-1: fresh noise each '
                  'time; >= 0: same observation -> same actions).', -1, 2 ** 31 - 1),
    NodeParameter('default_instruction', '', 'Instruction used until one arrives on the '
                  "instruction topic ('': wait for one)."),
    NodeParameter('max_instruction_chars', 1000, 'Longer instructions are rejected (reason '
                  "'too_long'; the previous instruction stays in force), not truncated: a cut "
                  'sentence can name another task.', 1, 1_000_000),
    NodeParameter('state_topic', '', "JointState topic ('': the checkpoint's data.state_topic)."),
    NodeParameter('instruction_topic', '', 'std_msgs/String instruction topic, transient-local '
                  "('': the checkpoint's data.instruction_topic)."),
    NodeParameter('camera_pose_topic', '', 'geometry_msgs/TransformStamped camera mounts '
                  "(header.frame_id: the base frame, child_frame_id: a camera's frame_id), "
                  "transient-local ('': the checkpoint's data.camera_pose_topic). The newest "
                  'valid mount of a camera replaces its cameras.<name>.base_from_camera_* '
                  'without a restart.'),
    NodeParameter('base_frame', '', "Frame of the mounts and the 3D points ('': the "
                  "checkpoint's data.base_frame); a mount in another frame is rejected "
                  "(reason 'mount')."),
    NodeParameter('require_camera_pose', False, 'No chunk until every camera with a frame_id '
                  'has had a valid mount on camera_pose_topic (its configured mount is never '
                  'used): the mount comes only from the topic, as on a robot whose camera moves.'),
    NodeParameter('camera_pose_max_age_s', 0.0, 'A camera set whose mount is stamped more than '
                  "this before its images is rejected (reason 'stale_mount') [s] (0: a mount "
                  'holds until a newer one arrives, e.g. a static mount published once).',
                  0.0, 1e9),
    NodeParameter('trajectory_topic', 'joint_trajectory', 'Output JointTrajectory topic (e.g. '
                  'a joint_trajectory_controller command topic).'),
    NodeParameter('action_chunk_topic', 'spatialvla/action_chunk', 'Output ActionChunk topic.'),
    NodeParameter('status_topic', 'spatialvla/status', 'Output PolicyStatus topic.'),
    NodeParameter('diagnostics_topic', '/diagnostics', 'Output DiagnosticArray topic.'),
    # The predicted motion in RViz (nodes/policy_markers.py).
    NodeParameter('publish_markers', False, 'Publish each chunk as a visualization_msgs/'
                  'MarkerArray on marker_topic: the path of marker_link through the chunk '
                  '(forward kinematics of robot_description), coloured by time, and the path it '
                  'executed (from the joint states), in the URDF root frame.'),
    NodeParameter('marker_topic', 'spatialvla/chunk_markers', 'Output MarkerArray topic '
                  '(publish_markers).'),
    NodeParameter('marker_link', 'panda_grasptarget', 'URDF link whose path the markers draw '
                  '(the end effector; publish_markers).'),
    NodeParameter('robot_description', '', "The robot's URDF text for the markers ('': the "
                  'latched robot_description topic, as robot_state_publisher and the simulator '
                  'publish it).'),
    NodeParameter('qos_reliability', 'reliable', 'Reliability of the sensor and joint state '
                  'subscriptions. reliable: VGA and larger frames arrive whole (best_effort '
                  'lost most of them, bench/dds_camera_qos.py); best_effort: for best-effort '
                  'publishers, which a reliable subscription does not match.',
                  choices=('best_effort', 'reliable')),
    NodeParameter('qos_depth', 10, 'History depth of the sensor subscriptions (10 kept a '
                  '30 Hz 1280x720 RGB-D stream whole; 5 lost a few frames, 1-2 a third).',
                  1, 1000),
    NodeParameter('sync_slop_s', -1.0, 'Max header stamp spread inside one synchronised set '
                  "[s] (-1: the checkpoint's data.sync_slop).", -1.0, 10.0),
    NodeParameter('sync_queue_size', 10, 'Messages kept per synchronised stream.', 1, 1000),
    NodeParameter('input_timeout_s', 0.5, 'Watchdog: publishing stops while any required input '
                  'is older than this [s].', 0.01, 3600.0),
    NodeParameter('max_observation_age_s', 1.0, 'A chunk whose observation was received more '
                  'than this long ago when inference ends is not published [s].', 0.01, 3600.0),
    NodeParameter('future_tolerance_s', 0.1, 'Header stamps later than now + this are rejected '
                  '[s].', 0.0, 3600.0),
    NodeParameter('max_rate_hz', 0.0, 'Cap on inferences (and chunks) per second (0: as fast as '
                  'the model runs).', 0.0, 1000.0),
    NodeParameter('status_rate_hz', 2.0, 'Rate of PolicyStatus and DiagnosticArray [Hz].',
                  0.1, 100.0),
    NodeParameter('warn_throttle_s', 2.0, 'Min interval between two warnings for the same '
                  'topic and reason [s].', 0.0, 3600.0),
    # Execution modes (policies/execution.py), read at activate.
    NodeParameter('execution', 'async', 'How chunks meet a moving arm. async: the next '
                  'inference starts while the current chunk executes; a chunk is stamped at its '
                  'observation and replaces the rest of the old one when it is ready. sync: '
                  'the arm holds while the policy thinks (execution_horizon actions per chunk, '
                  'stamped when ready, then the next observation). rtc: async with Real-Time '
                  'Chunking (the actions due before the chunk is ready held to the previous '
                  'chunk, the overlap inpainted by guided sampling).', choices=EXECUTION_MODES),
    NodeParameter('execution_horizon', 0, 'sync: actions of a chunk executed before the next '
                  'observation (0: the whole chunk).', 0, 1000),
    NodeParameter('rtc_max_guidance_weight', 5.0, "rtc: the guidance-weight clip (the paper's "
                  'beta; 0: no guidance, only the committed actions are held).', 0.0, 1000.0),
    NodeParameter('inject_latency_ms', 0.0, 'Experiments: a fixed delay added to every '
                  'inference [ms], so a fast model stands in for a slow one.', 0.0, 60000.0),
    NodeParameter('inject_latency_jitter_ms', 0.0, 'Experiments: plus a uniform random delay '
                  'in [0, this) per inference [ms] (seeded by seed; -1: unseeded).',
                  0.0, 60000.0),
    # Safety filter (policies/safety.py) and dry run: see safety_config() below.
    NodeParameter('dry_run', False, 'Publish everything (status, diagnostics, action chunks) '
                  'except the command trajectory, to watch a policy on the robot without moving '
                  'it. Read at every chunk.'),
    NodeParameter('safety_mode', 'clamp', 'What the safety filter does with a chunk that '
                  'breaks a joint limit: clamp (publish the nearest chunk within every limit; a '
                  'chunk a little over a limit is still the best action, and rejecting it '
                  'leaves the controller on an older trajectory) or reject (publish nothing). '
                  'Non-finite chunks are always rejected.', choices=SAFETY_MODES),
    NodeParameter('velocity_limit_scale', 1.0, 'Fraction of the joint velocity limits enforced: '
                  "the checkpoint's action.velocity_limits, else the Panda's published limits "
                  "(2.175-2.61 rad/s) when the checkpoint's joints are the simulator Panda's, "
                  'else none.', 1e-4, 1.0),
    NodeParameter('acceleration_limit_scale', 1.0, 'Fraction of the joint acceleration limits '
                  "enforced: the checkpoint's action.acceleration_limits, else the Panda's "
                  '(7.5-20 rad/s^2) as for velocity.', 1e-4, 1.0),
    NodeParameter('max_first_step_s', FIRST_STEP_S, 'The first point of a chunk may be at most '
                  'the (scaled) velocity limit times this from the current joint state, '
                  'whatever its time: 0.2 s, two periods at 10 Hz, leaves room for the lag of a '
                  'tracking arm behind its command and stops a chunk that starts far away (0: '
                  'no bound beyond the velocity limit).', 0.0, 10.0),
)

# cameras.<camera name>.<field>; defaults come from the checkpoint's data.cameras.
CAMERA_PARAMETERS = (
    ('color_topic', 'Colour Image topic (rgb8, bgr8, rgba8, bgra8, mono8).'),
    ('depth_topic', "Depth Image topic (16UC1 mm or 32FC1 m); '' when cloud_topic is used."),
    ('camera_info_topic', 'CameraInfo topic of the colour image.'),
    ('cloud_topic', "PointCloud2 topic (optical frame) instead of depth ('' = off)."),
    ('base_from_camera_xyz', 'Camera-to-base translation [m] (x, y, z).'),
    ('base_from_camera_quat', 'Camera-to-base rotation quaternion (x, y, z, w).'),
    ('frame_id', "Optical frame: the child_frame_id of this camera's mounts on "
                 "camera_pose_topic ('': camera_color_optical_frame for the first camera, the "
                 'configured mount only for the others).'),
)


USAGE = """usage: policy_node [-h] [--ros-args ...]

SpatialVLA policy node (lifecycle: configure loads the checkpoint, activate publishes).
Start it configured and active with:  policy_launch --checkpoint-dir DIR --autostart
Parameters (--ros-args -p name:=value, or --params-file config/params/policy_node.yaml):
"""


def help_requested(argv):
    """Return True when -h / --help comes before any --ros-args in the command line `argv`."""
    end = argv.index('--ros-args') if '--ros-args' in argv else None
    return bool({'-h', '--help'} & set(argv[:end]))


def describe_parameters():
    """Return the parameter list as text for --help."""
    lines = []
    for p in NODE_PARAMETERS:
        extra = ''
        if p.choices:
            extra = ' {' + ', '.join(repr(c) for c in p.choices) + '}'
        elif p.low is not None:
            extra = f' [{p.low}, {p.high}]'
        lines.append(f'  {p.name} (default {p.default!r}){extra}\n'
                     + textwrap.fill(p.description, 99, initial_indent=' ' * 6,
                                     subsequent_indent=' ' * 6))
    for field_name, description in CAMERA_PARAMETERS:
        lines.append(f"  cameras.<name>.{field_name} (default: the checkpoint's)\n"
                     f'      {description}')
    return '\n'.join(lines)


def camera_parameters(data):
    """
    Yield (camera, field, parameter name, default, description) of every cameras.<name>.*.

    Defaults are the DataConfig's values (tuples as lists, as ROS parameters take them).
    """
    for cam in data.cameras:
        for field_name, description in CAMERA_PARAMETERS:
            default = getattr(cam, field_name)
            yield (cam.name, field_name, f'cameras.{cam.name}.{field_name}',
                   list(default) if isinstance(default, tuple) else default, description)


def check_choices(values):
    """Raise ValueError naming the parameter when a value is not one of its allowed strings."""
    for p in NODE_PARAMETERS:
        if p.choices and p.name in values and values[p.name] not in p.choices:
            raise ValueError(f"parameter '{p.name}': got {values[p.name]!r}, expected one of "
                             + ', '.join(repr(c) for c in p.choices))


def data_config_with_overrides(data, cameras, state_topic='', instruction_topic='',
                               camera_pose_topic='', base_frame=''):
    """
    Return the checkpoint's DataConfig with parameter overrides applied and validated.

    cameras: {camera name: {CAMERA_PARAMETERS field: value}}; '' topics (and base frame) keep
    the checkpoint's state / instruction / camera pose topics.
    """
    new_cameras = []
    for cam in data.cameras:
        values = dict(cameras.get(cam.name, {}))
        for name in ('base_from_camera_xyz', 'base_from_camera_quat'):
            if name in values:
                values[name] = tuple(float(v) for v in values[name])
        for name in ('color_topic', 'depth_topic', 'camera_info_topic', 'cloud_topic',
                     'frame_id'):
            if name in values:
                values[name] = str(values[name])
        new_cameras.append(dataclasses.replace(cam, **values))
    data = dataclasses.replace(data, cameras=tuple(new_cameras),
                               state_topic=state_topic or data.state_topic,
                               instruction_topic=instruction_topic or data.instruction_topic,
                               camera_pose_topic=camera_pose_topic or data.camera_pose_topic,
                               base_frame=base_frame or data.base_frame)
    data.validate('data')
    return data


def safety_config(action, values):
    """
    Return (SafetyConfig, one line saying where its limits came from) for the policy node.

    action: the checkpoint's ActionConfig; values: {parameter name: value} with safety_mode,
    velocity_limit_scale, acceleration_limit_scale and max_first_step_s. A checkpoint without
    velocity / acceleration limits whose joints are the simulator Panda's gets the Panda's
    published limits (sim/constants.py), so the filter is on for every Panda checkpoint.
    """
    for name in ('velocity_limit_scale', 'acceleration_limit_scale'):
        if not 0 < values[name] <= 1:
            raise ValueError(f"parameter '{name}': got {values[name]}, expected (0, 1]")
    if not values['max_first_step_s'] >= 0:
        raise ValueError(f"parameter 'max_first_step_s': got {values['max_first_step_s']}, "
                         'expected >= 0 [s]')
    robot = published_limits(action.names)
    config = SafetyConfig.for_action(
        action, robot, values['safety_mode'], values['velocity_limit_scale'],
        values['acceleration_limit_scale'], values['max_first_step_s'])
    config.validate(action.action_dim, names={
        'mode': "parameter 'safety_mode'", 'lower': 'action.lower_limits',
        'upper': 'action.upper_limits', 'max_velocity': 'action.velocity_limits',
        'max_acceleration': 'action.acceleration_limits',
        'max_first_step': "parameter 'max_first_step_s'"})
    source = [f'{label}: ' + ('checkpoint' if own else 'Panda' if theirs else 'none')
              for label, own, theirs in (
                  ('velocity', action.velocity_limits, robot[0]),
                  ('acceleration', action.acceleration_limits, robot[1]),
                  ('position', action.lower_limits, ()))]
    return config, f"safety filter: {config.mode}, limits ({', '.join(source)})"


__all__ = ['CAMERA_PARAMETERS', 'camera_parameters', 'check_choices',
           'data_config_with_overrides', 'describe_parameters', 'help_requested',
           'NODE_PARAMETERS', 'NodeParameter', 'safety_config', 'USAGE']

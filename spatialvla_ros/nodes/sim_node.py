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

"""ROS 2 node around the PyBullet Panda workcell, with seeded task episodes.

It acts as an RGB-D camera driver plus a joint trajectory controller.
Thin by design: the episode logic lives in spatialvla_ros.sim.rollout and every message is the
CDR payload that the offline demo generator writes into its bags (published as raw bytes), so
live topics and recorded bags cannot drift apart. It publishes its simulated time on /clock
(rosgraph_msgs/Clock), the ROS convention for nodes that run with `use_sim_time: true`.

Two ways to run time:
- real time (default): a wall-clock timer ticks the physics at rate_hz whether or not the
  policy keeps up, which is what a robot sees (latency matters);
- lockstep (`lockstep: true`, for reproducible evaluation): simulated time advances only when
  the policy has answered. After ~/reset and ~/start the node publishes the observation of the
  current tick, waits for the trajectory stamped with that observation, executes
  `execute_steps` ticks of it, then publishes the next observation. An answer that does not
  come within `lockstep_timeout_s` (wall clock), or a trajectory that cannot be executed, ends
  the episode with an outcome that carries the error: never a silent skip.
"""

import json
import sys
import time

from builtin_interfaces.msg import Time
from rcl_interfaces.msg import FloatingPointRange
from rcl_interfaces.msg import IntegerRange
from rcl_interfaces.msg import ParameterDescriptor
from rcl_interfaces.msg import SetParametersResult
from rcl_interfaces.srv import GetParameters
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from spatialvla_ros.core_types import NS_PER_S
from spatialvla_ros.core_types import ns_to_stamp
from spatialvla_ros.core_types import stamp_to_ns
from spatialvla_ros.nodes.spin import spin_node
from spatialvla_ros.perception.kinematics import RobotKinematics
from spatialvla_ros.perception.messages import rclpy_class
from spatialvla_ros.sim import messages as sim_msgs
from spatialvla_ros.sim.camera import CameraSpec
from spatialvla_ros.sim.camera import side_camera_spec
from spatialvla_ros.sim.constants import DEFAULT_CAMERA_QUAT
from spatialvla_ros.sim.constants import DEFAULT_CAMERA_XYZ
from spatialvla_ros.sim.constants import SIDE_CAMERA_QUAT
from spatialvla_ros.sim.constants import SIDE_CAMERA_XYZ
from spatialvla_ros.sim.constants import TASKS
from spatialvla_ros.sim.expert import PandaIK
from spatialvla_ros.sim.panda_env import panda_urdf
from spatialvla_ros.sim.panda_env import PandaEnv
from spatialvla_ros.sim.rollout import SimEpisode
from spatialvla_ros.sim.rollout import T0_NS
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

_TOPICS = sim_msgs.SimTopics()
# name -> (default, description, read_only); ranges are added in _declare.
PARAMETERS = {
    'task': ('reach', f'task of the next reset, one of {", ".join(TASKS)}', False),
    'seed': (0, 'seed of the next reset (layout + task instance)', False),
    'max_steps': (0, 'episode length limit in control ticks (0 = the task default)', False),
    'auto_reset': (False, 'after an episode ends, reset with seed + 1 (and update `seed`)',
                   False),
    'autostart': (True, 'start the first episode at launch; false: wait for ~/reset (e.g. until '
                        'the subscribers are connected)', True),
    'expert': (False, 'run the scripted expert in the node: it publishes its trajectories on '
                      'expert_topic and executes them (commands on command_topic are ignored)',
               False),
    'rate_hz': (10.0, 'control tick rate: physics advance, joint states [Hz]', True),
    'camera_rate_hz': (10.0, 'camera rate [Hz]; rate_hz must be a multiple of it', True),
    'physics_hz': (240, 'physics steps per second; a multiple of rate_hz', True),
    'image_width': (128, 'camera image width [px]', True),
    'image_height': (128, 'camera image height [px]', True),
    'camera_fov_deg': (60.0, 'vertical field of view [deg] (square pixels)', True),
    'camera_near': (0.05, 'near clipping plane [m]', True),
    'camera_far': (4.0, 'far clipping plane [m]; beyond it depth is NaN', True),
    'camera_xyz': (list(DEFAULT_CAMERA_XYZ), 'base_from_camera translation of the optical frame '
                   '[m] (published on camera_pose_topic at every reset, where the policy node '
                   'takes it from)', True),
    'camera_quat': (list(DEFAULT_CAMERA_QUAT), 'base_from_camera rotation of the optical frame '
                    '(x, y, z, w; z forward, x right, y down)', True),
    'side_camera': (False, 'also render a fixed side camera (same size, field of view and '
                           'clipping as the main one) on the side_* topics', True),
    'side_camera_xyz': (list(SIDE_CAMERA_XYZ), 'base_from_camera translation of the side '
                        "camera's optical frame [m] (published on side_camera_pose_topic)", True),
    'side_camera_quat': (list(SIDE_CAMERA_QUAT), "base_from_camera rotation of the side camera's "
                         'optical frame (x, y, z, w)', True),
    'camera_jitter_cm': (0.0, 'each reset mounts the camera at a random offset of up to this '
                              'per axis from camera_xyz, drawn from the episode seed [cm]', True),
    'camera_jitter_deg': (0.0, 'and turned by up to this about each base axis, about the point '
                               'the default camera looks at (the workspace stays in view) [deg]',
                          True),
    'renderer': ('tiny', "'tiny' (TinyRenderer) or 'egl' (EGL plugin; falls back to tiny when "
                         'it cannot be loaded)', True),
    'max_lag_s': (0.5, 'if simulated time falls this far behind the node clock, it jumps '
                       'forward (stamps stay monotonic; real-time mode)', True),
    'lockstep': (False, 'simulated time advances only when the policy has answered the current '
                        'observation (start each episode with ~/start); false: real time',
                 True),
    'execute_steps': (0, 'lockstep: control ticks executed per trajectory before the next '
                         'observation (0: 1, a new trajectory every tick)', False),
    'lockstep_timeout_s': (60.0, 'lockstep: wall-clock wait for the trajectory of an '
                                 'observation; longer ends the episode with an error', False),
    'lockstep_peer': ('/policy_node', 'lockstep: the node that answers observations; before '
                                      'each camera frame its parameter service is called, so it '
                                      'has taken the clock, joint state and instruction first',
                      True),
    'color_topic': (_TOPICS.color, 'sensor_msgs/Image rgb8', True),
    'depth_topic': (_TOPICS.depth, 'sensor_msgs/Image 32FC1 metric depth aligned to colour',
                    True),
    'camera_info_topic': (_TOPICS.camera_info, 'sensor_msgs/CameraInfo of both images', True),
    'cloud_topic': (_TOPICS.cloud, "sensor_msgs/PointCloud2 xyz+rgb, optical frame ('' = off)",
                    True),
    'joint_states_topic': (_TOPICS.joint_states, 'sensor_msgs/JointState', True),
    'instruction_topic': (_TOPICS.instruction, 'std_msgs/String, latched, set at reset', True),
    'outcome_topic': (_TOPICS.outcome, 'std_msgs/String JSON {task, seed, success, steps, '
                                       'instruction} when an episode ends', True),
    'camera_pose_topic': (_TOPICS.camera_pose, 'geometry_msgs/TransformStamped base_from_camera,'
                                               ' latched', True),
    'expert_topic': (_TOPICS.expert, 'trajectory_msgs/JointTrajectory of the expert', True),
    'command_topic': (_TOPICS.command, 'trajectory_msgs/JointTrajectory to execute', True),
    'base_frame': (_TOPICS.base_frame, 'robot base frame id', True),
    'camera_frame': (_TOPICS.camera_frame, 'camera optical frame id', True),
    'side_color_topic': (_TOPICS.side_color, 'side camera: sensor_msgs/Image rgb8', True),
    'side_depth_topic': (_TOPICS.side_depth, 'side camera: sensor_msgs/Image 32FC1 depth', True),
    'side_camera_info_topic': (_TOPICS.side_camera_info, 'side camera: sensor_msgs/CameraInfo',
                               True),
    'side_cloud_topic': (_TOPICS.side_cloud, 'side camera: sensor_msgs/PointCloud2 (published '
                                             'when cloud_topic is not empty)', True),
    'side_camera_pose_topic': (_TOPICS.side_camera_pose, 'side camera: geometry_msgs/'
                                                         'TransformStamped, latched', True),
    'side_camera_frame': (_TOPICS.side_camera_frame, 'side camera optical frame id', True),
}
USAGE = """usage: sim_node [--ros-args -p NAME:=VALUE ... | --params-file FILE]

PyBullet Franka Panda simulator behind ROS 2 topics (RGB-D camera, joint states, trajectory
execution) with seeded language-conditioned task episodes.

Services: ~/reset (std_srvs/Trigger): new episode with the current `task` and `seed`
          parameters; ~/start (std_srvs/Trigger, lockstep only): publish the episode's first
          observation; ~/success (std_srvs/Trigger): success of the running episode (message:
          JSON outcome).
Topics: /clock (rosgraph_msgs/Clock) carries the simulated time; robot_description
        (std_msgs/String, latched) the Panda's URDF; /tf the moving joints at every joint
        state, /tf_static the fixed joints and base_frame -> camera_frame (tf2_msgs/TFMessage,
        as robot_state_publisher sends them).

Parameters:
""" + '\n'.join(f'  {name} (default {default!r}): {text}'
                for name, (default, text, _) in PARAMETERS.items())


class SimNode(Node):
    """Publishes the simulated camera and robot; executes incoming joint trajectories."""

    def __init__(self):
        super().__init__('sim_node')
        self._declare()
        get = self._param
        self.topics = sim_msgs.SimTopics(
            color=get('color_topic'), depth=get('depth_topic'),
            camera_info=get('camera_info_topic'), cloud=get('cloud_topic'),
            joint_states=get('joint_states_topic'), instruction=get('instruction_topic'),
            outcome=get('outcome_topic'), camera_pose=get('camera_pose_topic'),
            expert=get('expert_topic'), command=get('command_topic'),
            base_frame=get('base_frame'), camera_frame=get('camera_frame'),
            side_color=get('side_color_topic'), side_depth=get('side_depth_topic'),
            side_camera_info=get('side_camera_info_topic'), side_cloud=get('side_cloud_topic'),
            side_camera_pose=get('side_camera_pose_topic'),
            side_camera_frame=get('side_camera_frame'))
        spec = CameraSpec(width=get('image_width'), height=get('image_height'),
                          fov_deg=get('camera_fov_deg'), near=get('camera_near'),
                          far=get('camera_far'), xyz=tuple(get('camera_xyz')),
                          quat=tuple(get('camera_quat')), renderer=get('renderer')).validate()
        rate, camera_rate = get('rate_hz'), get('camera_rate_hz')
        self._camera_every = int(round(rate / camera_rate))
        if self._camera_every < 1 or abs(rate / camera_rate - self._camera_every) > 1e-6:
            raise ValueError(f'camera_rate_hz: got {camera_rate}, expected rate_hz={rate} '
                             'divided by a whole number')
        side = None
        if get('side_camera'):
            side = side_camera_spec(spec, get('side_camera_xyz'), get('side_camera_quat'))
        self._camera = spec
        self._jitter = (get('camera_jitter_cm') / 100.0, get('camera_jitter_deg'))
        self.env = PandaEnv(spec, physics_hz=get('physics_hz'), side_camera_spec=side)
        self.env.substeps(1.0 / rate)              # validates rate vs physics_hz
        if spec.renderer == 'egl' and self.env.camera.backend != 'egl':
            self.get_logger().warning('EGL renderer not loadable; using TinyRenderer')
        self.ik = PandaIK()
        self._rate = rate
        self._max_lag_ns = int(get('max_lag_s') * NS_PER_S)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        # Reliable, keep last 10: the QoS that delivered every frame of 30 Hz VGA and HD
        # RGB-D streams over Fast DDS (best effort loses the fragments of large frames; a
        # shallower history drops frames still being repaired): bench/dds_camera_qos.py.
        stream = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._pubs = {}
        for topic, msgtype, qos in sim_msgs.topic_table(self.topics, side is not None):
            self._pubs[topic] = self.create_publisher(
                rclpy_class(msgtype), topic, latched if qos == sim_msgs.LATCHED else stream)
        self._publish_robot(latched, spec)
        # Best effort, depth 1: the QoS of the /clock subscription rclpy makes for use_sim_time.
        self._clock_pub = self.create_publisher(
            Clock, '/clock', QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        self.create_subscription(JointTrajectory, self.topics.command, self._on_command, 10)
        self.create_service(Trigger, '~/reset', self._on_reset)
        self.create_service(Trigger, '~/start', self._on_start)
        self.create_service(Trigger, '~/success', self._on_success)
        self.add_on_set_parameters_callback(self._check_params)
        self.episode = None
        self._tick = 0
        self._lockstep = get('lockstep')
        self._awaiting = None          # lockstep: (episode, stamp) of the unanswered observation
        self._awaiting_since = 0.0
        self._peer = self.create_client(GetParameters, f"{get('lockstep_peer')}/get_parameters")
        if get('autostart'):
            self._reset()
        if self._lockstep:
            self.create_timer(0.1, self._check_answer)
        else:
            self.create_timer(1.0 / rate, self._on_timer)
        self.get_logger().info(
            f'sim_node: {spec.width}x{spec.height} camera ({self.env.camera.backend})'
            + ('' if side is None else ' + side camera') + ', '
            f'{rate} Hz, ' + ('lockstep' if self._lockstep else 'real time')
            + ('' if self.episode is None else f', task {self.episode.task.name!r}: '
                                               f'"{self.episode.task.instruction}"'))

    # --- parameters --------------------------------------------------------------------------
    def _declare(self):
        for name, (default, text, read_only) in PARAMETERS.items():
            desc = ParameterDescriptor(description=text, read_only=read_only)
            if name in ('rate_hz', 'camera_rate_hz'):
                desc.floating_point_range = [FloatingPointRange(from_value=0.5, to_value=100.0)]
            elif name in ('image_width', 'image_height'):
                desc.integer_range = [IntegerRange(from_value=8, to_value=2048, step=1)]
            self.declare_parameter(name, default, desc)

    def _param(self, name):
        return self.get_parameter(name).value

    def _check_params(self, params):
        for param in params:
            if param.name == 'task' and param.value not in TASKS:
                return SetParametersResult(successful=False,
                                           reason=f'task: got {param.value!r}, expected one '
                                                  f'of {TASKS}')
        return SetParametersResult(successful=True)

    # --- episodes ----------------------------------------------------------------------------
    def _reset(self):
        if self.episode is not None:
            self.episode.close()
            # Lockstep time is the simulator's own: it starts at the recorded episodes' T0 and
            # only moves forward, so /clock never jumps back between episodes.
            start = self.env.time_ns + NS_PER_S
        else:
            start = T0_NS
        if not self._lockstep:
            start = max(self.get_clock().now().nanoseconds, 1)
        self._awaiting = None
        self.env.set_camera(self._camera.jittered(self._param('seed'), *self._jitter))
        self.episode = SimEpisode(self.env, self._param('task'), self._param('seed'),
                                  start, self._rate, self.topics,
                                  expert=self._param('expert'), ik=self.ik,
                                  max_steps=self._param('max_steps'))
        self._tick = 0
        self._publish(self.episode.start_messages())
        self._publish_clock()
        # Lockstep: only the joint state now; the camera frame that asks for an answer waits
        # for ~/start, once the policy is listening.
        self._publish(self.episode.observe(camera=not self._lockstep))

    def _publish(self, messages):
        for message in messages:
            self._pubs[message.topic].publish(message.serialize())
            if message.topic == self.topics.joint_states:
                self._publish_tf(message.msg)

    # --- robot model and tf, as robot_state_publisher provides them for a real robot --------
    def _publish_robot(self, latched, spec):
        """Publish the URDF and the fixed transforms (latched); /tf follows joint states."""
        urdf = panda_urdf()
        self.kinematics = RobotKinematics(urdf, "the simulator's URDF")
        # /tf: reliable, keep last 100, tf2's QoS for dynamic transforms.
        for topic, qos in ((sim_msgs.TF_TOPIC, QoSProfile(depth=100)),
                           (sim_msgs.TF_STATIC_TOPIC, latched)):
            self._pubs[topic] = self.create_publisher(rclpy_class(sim_msgs.TF), topic, qos)
        self._pubs[sim_msgs.ROBOT_DESCRIPTION_TOPIC] = self.create_publisher(
            rclpy_class(sim_msgs.STRING), sim_msgs.ROBOT_DESCRIPTION_TOPIC, latched)
        fixed = [t[:4] for t in self.kinematics.joint_transforms([], []) if t[4]]
        fixed.append((self.topics.base_frame, self.topics.camera_frame, spec.xyz, spec.quat))
        self._publish([
            sim_msgs.string_message(sim_msgs.ROBOT_DESCRIPTION_TOPIC, urdf, sim_msgs.LATCHED),
            sim_msgs.tf_message(sim_msgs.TF_STATIC_TOPIC, max(self.env.time_ns, T0_NS), fixed)])

    def _publish_tf(self, joint_state):
        moving = [t[:4] for t in self.kinematics.joint_transforms(
            joint_state.name, joint_state.position) if not t[4]]
        self._publish([sim_msgs.tf_message(sim_msgs.TF_TOPIC,
                                           stamp_to_ns(joint_state.header.stamp), moving)])

    def _publish_clock(self):
        self._clock_pub.publish(Clock(clock=Time(**ns_to_stamp(self.env.time_ns)._asdict())))

    def _end(self, ep, error=''):
        self._awaiting = None
        self._publish([ep.outcome_message(error)])
        if error:
            ep.done = True
            self.get_logger().error(f'episode ended with an error: {error}')
        else:
            self.get_logger().info(f'episode ended: success={ep.success} steps={ep.steps}')

    # --- lockstep ----------------------------------------------------------------------------
    def _on_start(self, request, response):
        ep = self.episode
        if not self._lockstep:
            response.success, response.message = False, 'real-time mode: episodes run from ' \
                '~/reset on (~/start is for lockstep: true)'
        elif self._param('expert'):
            response.success, response.message = False, 'expert=true: lockstep runs the ' \
                f'trajectories of {self.topics.command}, not the expert'
        elif ep is None or ep.done or ep.steps or self._awaiting is not None:
            response.success, response.message = False, 'no fresh episode: call ~/reset first'
        else:
            self._observe()
            response.success, response.message = True, json.dumps(
                {'task': ep.task.name, 'seed': ep.seed, 'stamp_ns': ep.env.time_ns})
        return response

    def _observe(self):
        """Publish the camera frame of the current tick once the peer has taken the rest."""
        ep = self.episode
        stamp = ep.env.time_ns
        self._awaiting, self._awaiting_since = (ep, stamp), time.monotonic()
        messages = ep.observe(camera=True)
        frame = [m for m in messages if m.topic != self.topics.joint_states]
        # The clock and the joint state of the tick go first (again at an episode's first tick:
        # the policy was activated after the reset and counts inputs from its activation on).
        # /clock is best effort and volatile: a clock published before the peer's /clock
        # subscription was matched is lost, and the peer would judge the frame by time 0.
        deadline = time.monotonic() + 10.0
        while self._clock_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        self._publish_clock()
        self._publish([m for m in messages if m.topic == self.topics.joint_states])
        # The policy reads the joint state and the clock when a camera set completes, and its
        # executor takes ready subscriptions in creation order (cameras first): sent together,
        # the frame could meet the previous state. So the frame waits for a service round trip
        # to the peer. Its request travels after this tick's messages on the same transport,
        # and the peer's executor handles ready subscriptions before services, so the answer
        # comes once the peer has taken them: the same observation meets the same state under
        # any CPU load. (Waiting for DDS acknowledgements instead costs up to a heartbeat
        # period, 3 s in Fast DDS, per observation.)
        if not self._peer.wait_for_service(timeout_sec=10.0):
            self._end(ep, f'lockstep: {self._peer.srv_name} not available (lockstep_peer '
                          'must name the node that answers the observations)')
            return
        future = self._peer.call_async(GetParameters.Request())
        future.add_done_callback(lambda _: self._send_frame(ep, stamp, frame))

    def _send_frame(self, ep, stamp, frame):
        if self._awaiting == (ep, stamp):
            self._publish(frame)

    def _check_answer(self):
        if self._awaiting is None:
            return
        ep, stamp = self._awaiting
        timeout = self._param('lockstep_timeout_s')
        if time.monotonic() - self._awaiting_since > timeout:
            self._end(ep, f'lockstep: no trajectory on {self.topics.command} for the '
                          f'observation stamped {stamp / NS_PER_S:.3f} s within {timeout:g} s '
                          f'(the policy rejected it, refused the action or is stuck: see its '
                          'log)')

    def _execute(self, ep):
        """Lockstep: run the answered trajectory for execute_steps ticks, then observe again."""
        ticks = max(self._param('execute_steps'), 1)
        for tick in range(ticks):
            ended = ep.advance()
            if ended or tick < ticks - 1:            # else _observe publishes clock and state
                self._publish_clock()
                self._publish(ep.observe(camera=False))
            if ended:
                self._end(ep)
                return
        self._observe()

    def _on_timer(self):
        ep, env = self.episode, self.env
        if ep is None:
            return
        if ep.expert is not None and not ep.done:
            self._publish([ep.expert_command()])
        ended = ep.advance()
        self._tick += 1
        if ended:
            self._end(ep)
            if self._param('auto_reset'):
                self.set_parameters([Parameter('seed', value=ep.seed + 1)])
                self._reset()
                return
        lag = self.get_clock().now().nanoseconds - env.time_ns
        if lag > self._max_lag_ns:
            self.get_logger().warning(f'simulation {lag / NS_PER_S:.2f} s behind the clock; '
                                      'skipping ahead', throttle_duration_sec=5.0)
            env.skip_time(lag)
        self._publish_clock()
        self._publish(ep.observe(camera=self._tick % self._camera_every == 0))

    def _on_command(self, msg):
        ep = self.episode
        if ep is None:
            self.get_logger().warning(f'{self.topics.command}: ignored before the first '
                                      '~/reset (autostart is false)', throttle_duration_sec=5.0)
            return
        if ep.expert is not None:
            self.get_logger().warning(f'{self.topics.command}: ignored while expert=true',
                                      throttle_duration_sec=5.0)
            return
        stamp = stamp_to_ns(msg.header.stamp)
        if self._lockstep and self._awaiting != (ep, stamp):
            self.get_logger().warning(
                f'{self.topics.command}: ignored a trajectory stamped {stamp / NS_PER_S:.3f} s: '
                'lockstep waits for the one of its current observation'
                + ('' if self._awaiting is None else
                   f' ({self._awaiting[1] / NS_PER_S:.3f} s)'), throttle_duration_sec=5.0)
            return
        try:
            if not msg.points:
                raise ValueError('points: got an empty trajectory, expected at least one point')
            width = len(msg.joint_names)
            if any(len(pt.positions) != width for pt in msg.points):
                raise ValueError(f'points[].positions: expected {width} values (one per '
                                 'joint_names entry) in every point')
            offsets = [stamp_to_ns(pt.time_from_start) for pt in msg.points]
            positions = [list(pt.positions) for pt in msg.points]
            dropped = ep.apply_trajectory(msg.joint_names, stamp, offsets, positions)
        except ValueError as exc:
            if self._lockstep:
                self._end(ep, f'lockstep: {self.topics.command}: trajectory rejected: {exc}')
            else:
                self.get_logger().error(f'{self.topics.command}: trajectory rejected: {exc}',
                                        throttle_duration_sec=1.0)
            return
        if dropped:
            self.get_logger().warning(f'{self.topics.command}: {dropped} point(s) already in '
                                      'the past were skipped', throttle_duration_sec=5.0)
        if self._lockstep:
            self._awaiting = None
            self._execute(ep)

    def _on_reset(self, request, response):
        try:
            self._reset()
        except (ValueError, RuntimeError) as exc:
            response.success, response.message = False, str(exc)
            return response
        task = self.episode.task
        response.success = True
        response.message = json.dumps({'task': task.name, 'seed': self.episode.seed,
                                       'instruction': task.instruction,
                                       'stamp_ns': self.env.time_ns})
        return response

    def _on_success(self, request, response):
        ep = self.episode
        if ep is None:
            response.success, response.message = False, 'no episode yet: call ~/reset'
            return response
        response.success = bool(ep.success or ep.checker())
        response.message = json.dumps({'task': ep.task.name, 'seed': ep.seed,
                                       'success': response.success, 'steps': ep.steps,
                                       'done': ep.done, 'instruction': ep.task.instruction})
        return response

    def destroy_node(self):
        if self.episode is not None:
            self.episode.close()
        self.ik.close()
        self.env.close()
        super().destroy_node()


def main(args=None):
    argv = sys.argv[1:] if args is None else list(args)
    user = argv[:argv.index('--ros-args')] if '--ros-args' in argv else argv
    if '-h' in user or '--help' in user:
        print(USAGE)
        return 0
    return spin_node(SimNode, args)


if __name__ == '__main__':
    sys.exit(main())

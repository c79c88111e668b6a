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
The policy node: synchronised RGB-D / point clouds + joint state + instruction -> trajectories.

A managed (lifecycle) node. configure loads the checkpoint (torch is imported there), activate
starts publishing, deactivate stops, cleanup frees the model. ROS plumbing only: conversions,
synchronisation and observation building live in spatialvla_ros.perception, inference in
spatialvla_ros.policies, the worker / watchdog / counters in spatialvla_ros.nodes.policy_runtime.
"""

import array
import collections
import dataclasses
import gc
import sys
import time

from builtin_interfaces.msg import Duration
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from diagnostic_msgs.msg import DiagnosticStatus
from diagnostic_msgs.msg import KeyValue
from rcl_interfaces.msg import FloatingPointRange
from rcl_interfaces.msg import IntegerRange
from rcl_interfaces.msg import ParameterDescriptor
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.qos import QoSDurabilityPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import Image
from sensor_msgs.msg import JointState
from sensor_msgs.msg import PointCloud2
from spatialvla_ros.core_types import ns_to_stamp
from spatialvla_ros.core_types import stamp_to_ns
from spatialvla_ros.nodes import policy_parameters
from spatialvla_ros.nodes import policy_runtime
from spatialvla_ros.perception import conversions
from spatialvla_ros.perception import observation_builder
from spatialvla_ros.perception.observation_builder import ObservationBuilder
from spatialvla_ros.perception.sync import StampSynchronizer
from spatialvla_ros_interfaces.msg import ActionChunk
from spatialvla_ros_interfaces.msg import PolicyStatus
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory
from trajectory_msgs.msg import JointTrajectoryPoint

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE
SYNC_INPUT = 'synchronised camera set'
# kind -> (message type, validating conversion). The short label (not the topic) prefixes the
# conversion's error so the rejection reason is classified from the error text alone.
_KINDS = {
    'color': (Image, lambda m: conversions.image_to_rgb(m, 'image')),
    'depth': (Image, lambda m: conversions.depth_to_meters(m, 'depth')),
    'cloud': (PointCloud2, lambda m: conversions.pointcloud2_to_numpy(m, 'cloud')),
    'camera_info': (CameraInfo, lambda m: conversions.camera_info_to_K(m, 'camera_info')),
}
Job = collections.namedtuple('Job', 'stamp_ns messages joint_state instruction received')


def _descriptor(p):
    d = ParameterDescriptor(name=p.name, description=p.description)
    if p.choices:
        d.additional_constraints = 'one of: ' + ', '.join(repr(c) for c in p.choices)
    if isinstance(p.default, float) and p.low is not None:
        d.floating_point_range = [FloatingPointRange(from_value=p.low, to_value=p.high)]
    elif isinstance(p.default, int) and p.low is not None:
        d.integer_range = [IntegerRange(from_value=p.low, to_value=p.high, step=1)]
    return d


def _to_time(stamp_ns):
    return Time(**ns_to_stamp(stamp_ns)._asdict())


def _to_duration(seconds):
    return Duration(**ns_to_stamp(round(seconds * 1e9))._asdict())


class PolicyNode(LifecycleNode):
    """Lifecycle node serving a SpatialVLA checkpoint on live ROS 2 topics."""

    def __init__(self, node_name='policy_node', **kwargs):
        super().__init__(node_name, **kwargs)
        for p in policy_parameters.NODE_PARAMETERS:
            self.declare_parameter(p.name, p.default, _descriptor(p))
        self._lifecycle = 'unconfigured'
        self._error = ''
        self._active = False
        self._policy = self._config = self._builder = self._sync = self._worker = None
        self._subs, self._pubs = [], []
        self._inputs, self._waiting = [], ''
        self._joint_state = self._instruction = None
        self._device = ''
        self._rejections = policy_runtime.RejectionLog(self._p('warn_throttle_s'))
        self._suppressed = collections.Counter()
        self._stamps = policy_runtime.StampChecker(self._p('future_tolerance_s'))
        self._watchdog = policy_runtime.InputWatchdog(self._p('input_timeout_s'))
        self._rate = policy_runtime.RateMeter()
        self._published = self._dropped_before = 0
        self._last_latency = 0.0
        self._status_pub = self.create_publisher(PolicyStatus, self._p('status_topic'), 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, self._p('diagnostics_topic'), 10)
        self.create_timer(1.0 / self._p('status_rate_hz'), self._publish_status)
        self.create_timer(0.05, self._check_inputs)

    def _p(self, name):
        return self.get_parameter(name).value

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state):
        try:
            self._configure()
        except Exception as exc:  # noqa: BLE001 - any failure leaves the node alive
            self._error = f'configure failed: {exc}'
            self.get_logger().error(self._error)
            self._teardown()
            return FAILURE
        self._error = ''
        self._lifecycle = 'inactive'
        self.get_logger().info(
            f'configured: plan {self._config.plan}, device {self._device}, cameras '
            f'{[c.name for c in self._config.data.cameras]}, inputs {self._inputs}')
        return super().on_configure(state)

    def on_activate(self, state):
        self._stamps = policy_runtime.StampChecker(self._p('future_tolerance_s'))
        self._watchdog = policy_runtime.InputWatchdog(self._p('input_timeout_s'))
        self._watchdog.reset(self._inputs + [SYNC_INPUT])
        self._sync.reset()
        self._rejections = policy_runtime.RejectionLog(self._p('warn_throttle_s'))
        self._suppressed.clear()
        rate = self._p('max_rate_hz')
        self._worker = policy_runtime.LatestWinsWorker(
            self._infer, min_period_s=1.0 / rate if rate > 0 else 0.0,
            on_error=self._on_worker_error)
        self._worker.start()
        self._waiting, self._active, self._lifecycle = '', True, 'active'
        return super().on_activate(state)

    def on_deactivate(self, state):
        self._stop_worker()
        self._lifecycle = 'inactive'
        return super().on_deactivate(state)

    def on_cleanup(self, state):
        self._teardown()
        return super().on_cleanup(state)

    def on_shutdown(self, state):
        self._teardown()
        return super().on_shutdown(state)

    def on_error(self, state):
        self._teardown()
        return SUCCESS

    def release(self):
        """Stop the worker and free the model (process exit)."""
        self._teardown()

    def _configure(self):
        policy_parameters.check_choices({p.name: self._p(p.name)
                                         for p in policy_parameters.NODE_PARAMETERS})
        self._policy, self._device = policy_runtime.load_policy(
            self._p('checkpoint_dir'), self._p('device'), self._p('dtype'),
            self._p('num_steps'), self._p('plan'))
        config = self._policy.config
        self._config = dataclasses.replace(config, data=self._data_config(config.data))
        data = self._config.data
        act = self._config.action
        self._builder = ObservationBuilder(data, self._config.encoder3d, act.names,
                                           act.state_dim)
        self._inputs = []
        reliability = (QoSReliabilityPolicy.RELIABLE if self._p('qos_reliability') == 'reliable'
                       else QoSReliabilityPolicy.BEST_EFFORT)
        sensor_qos = QoSProfile(depth=self._p('qos_depth'), reliability=reliability)
        self._key_topics = {}  # sync key -> resolved topic name
        for key, topic in observation_builder.key_topics(data).items():
            kind = key.split('/')[-1]
            self._key_topics[key] = self._subscribe(
                _KINDS[kind][0], topic, sensor_qos,
                lambda m, k=key, kd=kind: self._on_camera(k, kd, m))
        self._state_topic = self._subscribe(JointState, data.state_topic, sensor_qos,
                                            self._on_joint_state)
        latched = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                             durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
        self._instruction_topic = self._subscribe(String, data.instruction_topic, latched,
                                                  self._on_instruction, required=False)
        slop = self._p('sync_slop_s')
        self._sync = StampSynchronizer(observation_builder.sync_keys(data),
                                       data.sync_slop if slop < 0 else slop,
                                       self._p('sync_queue_size'))
        self._traj_pub = self.create_lifecycle_publisher(
            JointTrajectory, self._p('trajectory_topic'), 10)
        self._chunk_pub = self.create_lifecycle_publisher(
            ActionChunk, self._p('action_chunk_topic'), 10)
        self._pubs = [self._traj_pub, self._chunk_pub]

    def _data_config(self, data):
        """Declare cameras.<name>.* (defaults: the checkpoint's) and apply their values."""
        cameras = {}
        for cam in data.cameras:
            cameras[cam.name] = {}
            for field_name, description in policy_parameters.CAMERA_PARAMETERS:
                name = f'cameras.{cam.name}.{field_name}'
                default = getattr(cam, field_name)
                if not self.has_parameter(name):
                    self.declare_parameter(
                        name, list(default) if isinstance(default, tuple) else default,
                        ParameterDescriptor(description=description, dynamic_typing=True))
                cameras[cam.name][field_name] = self._p(name)
        return policy_parameters.data_config_with_overrides(
            data, cameras, self._p('state_topic'), self._p('instruction_topic'))

    def _subscribe(self, msg_type, topic, qos, callback, required=True):
        sub = self.create_subscription(msg_type, topic, callback, qos)
        self._subs.append(sub)
        if required:
            self._inputs.append(sub.topic_name)
        return sub.topic_name

    def _stop_worker(self):
        self._active = False
        if self._worker is not None:
            self._dropped_before += self._worker.dropped
            if not self._worker.stop(timeout=30.0):
                self.get_logger().warning('inference worker did not stop within 30 s')
            self._worker = None

    def _teardown(self):
        self._stop_worker()
        for sub in self._subs:
            self.destroy_subscription(sub)
        for pub in self._pubs:
            self.destroy_lifecycle_publisher(pub)
        self._subs, self._pubs, self._inputs = [], [], []
        self._policy = self._builder = self._sync = None
        self._joint_state = self._instruction = None
        self._lifecycle = 'unconfigured'
        gc.collect()
        torch = sys.modules.get('torch')
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------ inputs
    def _reject(self, topic, exc, default='invalid'):
        reason = policy_runtime.classify_error(exc, default)
        message, should_log = self._rejections.record(topic, reason, str(exc))
        if should_log:
            self.get_logger().warning(message)

    def _check_stamp(self, topic, msg):
        stamp_ns = stamp_to_ns(msg.header.stamp)
        self._stamps.check(topic, stamp_ns, self.get_clock().now().nanoseconds)
        return stamp_ns

    def _on_camera(self, key, kind, msg):
        if not self._active:
            return
        topic = self._key_topics[key]
        received = time.monotonic()
        try:
            stamp_ns = self._check_stamp(topic, msg)
            _KINDS[kind][1](msg)
            matched = self._sync.add(key, stamp_ns, msg)
        except Exception as exc:  # noqa: BLE001 - no input may kill the node
            self._reject(topic, exc, 'camera_info' if kind == 'camera_info' else 'invalid')
            return
        self._stamps.commit(topic, stamp_ns)
        self._watchdog.feed(topic, received)
        if matched is None:
            return
        self._watchdog.feed(SYNC_INPUT, received)
        instruction = self._instruction or self._p('default_instruction')
        if self._waiting or self._joint_state is None or not instruction:
            return
        self._worker.submit(Job(matched.stamp_ns, matched.messages, self._joint_state,
                                instruction, received))

    def _on_joint_state(self, msg):
        topic = self._state_topic
        try:
            stamp_ns = self._check_stamp(topic, msg)
            observation_builder.joint_state_to_vector(msg, self._builder.state_names, 'state')
        except Exception as exc:  # noqa: BLE001 - no input may kill the node
            self._reject(topic, exc, 'joint_names')
            return
        self._stamps.commit(topic, stamp_ns)
        self._joint_state = msg
        self._watchdog.feed(topic)

    def _on_instruction(self, msg):
        text = msg.data.strip()
        if not text:
            self._reject(self._instruction_topic,
                         policy_runtime.Rejection('invalid', 'empty instruction'))
            return
        if text != self._instruction:
            self.get_logger().info(f'instruction: {text!r}')
        self._instruction = text

    def _waiting_reason(self):
        reason = self._watchdog.reason()
        if not (self._instruction or self._p('default_instruction')):
            reason = (reason + '; ' if reason else 'waiting for input: ') + (
                f'no instruction yet on {self._instruction_topic}')
        return reason

    def _check_inputs(self):
        """Watchdog tick: stop (and say why) when inputs go stale, resume when they return."""
        if not self._active:
            return
        reason = self._waiting_reason()
        if reason and not self._waiting:
            self.get_logger().warning(reason)
            if self._worker is not None:
                self._worker.clear()
        elif self._waiting and not reason:
            self.get_logger().info('all inputs fresh again: resuming')
        self._waiting = reason

    # ------------------------------------------------------------------ inference
    def _infer(self, job):
        """Worker thread: observation -> chunk -> publish, unless anything went stale."""
        try:
            obs = self._builder.build(job.messages, job.joint_state, job.instruction,
                                      job.stamp_ns)
        except ValueError as exc:
            self._reject(SYNC_INPUT, policy_runtime.Rejection('frame', str(exc)))
            return
        seed = self._p('seed')
        try:
            chunk = self._policy.predict_chunk(obs, seed=seed if seed >= 0 else None)
            act = self._config.action
            chunk = policy_runtime.check_chunk(chunk, act.chunk_size, act.action_dim)
        except ValueError as exc:
            self._suppress('refused_action', f'not published: {exc}')
            return
        latency = time.monotonic() - job.received
        if not self._active:
            self._suppress('inactive', None)
        elif self._waiting or self._watchdog.stale():
            self._suppress('stale_input', None)
        elif latency > self._p('max_observation_age_s'):
            self._suppress('late_result', f'chunk ready {latency:.3f} s after its observation '
                           f"(max_observation_age_s {self._p('max_observation_age_s')}): "
                           'not published')
        else:
            self._publish(job, chunk, latency)

    def _suppress(self, reason, message):
        self._suppressed[reason] += 1
        if message:
            self.get_logger().warning(message, throttle_duration_sec=2.0)

    def _on_worker_error(self, exc):
        self._suppressed['inference_error'] += 1
        self._error = f'inference failed: {type(exc).__name__}: {exc}'
        self.get_logger().error(self._error, throttle_duration_sec=2.0)

    def _publish(self, job, chunk, latency):
        act = self._config.action
        names = list(act.names) or [f'action_{j}' for j in range(act.action_dim)]
        traj = JointTrajectory(joint_names=names)
        traj.header.stamp = _to_time(job.stamp_ns)
        for k in range(act.chunk_size):
            traj.points.append(JointTrajectoryPoint(
                positions=array.array('d', chunk[k].tobytes()),
                time_from_start=_to_duration((k + 1) * act.dt)))
        msg = ActionChunk(plan=self._config.plan, names=names, horizon=act.chunk_size,
                          action_dim=act.action_dim, dt=float(act.dt),
                          observation_stamp=_to_time(job.stamp_ns),
                          inference_latency=float(latency))
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.actions = array.array('f', chunk.astype('float32').tobytes())
        self._traj_pub.publish(traj)
        self._chunk_pub.publish(msg)
        self._published += 1
        self._last_latency = latency
        self._rate.tick()
        self._error = ''

    # ------------------------------------------------------------------ status
    def _status_state(self):
        if self._error:
            return PolicyStatus.STATE_ERROR, self._error
        if self._lifecycle == 'active':
            if self._waiting:
                return PolicyStatus.STATE_WAITING_FOR_INPUT, self._waiting
            return PolicyStatus.STATE_ACTIVE, self._rejections.last_reason
        if self._lifecycle == 'inactive':
            return PolicyStatus.STATE_INACTIVE, self._rejections.last_reason
        return PolicyStatus.STATE_UNCONFIGURED, ''

    def _publish_status(self):
        state, reason = self._status_state()
        total, by_reason, last = self._rejections.snapshot()
        dropped = self._dropped_before + (self._worker.dropped if self._worker else 0)
        status = PolicyStatus(state=state, last_latency=float(self._last_latency),
                              rate=float(self._rate.rate()), dropped_frames=dropped,
                              rejected_messages=total, last_rejection_reason=reason)
        status.header.stamp = self.get_clock().now().to_msg()
        self._status_pub.publish(status)
        level = {PolicyStatus.STATE_ERROR: DiagnosticStatus.ERROR,
                 PolicyStatus.STATE_WAITING_FOR_INPUT: DiagnosticStatus.WARN}.get(
                     state, DiagnosticStatus.OK)
        values = {'lifecycle_state': self._lifecycle, 'plan': getattr(self._config, 'plan', ''),
                  'device': self._device, 'published_chunks': self._published,
                  'rate_hz': f'{status.rate:.2f}', 'last_latency_s': f'{self._last_latency:.4f}',
                  'dropped_frames': dropped, 'rejected_messages': total,
                  'last_rejection_reason': last}
        values.update({f'rejected.{r}': n for r, n in by_reason.items()})
        values.update({f'suppressed.{r}': n for r, n in sorted(self._suppressed.items())})
        diag = DiagnosticArray(status=[DiagnosticStatus(
            level=level, name=f'{self.get_fully_qualified_name()}: policy',
            message=reason or self._lifecycle, hardware_id=self._device,
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])])
        diag.header.stamp = status.header.stamp
        self._diag_pub.publish(diag)


USAGE = """usage: policy_node [-h] [--ros-args ...]

SpatialVLA policy node (lifecycle: configure loads the checkpoint, activate publishes).
Start it configured and active with:  policy_launch --checkpoint-dir DIR --autostart
Parameters (--ros-args -p name:=value, or --params-file config/params/policy_node.yaml):
"""


def main(args=None):
    argv = sys.argv[1:] if args is None else list(args)
    ros_start = argv.index('--ros-args') if '--ros-args' in argv else len(argv)
    if any(a in ('-h', '--help') for a in argv[:ros_start]):
        print(USAGE + policy_parameters.describe_parameters())
        return 0
    rclpy.init(args=[sys.argv[0]] + argv)
    node = PolicyNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        try:
            node.release()
        except KeyboardInterrupt:  # a second Ctrl-C: skip the clean-up, still exit
            pass
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())

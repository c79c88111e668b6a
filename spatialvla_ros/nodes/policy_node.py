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

A managed (lifecycle) node: configure loads the checkpoint and creates the subscriptions,
publishers and watchdog timer, activate starts the worker, deactivate stops it, cleanup and
shutdown destroy what configure made. Each message is decoded once, on arrival (perception's
ObservationBuilder.decode); the synchroniser holds the arrays, the worker turns a set into an
observation and a chunk. Malformed input raises a MessageError whose `reason` is counted.
"""

import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import Node
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.qos import QoSDurabilityPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import Image
from sensor_msgs.msg import JointState
from sensor_msgs.msg import PointCloud2
from spatialvla_ros.core_types import stamp_to_ns
from spatialvla_ros.nodes import policy_messages
from spatialvla_ros.nodes import policy_parameters
from spatialvla_ros.nodes import policy_runtime
from spatialvla_ros.perception.conversions import MessageError
from spatialvla_ros.perception.observation_builder import key_topics
from spatialvla_ros.perception.observation_builder import ObservationBuilder
from spatialvla_ros.perception.observation_builder import sync_keys
from spatialvla_ros.perception.sync import StampSynchronizer
from spatialvla_ros_interfaces.msg import ActionChunk
from spatialvla_ros_interfaces.msg import PolicyStatus
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

MSG_TYPES = {'color': Image, 'depth': Image, 'cloud': PointCloud2, 'camera_info': CameraInfo}


class PolicyNode(Node):
    """Lifecycle node serving a SpatialVLA checkpoint on live ROS 2 topics."""

    def __init__(self, node_name='policy_node', **kwargs):
        super().__init__(node_name, **kwargs)
        for p in policy_parameters.NODE_PARAMETERS:
            self.declare_parameter(p.name, p.default, policy_messages.parameter_descriptor(p))
        self._lifecycle, self._error, self._waiting, self._active = 'unconfigured', '', '', False
        self._policy = self._config = self._live = self._worker = None
        self._subs, self._pubs, self._inputs, self._watch_timer = [], [], [], None
        self._device, self._threads = '', 0
        self._stats = policy_runtime.NodeStats(self._p('warn_throttle_s'))
        self._status_pub = self.create_publisher(PolicyStatus, self._p('status_topic'), 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, self._p('diagnostics_topic'), 10)
        self.create_timer(1.0 / self._p('status_rate_hz'), self._publish_status)

    def _p(self, name):
        return self.get_parameter(name).value

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state):
        try:
            self._configure()
        except Exception as exc:  # noqa: BLE001 - any failure leaves the node alive
            self._error = f'configure failed: {exc}'
            self.get_logger().error(self._error)
            self.release()
            return TransitionCallbackReturn.FAILURE
        self._error, self._lifecycle = '', 'inactive'
        self.get_logger().info(
            f'configured: plan {self._config.plan}, device {self._device}, {self._threads} '
            f'torch threads, cameras {[c.name for c in self._config.data.cameras]}, inputs '
            f'{self._inputs}')
        return super().on_configure(state)

    def on_activate(self, state):
        self._live.reset(self._p('input_timeout_s'), self._p('future_tolerance_s'))
        self._stats.reset(self._p('warn_throttle_s'))
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
        self.release()
        return super().on_cleanup(state)

    def on_shutdown(self, state):
        self.release()
        return super().on_shutdown(state)

    def on_error(self, state):
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def _configure(self):
        policy_parameters.check_choices({p.name: self._p(p.name)
                                         for p in policy_parameters.NODE_PARAMETERS})
        policy_runtime.reuse_freed_memory()
        self._policy, self._device, self._threads = policy_runtime.load_policy(
            self._p('checkpoint_dir'), self._p('device'), self._p('dtype'),
            self._p('num_steps'), self._p('plan'), self._p('num_threads'))
        self._config = self._policy.config
        data = self._data_config(self._config.data)
        act = self._config.action
        builder = ObservationBuilder(data, self._config.encoder3d, act.names, act.state_dim)
        reliable = self._p('qos_reliability') == 'reliable'
        sensor_qos = QoSProfile(depth=self._p('qos_depth'), reliability=(
            QoSReliabilityPolicy.RELIABLE if reliable else QoSReliabilityPolicy.BEST_EFFORT))
        self._key_topics = {key: self._subscribe(
            MSG_TYPES[key.rsplit('/', 1)[-1]], topic, sensor_qos,
            lambda m, k=key: self._on_camera(k, m)) for key, topic in key_topics(data).items()}
        self._state_topic = self._subscribe(JointState, data.state_topic, sensor_qos,
                                            self._on_joint_state)
        latched = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                             durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
        self._instruction_topic = self._subscribe(String, data.instruction_topic, latched,
                                                  self._on_instruction, required=False)
        slop = self._p('sync_slop_s')
        sync = StampSynchronizer(sync_keys(data), data.sync_slop if slop < 0 else slop,
                                 self._p('sync_queue_size'))
        self._live = policy_runtime.LiveInputs(builder, sync, self._inputs,
                                               self._p('default_instruction'),
                                               self._p('max_instruction_chars'))
        self._traj_pub = self.create_lifecycle_publisher(
            JointTrajectory, self._p('trajectory_topic'), 10)
        self._chunk_pub = self.create_lifecycle_publisher(
            ActionChunk, self._p('action_chunk_topic'), 10)
        self._pubs = [self._traj_pub, self._chunk_pub]
        self._watch_timer = self.create_timer(0.05, self._check_inputs)

    def _data_config(self, data):
        """Declare cameras.<name>.* (defaults: the checkpoint's) and apply their values."""
        cameras = {}
        for cam in data.cameras:
            cameras[cam.name] = {}
            for field_name, description in policy_parameters.CAMERA_PARAMETERS:
                name, default = f'cameras.{cam.name}.{field_name}', getattr(cam, field_name)
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
            self._stats.dropped_before += self._worker.dropped
            if not self._worker.stop(timeout=30.0):
                self.get_logger().warning('inference worker did not stop within 30 s')
            self._worker = None

    def release(self):
        """Stop the worker, destroy what configure made and free the model."""
        self._stop_worker()
        for sub in self._subs:
            self.destroy_subscription(sub)
        for pub in self._pubs:
            self.destroy_lifecycle_publisher(pub)
        if self._watch_timer is not None:
            self.destroy_timer(self._watch_timer)
        self._subs, self._pubs, self._inputs, self._watch_timer = [], [], [], None
        self._policy = self._live = None
        self._lifecycle = 'unconfigured'
        policy_runtime.free_memory()

    # ------------------------------------------------------------------ inputs
    def _reject(self, topic, exc):
        message, should_log = self._stats.rejections.record(topic, exc)
        if should_log:
            self.get_logger().warning(message)

    def _on_camera(self, key, msg):
        if not self._active:
            return
        topic = self._key_topics[key]
        try:
            job = self._live.camera(key, topic, msg, stamp_to_ns(msg.header.stamp),
                                    self.get_clock().now().nanoseconds, time.monotonic())
        except Exception as exc:  # noqa: BLE001 - no input may kill the node
            self._reject(topic, exc)
            return
        if job is not None:
            self._worker.submit(job)

    def _on_joint_state(self, msg):
        try:
            self._live.joint_state(self._state_topic, msg, stamp_to_ns(msg.header.stamp),
                                   self.get_clock().now().nanoseconds)
        except Exception as exc:  # noqa: BLE001 - no input may kill the node
            self._reject(self._state_topic, exc)

    def _on_instruction(self, msg):
        try:
            changed = self._live.set_instruction(msg.data)
        except MessageError as exc:
            self._reject(self._instruction_topic, exc)
            return
        if changed:
            text = self._live.instruction
            excerpt = text if len(text) <= 80 else text[:80] + '...'
            self.get_logger().info(f'instruction ({len(text)} chars): {excerpt!r}')

    def _check_inputs(self):
        """Watchdog tick: say when inputs go stale or come back (status, log, pending job)."""
        if not self._active:
            return
        reason = self._live.waiting_reason(self._instruction_topic)
        if reason and not self._waiting:
            self.get_logger().warning(reason)
            self._worker.clear()
        elif self._waiting and not reason:
            self.get_logger().info('all inputs fresh again: resuming')
        self._waiting = reason

    # ------------------------------------------------------------------ inference
    def _infer(self, job):
        """Worker thread: observation -> chunk -> publish, unless anything went stale."""
        try:
            obs = self._live.builder.assemble(job.arrays, job.state, job.instruction,
                                              job.stamp_ns)
        except MessageError as exc:
            self._reject(policy_runtime.SYNC_INPUT, exc)
            return
        seed = self._p('seed')
        try:  # (H, A) float32; the processor refuses non-finite actions with a ValueError
            chunk = self._policy.predict_chunk(obs, seed=seed if seed >= 0 else None)
        except ValueError as exc:
            self._stats.suppress('refused_action')
            self.get_logger().warning(f'not published: {exc}', throttle_duration_sec=2.0)
            return
        latency, max_age = time.monotonic() - job.received, self._p('max_observation_age_s')
        if not self._active:
            self._stats.suppress('inactive')
        elif self._live.watchdog.stale():
            self._stats.suppress('stale_input')
        elif latency > max_age:
            self._stats.suppress('late_result')
            self.get_logger().warning(f'chunk ready {latency:.3f} s after its observation '
                                      f'(max_observation_age_s {max_age}): not published',
                                      throttle_duration_sec=2.0)
        else:
            self._publish(job, chunk, latency)

    def _on_worker_error(self, exc):
        self._stats.suppress('inference_error')
        self._error = f'inference failed: {type(exc).__name__}: {exc}'
        self.get_logger().error(self._error, throttle_duration_sec=2.0)

    def _publish(self, job, chunk, latency):
        traj, msg = policy_messages.chunk_messages(self._config, chunk, job.stamp_ns, latency)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._traj_pub.publish(traj)
        self._chunk_pub.publish(msg)
        self._stats.published(latency)
        self._error = ''

    # ------------------------------------------------------------------ status
    def _publish_status(self):
        if self._error:
            state, reason = PolicyStatus.STATE_ERROR, self._error
        elif self._lifecycle == 'active' and self._waiting:
            state, reason = PolicyStatus.STATE_WAITING_FOR_INPUT, self._waiting
        elif self._lifecycle in ('active', 'inactive'):
            state = getattr(PolicyStatus, f'STATE_{self._lifecycle.upper()}')
            reason = self._stats.rejections.last_reason
        else:
            state, reason = PolicyStatus.STATE_UNCONFIGURED, ''
        values = self._stats.values(self._worker.dropped if self._worker else 0)
        values.update(lifecycle_state=self._lifecycle, plan=getattr(self._config, 'plan', ''),
                      device=self._device, num_threads=self._threads)
        status, diag = policy_messages.status_messages(
            state, reason, values, self._stats, f'{self.get_fully_qualified_name()}: policy',
            self.get_clock().now().to_msg())
        self._status_pub.publish(status)
        self._diag_pub.publish(diag)


USAGE = """usage: policy_node [-h] [--ros-args ...]

SpatialVLA policy node (lifecycle: configure loads the checkpoint, activate publishes).
Start it configured and active with:  policy_launch --checkpoint-dir DIR --autostart
Parameters (--ros-args -p name:=value, or --params-file config/params/policy_node.yaml):
"""


def main(args=None):
    argv = sys.argv[1:] if args is None else list(args)
    if {'-h', '--help'} & set(argv[:argv.index('--ros-args') if '--ros-args' in argv else None]):
        print(USAGE + policy_parameters.describe_parameters())
        return 0
    rclpy.init(args=[sys.argv[0]] + argv)
    node = PolicyNode()
    try:
        rclpy.spin(node)
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

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

A managed (lifecycle) node: configure loads the checkpoint, creates the subscriptions,
publishers and watchdog timer and runs one warm-up chunk; activate starts the worker, deactivate
stops it, cleanup and shutdown destroy what configure made. This module only wires rclpy to the
ROS-free policy_runtime.Session (inputs decoded once, worker, waiting state), policy_messages
and policy_parameters.
"""

import sys

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TransformStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.lifecycle import Node
from rclpy.lifecycle import TransitionCallbackReturn
from sensor_msgs.msg import JointState
from spatialvla_ros.nodes import policy_markers
from spatialvla_ros.nodes import policy_messages
from spatialvla_ros.nodes import policy_parameters
from spatialvla_ros.nodes import policy_runtime
from spatialvla_ros.nodes.spin import spin_node
from spatialvla_ros.perception.observation_builder import key_topics
from spatialvla_ros.policies.safety import SafetyFilter
from spatialvla_ros_interfaces.msg import ActionChunk
from spatialvla_ros_interfaces.msg import PolicyStatus
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray


class PolicyNode(Node):
    """Lifecycle node serving a SpatialVLA checkpoint on live ROS 2 topics."""

    def __init__(self, node_name='policy_node', **kwargs):
        super().__init__(node_name, **kwargs)
        for p in policy_parameters.NODE_PARAMETERS:
            self.declare_parameter(p.name, p.default, policy_messages.parameter_descriptor(p))
        self._lifecycle, self._error = 'unconfigured', ''
        self._session = self._config = self._watch_timer = self._markers = None
        self._subs, self._pubs, self._inputs = [], [], []
        self._device, self._threads, self._warmup_s = '', 0, 0.0
        self._safety = ''
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
            f'torch threads, compiled {self._session.policy.compiled}, warm-up chunk '
            f'{self._warmup_s:.2f} s, cameras {[c.name for c in self._config.data.cameras]}, '
            f'inputs {self._inputs}, {self._safety}')
        return super().on_configure(state)

    def on_activate(self, state):
        self._session.start(self._p('input_timeout_s'), self._p('future_tolerance_s'),
                            self._p('warn_throttle_s'), self._p('max_rate_hz'))
        self._lifecycle = 'active'
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
        policy, self._device, self._threads = policy_runtime.load_policy(
            self._p('checkpoint_dir'), self._p('device'), self._p('dtype'),
            self._p('num_steps'), self._p('plan'), self._p('num_threads'), self._p('compile'))
        self._config = policy.config
        data = self._data_config(self._config.data)
        qos = policy_messages.sensor_qos(self._p('qos_reliability'), self._p('qos_depth'))
        self._key_topics = {key: self._subscribe(
            policy_messages.INPUT_TYPES[key.rsplit('/', 1)[-1]], topic, qos,
            lambda m, k=key: self._on_camera(k, m)) for key, topic in key_topics(data).items()}
        self._state_topic = self._subscribe(JointState, data.state_topic, qos,
                                            self._on_joint_state)
        self._instruction_topic = self._subscribe(String, data.instruction_topic,
                                                  policy_messages.LATCHED_QOS,
                                                  self._on_instruction, required=False)
        if data.camera_pose_topic:
            self._pose_topic = self._subscribe(TransformStamped, data.camera_pose_topic,
                                               policy_messages.LATCHED_QOS,
                                               self._on_camera_pose, required=False)
        live = policy_runtime.LiveInputs.for_policy(
            self._config, data, self._inputs, self._p('sync_slop_s'),
            self._p('sync_queue_size'), self._p('default_instruction'),
            self._p('max_instruction_chars'), self._p('require_camera_pose'),
            self._p('camera_pose_max_age_s'))
        self._session = policy_runtime.Session(policy, live, self._stats, self._p,
                                               self._publish, self.get_logger(),
                                               self._on_worker_error, self._now_ns,
                                               self._safety_filter())
        self._traj_pub = self.create_lifecycle_publisher(
            JointTrajectory, self._p('trajectory_topic'), 10)
        self._chunk_pub = self.create_lifecycle_publisher(
            ActionChunk, self._p('action_chunk_topic'), 10)
        self._pubs = [self._traj_pub, self._chunk_pub]
        self._configure_markers()
        self._watch_timer = self.create_timer(
            0.05, lambda: self._session.check_inputs(self._instruction_topic))
        # The first chunk is slow (and compiles a compiled policy): take it before activation,
        # so that it never lands on a live observation.
        self._warmup_s = policy.warmup()

    def _configure_markers(self):
        """publish_markers: the chunk's end-effector path as a MarkerArray (policy_markers)."""
        if not self._p('publish_markers'):
            return
        self._markers = policy_markers.ChunkMarkers(self._config.action.names,
                                                    self._p('marker_link'))
        if self._p('robot_description'):
            self._markers.set_robot(self._p('robot_description'),
                                    "parameter 'robot_description'")
        else:
            self._subscribe(String, 'robot_description', policy_messages.LATCHED_QOS,
                            self._on_robot_description, required=False)
        self._marker_pub = self.create_lifecycle_publisher(
            MarkerArray, self._p('marker_topic'), 10)
        self._pubs.append(self._marker_pub)

    def _on_robot_description(self, msg):
        try:
            self._markers.set_robot(msg.data, 'topic robot_description')
        except ValueError as exc:
            self.get_logger().error(f'markers off: {exc}')

    def _safety_filter(self):
        """Build the safety filter from the checkpoint's limits and the safety parameters."""
        act = self._config.action
        if act.state_dim < act.action_dim:
            raise ValueError(f'safety filter: action.state_dim={act.state_dim} < action_dim='
                             f'{act.action_dim}: the joint state cannot give the current '
                             'position of every commanded joint (set action.names)')
        config, self._safety = policy_parameters.safety_config(act, {
            name: self._p(name) for name in ('safety_mode', 'velocity_limit_scale',
                                             'acceleration_limit_scale', 'max_first_step_s')})
        return SafetyFilter(config, act.action_dim)

    def _data_config(self, data):
        """Declare cameras.<name>.* (defaults: the checkpoint's) and apply their values."""
        cameras = {cam.name: {} for cam in data.cameras}
        for cam, field_name, name, default, description in (
                policy_parameters.camera_parameters(data)):
            if not self.has_parameter(name):
                self.declare_parameter(name, default, ParameterDescriptor(
                    description=description, dynamic_typing=True))
            cameras[cam][field_name] = self._p(name)
        return policy_parameters.data_config_with_overrides(
            data, cameras, self._p('state_topic'), self._p('instruction_topic'),
            self._p('camera_pose_topic'), self._p('base_frame'))

    def _subscribe(self, msg_type, topic, qos, callback, required=True):
        sub = self.create_subscription(msg_type, topic, callback, qos)
        self._subs.append(sub)
        if required:
            self._inputs.append(sub.topic_name)
        return sub.topic_name

    def _stop_worker(self):
        if self._session is not None and not self._session.stop(timeout_s=30.0):
            self.get_logger().warning('inference worker did not stop within 30 s')

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
        self._session, self._lifecycle, self._warmup_s = None, 'unconfigured', 0.0
        self._markers = None
        policy_runtime.free_memory()

    # ------------------------------------------------------------------ inputs and outputs
    def _on_camera(self, key, msg):
        self._session.camera(key, self._key_topics[key], msg, self.get_clock().now().nanoseconds)

    def _on_joint_state(self, msg):
        self._session.joint_state(self._state_topic, msg, self.get_clock().now().nanoseconds)
        if self._markers is not None:
            self._markers.executed(msg.name, msg.position)

    def _on_camera_pose(self, msg):
        if self._session is not None:
            self._session.camera_pose(self._pose_topic, msg)

    def _on_instruction(self, msg):
        self._session.instruction(self._instruction_topic, msg.data)

    def _on_worker_error(self, exc):
        self._stats.suppress('inference_error')
        self._error = f'inference failed: {type(exc).__name__}: {exc}'
        self.get_logger().error(self._error, throttle_duration_sec=2.0)

    def _now_ns(self):
        return self.get_clock().now().nanoseconds

    def _publish(self, job, chunk, latency, start_ns):
        """Worker thread: publish a chunk the session may still publish."""
        traj, msg = policy_messages.chunk_messages(self._config, chunk, job.stamp_ns, latency,
                                                   start_ns)
        msg.header.stamp = self.get_clock().now().to_msg()
        if not self._p('dry_run'):
            self._traj_pub.publish(traj)
        self._chunk_pub.publish(msg)
        markers = self._markers.message(chunk, job.stamp_ns) if self._markers else None
        if markers is not None:
            self._marker_pub.publish(markers)
        self._stats.published(latency)
        self._error = ''

    def _publish_status(self):
        session = self._session
        state, reason = policy_messages.status_state(
            self._lifecycle, self._error, session.waiting if session else '',
            self._stats.rejections.last_reason)
        values = self._stats.values(session.worker.dropped if session and session.worker else 0)
        values.update(self._stats.cadence_values(self._now_ns()))
        values.update(lifecycle_state=self._lifecycle, plan=getattr(self._config, 'plan', ''),
                      device=self._device, num_threads=self._threads,
                      warmup_s=f'{self._warmup_s:.3f}', dry_run=self._p('dry_run'),
                      safety=self._safety)
        status, diag = policy_messages.status_messages(
            state, reason, values, self._stats, f'{self.get_fully_qualified_name()}: policy',
            self.get_clock().now().to_msg())
        self._status_pub.publish(status)
        self._diag_pub.publish(diag)


def main(args=None):
    argv = sys.argv[1:] if args is None else list(args)
    if policy_parameters.help_requested(argv):
        print(policy_parameters.USAGE + policy_parameters.describe_parameters())
        return 0
    return spin_node(PolicyNode, [sys.argv[0]] + argv, release=PolicyNode.release)


if __name__ == '__main__':
    sys.exit(main())

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
The policy node's ROS types and messages, built from plain values (no rclpy node needed).

A chunk becomes a JointTrajectory (for a joint_trajectory_controller) and an ActionChunk
(float32, as the model gave it); the node's state and counters become a PolicyStatus and a
DiagnosticArray; a NodeParameter becomes its ParameterDescriptor, the QoS parameters a
QoSProfile; INPUT_TYPES gives the message type of each kind of camera input.
"""

import array

from builtin_interfaces.msg import Duration
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from diagnostic_msgs.msg import DiagnosticStatus
from diagnostic_msgs.msg import KeyValue
import numpy as np
from rcl_interfaces.msg import FloatingPointRange
from rcl_interfaces.msg import IntegerRange
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.qos import QoSDurabilityPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import Image
from sensor_msgs.msg import PointCloud2
from spatialvla_ros.core_types import ns_to_stamp
from spatialvla_ros_interfaces.msg import ActionChunk
from spatialvla_ros_interfaces.msg import PolicyStatus
from trajectory_msgs.msg import JointTrajectory
from trajectory_msgs.msg import JointTrajectoryPoint

# Message type of each kind of camera input (the last part of a synchroniser key).
INPUT_TYPES = {'color': Image, 'depth': Image, 'cloud': PointCloud2, 'camera_info': CameraInfo}
# The instruction: the last one published reaches a node that subscribes later.
LATCHED_QOS = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                         durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)


def parameter_descriptor(p):
    """Return the ParameterDescriptor of a NodeParameter (description, range, choices)."""
    d = ParameterDescriptor(name=p.name, description=p.description)
    if p.choices:
        d.additional_constraints = 'one of: ' + ', '.join(repr(c) for c in p.choices)
    if isinstance(p.default, float) and p.low is not None:
        d.floating_point_range = [FloatingPointRange(from_value=p.low, to_value=p.high)]
    elif isinstance(p.default, int) and p.low is not None:
        d.integer_range = [IntegerRange(from_value=p.low, to_value=p.high, step=1)]
    return d


def sensor_qos(reliability, depth):
    """Return the QoS of the camera and joint state subscriptions (reliable / best_effort)."""
    return QoSProfile(depth=depth, reliability=QoSReliabilityPolicy.RELIABLE
                      if reliability == 'reliable' else QoSReliabilityPolicy.BEST_EFFORT)


def to_time(stamp_ns):
    return Time(**ns_to_stamp(stamp_ns)._asdict())


def to_duration(seconds):
    return Duration(**ns_to_stamp(int(round(seconds * 1e9)))._asdict())


def chunk_messages(config, chunk, stamp_ns, latency, start_ns=None):
    """
    (JointTrajectory, ActionChunk) of one chunk, stamped with its observation's stamp.

    chunk: (n, action_dim) float32 in robot units (n <= chunk_size: sync sends the executed
    actions only). start_ns: the trajectory's stamp when it is not the observation's (sync
    starts a chunk when it is ready). The ActionChunk's header stamp (publication time) is left
    to the caller.
    """
    act, stamp = config.action, to_time(stamp_ns)
    names = list(act.names) or [f'action_{j}' for j in range(act.action_dim)]
    traj = JointTrajectory(joint_names=names, points=[JointTrajectoryPoint(
        positions=chunk[k].tolist(), time_from_start=to_duration((k + 1) * act.dt))
        for k in range(len(chunk))])
    traj.header.stamp = stamp if start_ns is None else to_time(start_ns)
    msg = ActionChunk(plan=config.plan, names=names, horizon=len(chunk),
                      action_dim=act.action_dim, dt=float(act.dt), observation_stamp=stamp,
                      inference_latency=float(latency),
                      actions=array.array('f', np.ascontiguousarray(chunk, np.float32).tobytes()))
    return traj, msg


def status_state(lifecycle, error='', waiting='', last_rejection=''):
    """
    (PolicyStatus.STATE_*, reason) of the node.

    lifecycle: 'unconfigured', 'inactive' or 'active'; an error wins over everything, waiting
    for input over 'active'; an inactive or active node gives its last rejection as reason.
    """
    if error:
        return PolicyStatus.STATE_ERROR, error
    if lifecycle == 'active' and waiting:
        return PolicyStatus.STATE_WAITING_FOR_INPUT, waiting
    if lifecycle in ('active', 'inactive'):
        return getattr(PolicyStatus, f'STATE_{lifecycle.upper()}'), last_rejection
    return PolicyStatus.STATE_UNCONFIGURED, ''


def status_messages(state, reason, values, stats, name, stamp):
    """
    (PolicyStatus, DiagnosticArray) of the node's state and counters.

    state: a PolicyStatus.STATE_*; reason: why (waiting, error, last rejection); values: the
    diagnostic key/values (runtime NodeStats.values plus the node's own); stats: NodeStats.
    """
    status = PolicyStatus(state=state, last_latency=stats.last_latency, rate=stats.rate.rate(),
                          dropped_frames=values['dropped_frames'],
                          rejected_messages=values['rejected_messages'],
                          last_rejection_reason=reason)
    status.header.stamp = stamp
    level = {PolicyStatus.STATE_ERROR: DiagnosticStatus.ERROR,
             PolicyStatus.STATE_WAITING_FOR_INPUT: DiagnosticStatus.WARN}.get(
                 state, DiagnosticStatus.OK)
    diag = DiagnosticArray(status=[DiagnosticStatus(
        level=level, name=name, message=reason or values.get('lifecycle_state', ''),
        hardware_id=str(values.get('device', '')),
        values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])])
    diag.header.stamp = stamp
    return status, diag


__all__ = ['chunk_messages', 'INPUT_TYPES', 'LATCHED_QOS', 'parameter_descriptor', 'sensor_qos',
           'status_messages', 'status_state', 'to_duration', 'to_time']

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


"""The rclpy client side of the closed loop: resets the simulator, drives the policy node.

For every episode the client deactivates the policy node, sets the simulator's `task` /
`seed` / `max_steps` parameters, calls its ~/reset service (the new instruction is latched on
/spatialvla/instruction), activates the policy and waits for /spatialvla/episode_outcome. It
records success, time to success (simulated ticks x control period) and the policy's chunk
latencies (`evaluation.closed_loop.EpisodeResult`). In lockstep (`options.lockstep`) the
simulator waits for the policy, so the client starts each episode with the simulator's ~/start
once the policy is active; an episode the simulator had to cut short (no answer, a trajectory
it could not execute) raises a LockstepError with the node's reason and the policy's log.

Lifecycle requests go by the node's actual state (`nodes.lifecycle_client`), so a slow node
delays a run instead of ending it. The client runs in its own rclpy context with the ROS domain
it is given, beside any other ROS code of the process.
"""

import json
import threading
import time

from rcl_interfaces.msg import Parameter
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.msg import ParameterValue
from rcl_interfaces.srv import SetParameters
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import JointState
from spatialvla_ros.core_types import NS_PER_S
from spatialvla_ros.core_types import stamp_to_ns
from spatialvla_ros.evaluation.closed_loop import EpisodeResult
from spatialvla_ros.evaluation.closed_loop import time_to_success_s
from spatialvla_ros.evaluation.execution_metrics import Trajectory
from spatialvla_ros.nodes.lifecycle_client import call
from spatialvla_ros.nodes.lifecycle_client import LifecycleClient
from spatialvla_ros.sim.tasks import MAX_STEPS
from spatialvla_ros_interfaces.msg import ActionChunk
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

AUTOSTART_PATIENCE_S = 15.0   # a stable state this long means autostart is not coming
LOCKSTEP_ANSWER_S = 60.0      # the simulator's lockstep_timeout_s default, per chunk


class LockstepError(RuntimeError):
    """The simulator ended a lockstep episode because the policy did not answer properly."""


class ClosedLoopClient:
    """rclpy client of the loop (its own context, so it can run beside other ROS code)."""

    def __init__(self, options, domain_id=None):
        self.options = options
        self._context = rclpy.Context()
        rclpy.init(context=self._context, domain_id=domain_id)
        self.node = rclpy.create_node('closed_loop_evaluator', context=self._context)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._lock = threading.Lock()
        self._outcomes, self._chunks, self._joints, self._trajectories = [], [], [], []
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        node = self.node
        node.create_subscription(String, options.outcome_topic, self._on_outcome, reliable)
        node.create_subscription(ActionChunk, options.chunk_topic, self._on_chunk, reliable)
        node.create_subscription(JointState, options.joint_states_topic, self._on_joints,
                                 reliable)
        node.create_subscription(JointTrajectory, options.trajectory_topic,
                                 self._on_trajectory, reliable)
        self._reset = node.create_client(Trigger, f'{options.sim_node}/reset')
        self._set_params = node.create_client(SetParameters,
                                              f'{options.sim_node}/set_parameters')
        self._start = node.create_client(Trigger, f'{options.sim_node}/start')
        self.policy = LifecycleClient(node, options.policy_node)
        self._thread.start()

    def _spin(self):
        try:
            self._executor.spin()
        except (ExternalShutdownException, Exception):  # noqa: BLE001 - context shut down
            pass

    def close(self):
        self._executor.shutdown()
        self.node.destroy_node()
        self._context.try_shutdown()
        self._thread.join(timeout=5.0)

    # ------------------------------------------------------------------ callbacks
    def _on_outcome(self, msg):
        try:
            outcome = json.loads(msg.data)
        except ValueError:
            return
        with self._lock:
            self._outcomes.append((time.monotonic(), outcome))

    def _on_chunk(self, msg):
        with self._lock:
            self._chunks.append((time.monotonic(), float(msg.inference_latency)))

    def _on_trajectory(self, msg):
        # (arrival, stamp, points, dt) [ns], arrival on the simulator's clock: the stamp of
        # the newest joint state (the tick it was taken at), so a simulator that lags the
        # system clock under load still places it right; never before its own stamp (lockstep
        # waits for it).
        if not msg.points:
            return
        stamp = stamp_to_ns(msg.header.stamp)
        offsets = [stamp_to_ns(p.time_from_start) for p in msg.points]
        dt = offsets[0] if len(offsets) == 1 else offsets[1] - offsets[0]
        with self._lock:
            now = self._joints[-1][0] if self._joints else stamp
            self._trajectories.append((max(now, stamp), stamp, len(offsets), dt))

    def _on_joints(self, msg):
        with self._lock:
            self._joints.append((stamp_to_ns(msg.header.stamp), list(msg.position)))

    # ------------------------------------------------------------------ services
    def policy_state(self, timeout_s=10.0):
        """Return the policy node's lifecycle state label ('' when it does not answer)."""
        return self.policy.state(timeout_s)

    def ensure_policy_state(self, wanted, timeout_s=120.0, processes=(), patience_s=0.0):
        """Bring the policy node to `wanted` from whatever state it is in (LifecycleError)."""
        return self.policy.ensure(wanted, timeout_s, processes, patience_s)

    def wait_ready(self, processes=()):
        """Block until the simulator's services exist and the policy node is active."""
        timeout = self.options.startup_timeout_s
        clients = (self._reset, self._set_params) + self.policy.clients \
            + ((self._start,) if self.options.lockstep else ())
        deadline = time.monotonic() + timeout
        while not all(c.service_is_ready() for c in clients):
            if time.monotonic() > deadline:
                missing = [c.srv_name for c in clients if not c.service_is_ready()]
                raise TimeoutError(f'services not available within {timeout:.0f} s: {missing}')
            for proc in processes:
                proc.check()
            time.sleep(0.1)
        # policy_launch --autostart brings the node up itself: step in only if it stalls.
        self.ensure_policy_state('active', max(deadline - time.monotonic(), 1.0), processes,
                                 patience_s=AUTOSTART_PATIENCE_S)

    def _set_sim(self, **values):
        request = SetParameters.Request()
        for name, value in values.items():
            if isinstance(value, str):
                pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
            else:
                pv = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
            request.parameters.append(Parameter(name=name, value=pv))
        answer = call(self._set_params, request)
        bad = [r.reason for r in answer.results if not r.successful]
        if bad:
            raise ValueError(f'{self.options.sim_node}: parameters refused: {bad}')

    # ------------------------------------------------------------------ episodes
    def run_episode(self, task, seed, processes=()):
        """One episode from reset to outcome; returns an EpisodeResult."""
        opts = self.options
        self.ensure_policy_state('inactive', processes=processes)
        self._set_sim(task=task, seed=int(seed), max_steps=int(opts.max_steps))
        with self._lock:
            self._joints, self._trajectories = [], []
        answer = call(self._reset, Trigger.Request())
        if not answer.success:
            raise RuntimeError(f'{opts.sim_node}/reset failed: {answer.message}')
        episode = json.loads(answer.message)
        instruction, t0 = episode.get('instruction', ''), int(episode.get('stamp_ns', 0))
        start = time.monotonic()
        with self._lock:
            self._chunks = []
        self.ensure_policy_state('active', processes=processes)
        limit = opts.max_steps if opts.max_steps > 0 else MAX_STEPS[task]
        timeout = limit / opts.rate_hz * 4 + 60.0
        if opts.lockstep:
            answer = call(self._start, Trigger.Request())
            if not answer.success:
                raise RuntimeError(f'{opts.sim_node}/start failed: {answer.message}')
            # The simulator bounds every answer (lockstep_timeout_s) and then ends the episode.
            timeout = limit * LOCKSTEP_ANSWER_S + 60.0
        outcome = None
        while outcome is None:
            with self._lock:
                outcome = next((o for t, o in self._outcomes if t >= start
                                and o.get('seed') == seed and o.get('task') == task), None)
            if outcome is None:
                if time.monotonic() - start > timeout:
                    raise TimeoutError(f'{task} seed {seed}: no episode outcome within '
                                       f'{timeout:.0f} s')
                for proc in processes:
                    proc.check()
                time.sleep(0.02)
        wall = time.monotonic() - start
        if outcome.get('error'):
            raise LockstepError(f'{task} seed {seed}: {outcome["error"]}' + ''.join(
                f'\n{p.log_tail()}' for p in processes if 'policy' in p.name))
        with self._lock:
            chunks = [lat for t, lat in self._chunks if t >= start]
            joints = sorted(dict(self._joints).items())   # one per stamp, in time order
            sent = sorted(self._trajectories)
        success = bool(outcome.get('success'))
        steps = int(outcome.get('steps', 0))
        # Joint states of the episode itself, from its first tick (stamped as the reset says)
        # to its last (the real-time simulator keeps publishing after the end): one per tick,
        # so counted, not timed (a simulator that falls behind skips its clock ahead, and its
        # ticks are then further apart than the control period).
        joints = [(t, q) for t, q in joints if t >= t0][:steps + 1]
        end = joints[-1][0] if joints else t0
        joints = [((t - t0) / NS_PER_S, q) for t, q in joints]
        trajectories = [Trajectory((a - t0) / NS_PER_S, (s - t0) / NS_PER_S, n, dt / NS_PER_S)
                        for a, s, n, dt in sent if t0 <= a <= end]
        return EpisodeResult(
            task=task, seed=int(seed), instruction=instruction, success=success, steps=steps,
            time_to_success_s=time_to_success_s(success, steps, opts.rate_hz), wall_s=wall,
            chunks=len(chunks), latencies_s=chunks, joint_times_s=[t for t, _ in joints],
            joint_positions=[q for _, q in joints], trajectories=trajectories)

    def run(self, processes=(), progress=None):
        """Every episode of every task; `progress(result, done, total)` after each."""
        opts = self.options
        total = len(opts.tasks) * opts.episodes
        results = []
        for task in opts.tasks:
            for seed in opts.seeds():
                result = self.run_episode(task, seed, processes)
                results.append(result)
                if progress is not None:
                    progress(result, len(results), total)
        self.ensure_policy_state('inactive', processes=processes)
        return results


__all__ = ['ClosedLoopClient', 'LockstepError']

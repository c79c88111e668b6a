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


"""Closed-loop evaluation: simulator node + policy node as separate processes over DDS.

For every task, N seeded episodes run one after the other: the evaluator deactivates the
policy node, sets the simulator's `task` / `seed` / `max_steps` parameters, calls its ~/reset
service (the new instruction is latched on /spatialvla/instruction), activates the policy and
waits for /spatialvla/episode_outcome. It records success, time to success (simulated ticks x
control period) and the policy's chunk latencies.

Held-out seeds: demonstrations are generated with seeds 0, 1, 2, ... (`generate_demos
--seed-start 0`), so closed-loop episodes use seeds from HELD_OUT_SEED_START = 1,000,000 on
(episode i of every task: seed 1,000,000 + i). A seed fixes the object layout, the target and
the instruction (`sim.tasks.sample_episode`), so these scenes never appear in training.
"""

import argparse
from dataclasses import dataclass
from dataclasses import field
import json
import os
import sys
import threading
import time

HELD_OUT_SEED_START = 1_000_000


@dataclass(frozen=True)
class ClosedLoopOptions:
    tasks: tuple = ('reach',)
    episodes: int = 10                   # per task
    seed_start: int = HELD_OUT_SEED_START
    max_steps: int = 0                   # control ticks per episode (0: the task default)
    rate_hz: float = 10.0                # simulator control rate
    image_size: int = 128                # simulator camera (square) [px]
    fov_deg: float = 60.0                # simulator camera field of view [deg]
    execute_steps: int = 0               # actions executed per chunk before the next one
    #                                      (0: a new chunk for every camera frame)
    policy_seed: int = 0                 # noise seed of the policy (-1: fresh noise)
    sim_node: str = '/sim_node'
    policy_node: str = '/policy_node'
    outcome_topic: str = '/spatialvla/episode_outcome'
    chunk_topic: str = '/spatialvla/action_chunk'
    joint_states_topic: str = '/joint_states'
    startup_timeout_s: float = 180.0     # loading the nodes (torch import, checkpoint)


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

    def summary(self):
        return {k: v for k, v in self.__dict__.items()
                if k not in ('latencies_s', 'joint_times_s', 'joint_positions')}


def policy_overrides(options, dt=0.1):
    """Policy node parameters for a closed-loop run."""
    params = {'seed': int(options.policy_seed)}
    if options.execute_steps > 0:
        params['max_rate_hz'] = 1.0 / (options.execute_steps * dt)
    return params


def sim_parameters(options):
    return {'task': options.tasks[0], 'seed': int(options.seed_start),
            'max_steps': int(options.max_steps), 'rate_hz': float(options.rate_hz),
            'camera_rate_hz': float(options.rate_hz), 'image_width': int(options.image_size),
            'image_height': int(options.image_size), 'camera_fov_deg': float(options.fov_deg),
            'cloud_topic': ''}


class ClosedLoopEvaluator:
    """rclpy client side of the loop (its own context, so it can run beside other ROS code)."""

    def __init__(self, options):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile
        from rclpy.qos import ReliabilityPolicy
        from lifecycle_msgs.srv import ChangeState
        from lifecycle_msgs.srv import GetState
        from rcl_interfaces.srv import SetParameters
        from sensor_msgs.msg import JointState
        from spatialvla_ros_interfaces.msg import ActionChunk
        from std_msgs.msg import String
        from std_srvs.srv import Trigger

        self.options = options
        self._context = rclpy.Context()
        rclpy.init(context=self._context)
        self.node = rclpy.create_node('closed_loop_evaluator', context=self._context)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._lock = threading.Lock()
        self._outcomes, self._chunks, self._joints = [], [], []
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        node = self.node
        node.create_subscription(String, options.outcome_topic, self._on_outcome, reliable)
        node.create_subscription(ActionChunk, options.chunk_topic, self._on_chunk, reliable)
        node.create_subscription(JointState, options.joint_states_topic, self._on_joints,
                                 reliable)
        self._reset = node.create_client(Trigger, f'{options.sim_node}/reset')
        self._set_params = node.create_client(SetParameters,
                                              f'{options.sim_node}/set_parameters')
        self._change = node.create_client(ChangeState, f'{options.policy_node}/change_state')
        self._get = node.create_client(GetState, f'{options.policy_node}/get_state')
        self._types = {'Trigger': Trigger, 'SetParameters': SetParameters,
                       'ChangeState': ChangeState, 'GetState': GetState}
        self._thread.start()

    def _spin(self):
        from rclpy.executors import ExternalShutdownException
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

    def _on_joints(self, msg):
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        with self._lock:
            self._joints.append((stamp, list(msg.position)))

    # ------------------------------------------------------------------ services
    def _call(self, client, request, timeout_s=30.0):
        future = client.call_async(request)
        deadline = time.monotonic() + timeout_s
        while not future.done():
            if time.monotonic() > deadline:
                raise TimeoutError(f'{client.srv_name}: no answer within {timeout_s:.0f} s')
            time.sleep(0.005)
        return future.result()

    def policy_state(self, timeout_s=10.0):
        """Return the policy node's lifecycle state label.

        '' when it does not answer: a node that is configuring does not serve its services
        until it is done.
        """
        if not self._get.service_is_ready():
            return ''
        try:
            answer = self._call(self._get, self._types['GetState'].Request(), timeout_s)
        except TimeoutError:
            return ''
        return answer.current_state.label

    def _transition(self, transition_id):
        request = self._types['ChangeState'].Request()
        request.transition.id = transition_id
        answer = self._call(self._change, request, 60.0)
        if not answer.success:
            raise RuntimeError(f'{self.options.policy_node}: lifecycle transition '
                               f'{transition_id} failed (see the policy log)')

    def wait_ready(self, processes=()):
        """Block until the simulator's services exist and the policy node is active."""
        from spatialvla_ros.tools.processes import wait_until

        timeout = self.options.startup_timeout_s
        clients = (self._reset, self._set_params, self._change, self._get)
        if not wait_until(lambda: all(c.service_is_ready() for c in clients), timeout,
                          0.1, processes):
            missing = [c.srv_name for c in clients if not c.service_is_ready()]
            raise TimeoutError(f'services not available within {timeout:.0f} s: {missing}')
        if not wait_until(lambda: self.policy_state(2.0) == 'active', timeout, 0.2, processes):
            raise TimeoutError(f'{self.options.policy_node} not active within {timeout:.0f} s '
                               '(checkpoint loading failed? see the policy log)')

    def _set_sim(self, **values):
        from rcl_interfaces.msg import Parameter
        from rcl_interfaces.msg import ParameterType
        from rcl_interfaces.msg import ParameterValue

        request = self._types['SetParameters'].Request()
        for name, value in values.items():
            if isinstance(value, str):
                pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
            else:
                pv = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
            request.parameters.append(Parameter(name=name, value=pv))
        answer = self._call(self._set_params, request)
        bad = [r.reason for r in answer.results if not r.successful]
        if bad:
            raise ValueError(f'{self.options.sim_node}: parameters refused: {bad}')

    # ------------------------------------------------------------------ episodes
    def run_episode(self, task, seed, processes=()):
        """One episode from reset to outcome; returns an EpisodeResult."""
        from lifecycle_msgs.msg import Transition

        opts = self.options
        if self.policy_state() == 'active':
            self._transition(Transition.TRANSITION_DEACTIVATE)
        self._set_sim(task=task, seed=int(seed), max_steps=int(opts.max_steps))
        answer = self._call(self._reset, self._types['Trigger'].Request())
        if not answer.success:
            raise RuntimeError(f'{opts.sim_node}/reset failed: {answer.message}')
        instruction = json.loads(answer.message).get('instruction', '')
        start = time.monotonic()
        with self._lock:
            self._chunks, self._joints = [], []
        self._transition(Transition.TRANSITION_ACTIVATE)
        limit = opts.max_steps if opts.max_steps > 0 else 200
        timeout = limit / opts.rate_hz * 4 + 60.0
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
        with self._lock:
            chunks = [lat for t, lat in self._chunks if t >= start]
            joints = list(self._joints)
        success = bool(outcome.get('success'))
        steps = int(outcome.get('steps', 0))
        # Joint states of the episode itself (the simulator keeps publishing after the end).
        t0 = joints[0][0] if joints else 0.0
        joints = [(t - t0, q) for t, q in joints if t - t0 <= steps / opts.rate_hz + 1e-6]
        return EpisodeResult(
            task=task, seed=int(seed), instruction=instruction, success=success, steps=steps,
            time_to_success_s=steps / opts.rate_hz if success else float('nan'), wall_s=wall,
            chunks=len(chunks), latencies_s=chunks, joint_times_s=[t for t, _ in joints],
            joint_positions=[q for _, q in joints])

    def run(self, processes=(), progress=None):
        """Every episode of every task; `progress(result, done, total)` after each."""
        opts = self.options
        total = len(opts.tasks) * opts.episodes
        results = []
        for task in opts.tasks:
            for i in range(opts.episodes):
                result = self.run_episode(task, opts.seed_start + i, processes)
                results.append(result)
                if progress is not None:
                    progress(result, len(results), total)
        if self.policy_state() == 'active':
            from lifecycle_msgs.msg import Transition
            self._transition(Transition.TRANSITION_DEACTIVATE)
        return results


def run_closed_loop(checkpoint_dir, options, out_dir, env=None, progress=None, on_status=None,
                    sim=None):
    """Start sim + policy processes, run every episode, stop them; returns the results.

    Node logs go to out_dir/sim_node.log and out_dir/policy_node.log. A running simulator
    (`sim`, from `processes.start_sim(..., sim_parameters(options))`) is used instead of a new
    one when given (the comparison runs every plan against one simulator process).
    """
    import contextlib

    from spatialvla_ros.policies.configuration_policy import PolicyConfig
    from spatialvla_ros.tools.processes import start_policy
    from spatialvla_ros.tools.processes import start_sim

    os.makedirs(out_dir, exist_ok=True)
    status = on_status or (lambda text: None)
    config = PolicyConfig.from_yaml(os.path.join(checkpoint_dir, 'config.yaml'))
    status('starting the simulator and the policy node (separate processes)')
    sim_context = contextlib.nullcontext(sim) if sim is not None else start_sim(
        os.path.join(out_dir, 'sim_node.log'), sim_parameters(options), env)
    with sim_context as sim_proc, \
            start_policy(checkpoint_dir, os.path.join(out_dir, 'policy_node.log'),
                         policy_overrides(options, config.action.dt), env) as policy:
        evaluator = ClosedLoopEvaluator(options)
        try:
            evaluator.wait_ready((sim_proc, policy))
            status('nodes ready: running episodes')
            return evaluator.run((sim_proc, policy), progress)
        finally:
            evaluator.close()


def summarize(results, tasks):
    """Per task: episodes, successes, success rate, time to success, latency (dict)."""
    from spatialvla_ros.evaluation.replay import distribution
    import numpy as np

    out = {}
    for task in tasks:
        rows = [r for r in results if r.task == task]
        ok = [r for r in rows if r.success]
        lat = [v for r in rows for v in r.latencies_s]
        out[task] = {
            'episodes': len(rows), 'successes': len(ok),
            'success_rate': len(ok) / len(rows) if rows else float('nan'),
            'time_to_success_s': float(np.mean([r.time_to_success_s for r in ok]))
            if ok else float('nan'),
            'latency_s': distribution(lat),
            'seeds': [r.seed for r in rows]}
    return out


def build_parser():
    parser = argparse.ArgumentParser(
        prog='spatialvla_closed_loop',
        description='Closed-loop evaluation: simulator node + policy node as separate '
                    'processes over DDS, N held-out seeded episodes per task.')
    parser.add_argument('--checkpoint', required=True, help='policy checkpoint directory')
    parser.add_argument('--tasks', default='reach', help='comma list: reach,push,pick_place')
    parser.add_argument('--episodes', type=int, default=10, help='episodes per task')
    parser.add_argument('--seed-start', type=int, default=HELD_OUT_SEED_START,
                        help='first seed (default: the held-out range, %(default)s)')
    parser.add_argument('--max-steps', type=int, default=0,
                        help='control ticks per episode (0: task default)')
    parser.add_argument('--execute-steps', type=int, default=0,
                        help='actions executed per chunk before a new one (0: what the checkpoint '
                             'recipe says, else a new chunk every frame)')
    parser.add_argument('--image-size', type=int, default=0,
                        help='simulator camera size [px] (0: the checkpoint recipe, else 128)')
    parser.add_argument('--fov-deg', type=float, default=0.0,
                        help='simulator camera field of view [deg] (0: the recipe, else 60)')
    parser.add_argument('--out-dir', default='closed_loop_report', help='report folder')
    return parser


def main(args=None):
    ns = build_parser().parse_args(args)
    from spatialvla_ros.evaluation import report
    from spatialvla_ros.sim.constants import TASKS

    tasks = tuple(t for t in ns.tasks.split(',') if t)
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks or ns.episodes < 1:
        print(f'error: --tasks {ns.tasks!r} / --episodes {ns.episodes}: expected tasks among '
              f'{TASKS} and at least one episode', file=sys.stderr)
        return 2
    recipe = recipe_camera(ns.checkpoint)
    options = ClosedLoopOptions(tasks=tasks, episodes=ns.episodes, seed_start=ns.seed_start,
                                max_steps=ns.max_steps,
                                execute_steps=ns.execute_steps or recipe['execute_steps'],
                                image_size=ns.image_size or recipe['image_size'],
                                fov_deg=ns.fov_deg or recipe['fov_deg'])

    def progress(result, done, total):
        print(f'[{done}/{total}] {result.task} seed {result.seed} "{result.instruction}": '
              f'{"success" if result.success else "failure"} after {result.steps} ticks',
              flush=True)

    results = run_closed_loop(ns.checkpoint, options, ns.out_dir, progress=progress,
                              on_status=lambda s: print(s, flush=True))
    path = report.write_closed_loop_report(results, options, ns.out_dir,
                                           notes=[f'checkpoint: `{ns.checkpoint}`'])
    for task, row in summarize(results, tasks).items():
        print(f'{task}: {row["successes"]}/{row["episodes"]} successful')
    print(f'report: {path}')
    return 0


def recipe_camera(checkpoint_dir):
    """Return how a checkpoint was recorded and run (its recipe.json; defaults otherwise).

    Keys: image_size [px], fov_deg, execute_steps (make_default_checkpoint writes them).
    """
    out = {'image_size': 128, 'fov_deg': 60.0, 'execute_steps': 0}
    try:
        with open(os.path.join(checkpoint_dir, 'recipe.json'), encoding='utf-8') as f:
            recipe = json.load(f)
    except (OSError, ValueError):
        return out
    for key, kind in (('image_size', int), ('fov_deg', float), ('execute_steps', int)):
        if key in recipe:
            out[key] = kind(recipe[key])
    return out


__all__ = ['ClosedLoopEvaluator', 'ClosedLoopOptions', 'EpisodeResult', 'HELD_OUT_SEED_START',
           'policy_overrides', 'recipe_camera', 'run_closed_loop', 'sim_parameters',
           'summarize']

if __name__ == '__main__':
    sys.exit(main())

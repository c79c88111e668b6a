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


"""replay_eval: play recorded bags to a running policy node and score its trajectories.

    replay_eval demos/reach_000003 --out-dir replay_report [--rate 2.0]
    replay_eval demos/ --checkpoint checkpoints/default     # also starts a policy node

Any rosbag2 (mcap or sqlite3, from our recorder or `ros2 bag record`) is played over DDS at
its recorded timing (or --rate times faster) with the QoS it was recorded with; the policy's
JointTrajectory answers are compared with the recorded actions by stamp (error per action
dimension and per horizon step), with its latency distribution and dropped frames. Writes
report.md, PNG plots, errors.csv and summary.json into --out-dir.
"""

import argparse
import contextlib
import os
import sys
import threading

import rclpy
from rclpy.executors import SingleThreadedExecutor
from spatialvla_ros.data.bag_reader import BagError
from spatialvla_ros.data.bag_reader import find_bags
from spatialvla_ros.evaluation import report
from spatialvla_ros.nodes.bag_player import BagPlaybackError
from spatialvla_ros.nodes.replay_runner import ReplayEvaluator
from spatialvla_ros.nodes.replay_runner import ReplayOptions
from spatialvla_ros.tools.processes import domain_of
from spatialvla_ros.tools.processes import isolated_domain
from spatialvla_ros.tools.processes import start_policy


def build_parser():
    d = ReplayOptions()
    parser = argparse.ArgumentParser(
        prog='replay_eval',
        description='Bag replay evaluation: play rosbag2 bags over DDS to a running policy '
                    'node, compare its trajectories with the recorded actions, write a report.')
    parser.add_argument('bags', nargs='+',
                        help='rosbag2 directories, or folders whose sub-folders are bags')
    parser.add_argument('--out-dir', default='replay_report', help='report folder')
    parser.add_argument('--rate', type=float, default=d.rate,
                        help='playback speed factor (default 1 = recorded timing)')
    parser.add_argument('--topics', nargs='+', default=None,
                        help='play only these topics (default: all but the excluded)')
    parser.add_argument('--exclude', nargs='+', default=[], help='never play these topics')
    parser.add_argument('--action-topic', default=d.action_topic,
                        help='recorded actions (JointTrajectory: first point of each; or '
                             'JointState) (default: %(default)s); never played')
    parser.add_argument('--observation-topic', default='',
                        help="frames counted as observations (default: the bag's colour "
                             'Image topic)')
    parser.add_argument('--trajectory-topic', default=d.trajectory_topic,
                        help="the policy's JointTrajectory output (default: %(default)s)")
    parser.add_argument('--chunk-topic', default=d.chunk_topic)
    parser.add_argument('--status-topic', default=d.status_topic)
    parser.add_argument('--policy-node', default=d.policy_node,
                        help="lifecycle policy node to deactivate/activate between bags ('' = "
                             'never) (default: %(default)s)')
    parser.add_argument('--wait-timeout', type=float, default=d.wait_timeout_s,
                        help='seconds to wait for the policy to be ready')
    parser.add_argument('--grace', type=float, default=d.grace_s,
                        help='seconds to wait for late answers after a bag')
    parser.add_argument('--tolerance', type=float, default=0.0,
                        help='stamp pairing tolerance [s] (0: half the recorded action period)')
    parser.add_argument('--restamp', action='store_true',
                        help='shift header stamps so each bag ends "now" (for nodes that '
                             'check stamps against the clock)')
    parser.add_argument('--checkpoint', default='',
                        help='start a policy node with this checkpoint for the evaluation (it '
                             'and the evaluator then run in a ROS domain of their own)')
    return parser


def run(ns, env=None, log=print):
    """Evaluate every bag; returns (results, report path).

    With --checkpoint the policy node it starts and the evaluator share a ROS domain picked
    for this run; without, the evaluator joins the running policy node in `env`'s domain.
    """
    domain = isolated_domain(env) if ns.checkpoint else \
        contextlib.nullcontext(dict(os.environ if env is None else env))
    with domain as env:
        return _run(ns, env, log)


def _run(ns, env, log):
    bags = find_bags(ns.bags)
    options = ReplayOptions(
        rate=ns.rate, topics=tuple(ns.topics) if ns.topics else None, exclude=tuple(ns.exclude),
        action_topic=ns.action_topic, observation_topic=ns.observation_topic,
        trajectory_topic=ns.trajectory_topic, chunk_topic=ns.chunk_topic,
        status_topic=ns.status_topic, policy_node=ns.policy_node,
        wait_timeout_s=ns.wait_timeout, grace_s=ns.grace, tolerance_s=ns.tolerance,
        restamp=ns.restamp)
    policy = None
    if ns.checkpoint:
        policy = start_policy(ns.checkpoint, os.path.join(ns.out_dir, 'policy_node.log'),
                              env=env)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_of(env))
    node = ReplayEvaluator(options, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=_spin, args=(executor,), daemon=True)
    spinner.start()
    results = []
    try:
        for i, bag in enumerate(bags):
            if policy is not None:
                policy.check()
            log(f'[{i + 1}/{len(bags)}] playing {bag} at {ns.rate:g}x')
            result = node.evaluate_bag(bag)
            m = result.metrics
            log(f'    {result.observations_answered}/{result.observations_sent} observations '
                f'answered, {m.matched} points scored, MAE {m.mae:.4g}, RMSE {m.rmse:.4g}')
            results.append(result)
    finally:
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
        spinner.join(timeout=5.0)
        if policy is not None:
            policy.stop()
    path = report.write_replay_report(
        results, ns.out_dir, notes=[f'{len(bags)} bag(s), playback rate {ns.rate:g}x, recorded '
                                    f'actions from `{ns.action_topic}`, policy answers on '
                                    f'`{ns.trajectory_topic}`'])
    return results, path


def _spin(executor):
    try:
        executor.spin()
    except Exception:  # noqa: BLE001 - the context is shut down at the end
        pass


def main(args=None):
    ns = build_parser().parse_args(args)
    if not ns.rate > 0:
        print(f'error: --rate: got {ns.rate}, expected > 0', file=sys.stderr)
        return 2
    try:
        results, path = run(ns)
    except (BagPlaybackError, BagError, TimeoutError) as exc:
        print(f'replay_eval: error: {exc}', file=sys.stderr)
        return 1
    print(f'report: {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

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


"""spatialvla_closed_loop: simulator node + policy node as separate processes over DDS.

    spatialvla_closed_loop --checkpoint checkpoints/default --tasks reach --episodes 30
    spatialvla_closed_loop --checkpoint checkpoints/default --episodes 30 --lockstep
    spatialvla_closed_loop --checkpoint checkpoints/default --episodes 100 --in-process

Starts both nodes in a ROS domain of their own (`processes.isolated_domain`), runs N seeded
episodes per task on held-out seeds with the rclpy client (`nodes.closed_loop_client`), stops
the nodes and writes report.md, summary.json (successes per task with 95% intervals),
episodes.csv and closed_loop.png into --out-dir. With --in-process the same episodes run in
this process instead (`evaluation.in_process.run`: no DDS, no timing), for fast sweeps; the DDS
loop stays the reference for what a robot sees.

By default the simulator runs in real time, so latency and CPU load show in the outcomes;
--execution picks the policy node's execution mode (async, sync, rtc: `policies.execution`)
and --inject-latency-ms adds a delay to every inference, so a small checkpoint stands in for a
slow model (bench/execution_modes.py sweeps both). With
--lockstep simulated time waits for every answer of the policy (/clock, use_sim_time): the same
checkpoint and seeds give the same outcomes on every run, and the same as --in-process, which
loads the policy as the node does (`nodes.policy_runtime.load_policy`, the node's torch threads)
and uses the same noise seed per chunk.

The closed-loop flags are defined once (`tools.flags.add_closed_loop_arguments`) and mean the
same in spatialvla_demo and spatialvla_compare: 0 or '' means "what the checkpoint's
recipe.json says", and the simulator's default where the checkpoint says nothing.
"""

import argparse
import contextlib
import os
import sys

from spatialvla_ros.evaluation import report
from spatialvla_ros.evaluation.closed_loop import policy_overrides
from spatialvla_ros.evaluation.closed_loop import sim_parameters
from spatialvla_ros.evaluation.closed_loop import summarize
from spatialvla_ros.nodes.closed_loop_client import ClosedLoopClient
from spatialvla_ros.nodes.closed_loop_client import LockstepError
from spatialvla_ros.nodes.lifecycle_client import LifecycleError
from spatialvla_ros.nodes.policy_runtime import load_policy
from spatialvla_ros.policies.configuration_policy import PolicyConfig
from spatialvla_ros.tools.flags import add_closed_loop_arguments
from spatialvla_ros.tools.flags import options_from_args
from spatialvla_ros.tools.processes import default_policy_parameters
from spatialvla_ros.tools.processes import domain_of
from spatialvla_ros.tools.processes import isolated_domain
from spatialvla_ros.tools.processes import ProcessError
from spatialvla_ros.tools.processes import start_policy
from spatialvla_ros.tools.processes import start_sim


def run_closed_loop(checkpoint_dir, options, out_dir, env=None, progress=None, on_status=None,
                    sim=None, policy_parameters=None):
    """Start sim + policy processes, run every episode, stop them; returns the results.

    The nodes run in a ROS domain of their own, picked here. A running simulator (`sim`, from
    `processes.start_sim(..., sim_parameters(options), env)`) is used instead of a new one when
    given (the comparison runs every plan against one simulator process): the run then stays
    in `env`'s domain, which the caller took from `processes.isolated_domain`. Node logs go to
    out_dir/sim_node.log and out_dir/policy_node.log. `policy_parameters` are added to the
    policy node's parameters of the run (e.g. publish_markers).
    """
    os.makedirs(out_dir, exist_ok=True)
    status = on_status or (lambda text: None)
    config = PolicyConfig.from_yaml(os.path.join(checkpoint_dir, 'config.yaml'))
    domain = contextlib.nullcontext(dict(env or os.environ)) if sim is not None \
        else isolated_domain(env)
    with domain as env:
        status(f'starting the simulator and the policy node (separate processes, ROS domain '
               f'{env.get("ROS_DOMAIN_ID", "0")}, '
               f'{"lockstep" if options.lockstep else "real time"})')
        sim_context = contextlib.nullcontext(sim) if sim is not None else start_sim(
            os.path.join(out_dir, 'sim_node.log'), sim_parameters(options), env)
        with sim_context as sim_proc, \
                start_policy(checkpoint_dir, os.path.join(out_dir, 'policy_node.log'),
                             {**policy_overrides(options, config.action.dt),
                              **(policy_parameters or {})}, env) as policy:
            client = ClosedLoopClient(options, domain_of(env))
            try:
                client.wait_ready((sim_proc, policy))
                status('nodes ready: running episodes')
                return client.run((sim_proc, policy), progress)
            finally:
                client.close()


def print_progress(result, done, total):
    """One line per finished episode."""
    print(f'[{done}/{total}] {result.task} seed {result.seed} "{result.instruction}": '
          f'{"success" if result.success else "failure"} after {result.steps} ticks',
          flush=True)


def build_parser():
    parser = argparse.ArgumentParser(
        prog='spatialvla_closed_loop',
        description='Closed-loop evaluation: simulator node + policy node as separate '
                    'processes over DDS (in a ROS domain of their own), N held-out seeded '
                    'episodes per task; writes report.md and summary.json.')
    parser.add_argument('--checkpoint', required=True, help='policy checkpoint directory')
    parser.add_argument('--in-process', action='store_true',
                        help='run simulator and policy in this process (no DDS, no ROS, no '
                             'latency): fast sweeps; the DDS loop is the reference')
    return add_closed_loop_arguments(parser)


def run_checkpoint_in_process(checkpoint_dir, options, progress=print_progress):
    """Load a checkpoint as the policy node does and run `options`' episodes in this process."""
    # Deferred: the in-process runner imports torch (2-3 s, hundreds of MiB), which the DDS
    # loop leaves to the policy node's own process; the demo imports this module and should
    # start its nodes without paying for torch here.
    from spatialvla_ros.evaluation.in_process import run as run_in_process

    # Loaded as the policy node loads it (device, dtype, denoising steps, torch threads), so
    # the chunks are the node's to the last bit.
    node = default_policy_parameters()
    policy, _, _ = load_policy(checkpoint_dir, node['device'], node['dtype'],
                               node['num_steps'], '', node['num_threads'])
    return run_in_process(policy, options.tasks, options.seeds(), options, progress=progress)


def main(args=None):
    ns = build_parser().parse_args(args)
    if not os.path.isfile(os.path.join(ns.checkpoint, 'config.yaml')):
        print(f'spatialvla_closed_loop: error: --checkpoint {ns.checkpoint}: no config.yaml '
              'there (expected a checkpoint directory)', file=sys.stderr)
        return 2
    try:
        options = options_from_args(ns, ns.checkpoint)
    except ValueError as exc:
        print(f'spatialvla_closed_loop: error: {exc}', file=sys.stderr)
        return 2
    if ns.in_process and (options.execution != 'async' or options.inject_latency_ms):
        print('spatialvla_closed_loop: error: --execution and --inject-latency-ms set the '
              'policy node of the DDS loop; --in-process runs without one (no timing)',
              file=sys.stderr)
        return 2
    if ns.in_process:
        results = run_checkpoint_in_process(ns.checkpoint, options)
        loop = 'simulator and policy in one process (no DDS, no latency)'
    else:
        try:
            results = run_closed_loop(ns.checkpoint, options, ns.out_dir,
                                      progress=print_progress,
                                      on_status=lambda s: print(s, flush=True))
        except (LockstepError, LifecycleError, ProcessError, TimeoutError) as exc:
            print(f'spatialvla_closed_loop: error: {exc}', file=sys.stderr)
            return 1
        loop = report.DDS_LOOP + (' in lockstep (simulated time waits for the policy)'
                                  if options.lockstep else ' in real time')
    path = report.write_closed_loop_report(results, options, ns.out_dir,
                                           notes=[f'checkpoint: `{ns.checkpoint}`'], loop=loop)
    for task, row in summarize(results, options.tasks).items():
        lo, hi = row['success_ci95']
        print(f'{task}: {row["successes"]}/{row["episodes"]} successful '
              f'(95% interval {100 * lo:.0f}..{100 * hi:.0f}%)')
    print(f'report: {path}')
    return 0


__all__ = ['build_parser', 'main', 'print_progress', 'run_checkpoint_in_process',
           'run_closed_loop']

if __name__ == '__main__':
    sys.exit(main())

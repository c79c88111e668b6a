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


"""spatialvla_compare: one comparison table of the three fusion plans.

Trains (or takes checkpoints of) all three plans on the same demonstrations, measures them on
equal terms and prints / writes one table.

    spatialvla_compare --data demos/ --steps 2000 --episodes 20 --tasks reach
    spatialvla_compare --generate-demos 60 --steps 20 --episodes 2        # a quick smoke run
    spatialvla_compare --data demos/ --checkpoint late_gemma=ckpt/a --checkpoint ...

The closed-loop flags (--tasks, --episodes, --seed-start, --execute-steps, --image-size, ...)
are spatialvla_closed_loop's, with the same meaning; the closed loop of every plan runs against
one simulator process in a ROS domain of the comparison's own.

Writes OUT/comparison.md (Markdown table + the run's configuration, seeds and hardware),
OUT/comparison.csv, OUT/comparison.json, plus each plan's training run, latency JSON and
closed-loop report under OUT/<plan>/.
"""

import argparse
import os
import sys
import time

from spatialvla_ros.evaluation import comparison
from spatialvla_ros.evaluation import report
from spatialvla_ros.evaluation.closed_loop import sim_parameters
from spatialvla_ros.evaluation.closed_loop import summarize
from spatialvla_ros.models.configuration_spatialvla import PLANS
from spatialvla_ros.policies.policy_spatialvla import SpatialVLAPolicy
from spatialvla_ros.tools import generate_demos
from spatialvla_ros.tools.closed_loop import run_closed_loop
from spatialvla_ros.tools.flags import add_closed_loop_arguments
from spatialvla_ros.tools.flags import options_from_args
from spatialvla_ros.tools.processes import isolated_domain
from spatialvla_ros.tools.processes import start_sim
from spatialvla_ros.training.configuration_training import TrainingConfig
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_parser():
    parser = argparse.ArgumentParser(
        prog='spatialvla_compare',
        description='Compare the fusion plans on equal terms: parameters, peak memory, prefix / '
                    'per-step / chunk latency, held-out action error, closed-loop success.')
    parser.add_argument('--data', nargs='+', default=[],
                        help='demonstration bags (folders of rosbag2 directories)')
    parser.add_argument('--generate-demos', type=int, default=0, metavar='N',
                        help='first generate N scripted demos (seeds 0..N-1) into OUT/demos, '
                             "with the closed loop's camera (--image-size, --fov-deg)")
    parser.add_argument('--demo-tasks', default='reach', help='tasks of generated demos')
    parser.add_argument('--plans', default=','.join(PLANS), help='comma list of plans')
    parser.add_argument('--config-dir', default=os.path.join(REPO, 'config'),
                        help='where <plan>.yaml lives (default: the tiny configs)')
    parser.add_argument('--checkpoint', action='append', default=[], metavar='PLAN=DIR',
                        help='use this checkpoint instead of training the plan (repeatable); '
                             "the first one's recipe.json fills in the closed-loop flags left 0")
    parser.add_argument('--steps', type=int, default=0, help='training steps (0: config)')
    parser.add_argument('--batch-size', type=int, default=0, help='batch size (0: config)')
    parser.add_argument('--seed', type=int, default=-1, help='training seed (-1: config)')
    parser.add_argument('--latency-repeats', type=int, default=10)
    parser.add_argument('--heldout-samples', type=int, default=256,
                        help='held-out frames scored per plan (evenly spaced)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads of training and timing (equal terms; default 1)')
    return add_closed_loop_arguments(parser, episodes=10, out_dir='comparison', min_episodes=0)


def _parse_checkpoints(values, plans):
    out = {}
    for value in values:
        plan, sep, path = value.partition('=')
        if not sep or plan not in plans or not os.path.isdir(path):
            raise ValueError(f'--checkpoint {value!r}: expected PLAN=DIR with PLAN among '
                             f'{plans} and an existing directory')
        out[plan] = os.path.abspath(path)
    return out


def main(args=None):
    ns = build_parser().parse_args(args)
    plans = tuple(p for p in ns.plans.split(',') if p)
    try:
        if not plans or any(p not in PLANS for p in plans):
            raise ValueError(f'--plans {ns.plans!r}: expected a comma list of {PLANS}')
        checkpoints = _parse_checkpoints(ns.checkpoint, plans)
        if not ns.data and not ns.generate_demos:
            raise ValueError('give --data DEMOS or --generate-demos N')
        cl_options = options_from_args(ns, next(iter(checkpoints.values()), ''))
    except ValueError as exc:
        print(f'spatialvla_compare: error: {exc}', file=sys.stderr)
        return 2
    return run(ns, plans, cl_options, checkpoints)


def _say(text):
    print(f'[compare {time.strftime("%H:%M:%S")}] {text}', flush=True)


def run(ns, plans, cl_options, checkpoints, env=None):
    """Train or load every plan, measure it, write the table; returns the exit code."""
    torch.set_num_threads(max(1, ns.threads))
    out = os.path.abspath(ns.out_dir)
    os.makedirs(out, exist_ok=True)
    env = dict(env or os.environ)
    env.setdefault('OMP_NUM_THREADS', str(max(1, ns.threads)))
    data = [os.path.abspath(d) for d in ns.data]
    if ns.generate_demos:
        demos = os.path.join(out, 'demos')
        _say(f'generating {ns.generate_demos} scripted demonstrations into {demos}')
        if not os.path.isdir(demos):
            generate_demos.main(['--out', demos, '--episodes', str(ns.generate_demos),
                                 '--tasks', ns.demo_tasks, '--image-size',
                                 str(cl_options.image_size), '--fov-deg',
                                 str(cl_options.fov_deg), '--no-cloud'])
        data.append(demos)
    cache = os.path.join(out, 'cache')
    overrides = {k: v for k, v in (('steps', ns.steps), ('batch_size', ns.batch_size))
                 if v > 0}
    if ns.seed >= 0:
        overrides['seed'] = ns.seed
    tasks = cl_options.tasks
    sim = None
    with isolated_domain(env) as env:     # the plans' nodes share one domain, nobody else's
        try:
            if cl_options.episodes > 0:   # one simulator process serves every plan
                sim = start_sim(os.path.join(out, 'sim_node.log'), sim_parameters(cl_options),
                                env)
            results, configs, heldout_sets = _measure_plans(
                ns, plans, checkpoints, data, out, cache, overrides, cl_options, sim, env)
        finally:
            if sim is not None:
                sim.stop()
    notes = _notes(ns, data, configs, heldout_sets, cl_options)
    md, text = comparison.write_comparison(results, tasks if cl_options.episodes > 0 else (),
                                           notes, out)
    print(text)
    _say(f'written: {md}, {os.path.join(out, "comparison.csv")}')
    return 0


def _measure_plans(ns, plans, checkpoints, data, out, cache, overrides, cl_options, sim, env):
    results, configs, heldout_sets = [], {}, {}
    for plan in plans:
        plan_dir = os.path.join(out, plan)
        os.makedirs(plan_dir, exist_ok=True)
        result = comparison.PlanResult(plan=plan, checkpoint=checkpoints.get(plan, ''))
        if not result.checkpoint:
            config_path = os.path.join(ns.config_dir, f'{plan}.yaml')
            _say(f'{plan}: training {config_path} on {", ".join(data)}')
            summary = comparison.train_plan(config_path, data, os.path.join(plan_dir, 'train'),
                                            overrides, cache)
            result.checkpoint = summary['checkpoint']
            result.train = {k: summary.get(k) for k in ('steps', 'train_episodes',
                                                        'val_episodes', 'val_mse',
                                                        'baseline_mse', 'mse_ratio')}
        config = TrainingConfig.from_yaml(os.path.join(result.checkpoint, 'config.yaml'))
        configs[plan] = config
        _say(f'{plan}: latency and memory (fresh process, {ns.threads} thread(s))')
        result.latency = comparison.measure_latency_subprocess(
            result.checkpoint, os.path.join(plan_dir, 'latency.json'), ns.threads,
            ns.latency_repeats, env=env)
        result.parameters = result.latency.get('parameters', {})
        policy = SpatialVLAPolicy.from_pretrained(result.checkpoint)
        key = (config.train.val_fraction, config.train.seed)
        if key not in heldout_sets:
            heldout_sets[key] = comparison.heldout_episodes(data, config, cache)
        _say(f'{plan}: held-out action error on {len(heldout_sets[key])} episode(s)')
        result.heldout = comparison.heldout_action_error(policy, heldout_sets[key],
                                                         ns.heldout_samples)
        del policy
        if cl_options.episodes > 0:
            _say(f'{plan}: closed loop, {cl_options.episodes} held-out episode(s) per task')
            episodes = run_closed_loop(
                result.checkpoint, cl_options, os.path.join(plan_dir, 'closed_loop'), env,
                progress=lambda r, d, t: _say(f'  {r.task} seed {r.seed}: '
                                              f'{"success" if r.success else "failure"}'),
                sim=sim)
            report.write_closed_loop_report(episodes, cl_options,
                                            os.path.join(plan_dir, 'closed_loop'),
                                            notes=[f'plan {plan}: `{result.checkpoint}`'])
            result.closed_loop = summarize(episodes, cl_options.tasks)
        results.append(result)
    return results, configs, heldout_sets


def _notes(ns, data, configs, heldout_sets, cl):
    first = next(iter(configs.values()))
    train = first.train
    hw = comparison.hardware_notes()
    held = sum(len(v) for v in heldout_sets.values()) // max(len(heldout_sets), 1)
    return {
        'demos': f'{", ".join(data)}',
        'train': (f'steps {ns.steps or train.steps}, batch {ns.batch_size or train.batch_size}, '
                  f'lr {train.learning_rate:g}, seed {ns.seed if ns.seed >= 0 else train.seed}, '
                  f'configs {", ".join(sorted(f"{p}: {c.name}" for p, c in configs.items()))}'),
        'heldout': (f'{held} held-out episode(s) (val_fraction {train.val_fraction}, split seed '
                    f'{train.seed}, the trainer split), up to {ns.heldout_samples} frames, '
                    'full chunks from seeded noise, MSE in robot units (rad, m)'),
        'closed_loop': (f'{cl.episodes} episode(s) per task on held-out seeds {cl.seed_start}.. '
                        f'(demos use seeds < {cl.seed_start}), sim + policy node processes over '
                        f'DDS at {cl.rate_hz:g} Hz' if cl.episodes else 'skipped'),
        'latency': (f'median of {ns.latency_repeats}, batch 1, fp32, {ns.threads} thread(s), '
                    'visual token cap reached; chunk = prefix once + '
                    f'{first.flow.num_steps} Euler steps; peak memory = peak RSS growth of a '
                    'fresh process (CPU) or the CUDA allocator peak'),
        'hardware': (f'{hw["cpu"]}, {hw["cores"]} cores, GPU {hw["gpu"]}'),
        'software': (f'torch {hw["torch"]}, python {hw["python"]}, spatialvla_ros '
                     f'{comparison.git_revision(REPO)}'),
    }


if __name__ == '__main__':
    sys.exit(main())

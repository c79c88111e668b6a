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

"""Execution modes against inference delay, in the real-time DDS closed loop.

    python bench/execution_modes.py --checkpoint checkpoints/default --episodes 10
    python bench/execution_modes.py --checkpoint CKPT --modes rtc --delays-ms 0,300

For every execution mode (the policy node's `execution` parameter) and every injected delay
(its `inject_latency_ms`), runs the closed loop of `spatialvla_closed_loop` in real time (never
lockstep: the delay must cost simulated time) on the same held-out seeds: one simulator
process for the whole sweep, a fresh policy node per mode and delay. Prints per mode and delay:
success per task with its 95% Wilson interval, mean time to success, the seam discontinuity
and the jerk RMS of the executed joint trajectories, chunks per second and the fraction of
starved control periods (definitions: `spatialvla_ros.evaluation.execution_metrics`):

- seam jump: at every chunk boundary (the arrival of a trajectory at the simulator), the
  largest arm-joint step of the executed trajectory (the simulator's joint states, one per
  control tick) from the last tick before the arrival to the first tick after it, divided by
  the episode's nominal per-step motion (the median arm-joint step over the other ticks while
  the arm moves); the largest over the episode, averaged over episodes (and the worst one);
- jerk RMS: third finite difference of the executed arm-joint positions over dt^3, RMS over
  joints and ticks [rad/s^3].

Writes results.json, results.md, one closed-loop report per run (mode_delay/) and
execution_modes.png (success and seam jump against delay, one line per mode) into --out-dir.
The other closed-loop flags (tasks, episodes, seeds, execute steps, camera) mean what they
mean in spatialvla_closed_loop (`tools.flags`); --execution and --inject-latency-ms are
replaced by --modes and --delays-ms.
"""

import argparse
import dataclasses
import json
import os
import sys

from matplotlib.figure import Figure
from spatialvla_ros.evaluation import report
from spatialvla_ros.evaluation.closed_loop import sim_parameters
from spatialvla_ros.evaluation.closed_loop import summarize
from spatialvla_ros.nodes.closed_loop_client import LockstepError
from spatialvla_ros.nodes.lifecycle_client import LifecycleError
from spatialvla_ros.policies.execution import EXECUTION_MODES
from spatialvla_ros.tools.closed_loop import run_closed_loop
from spatialvla_ros.tools.flags import add_closed_loop_arguments
from spatialvla_ros.tools.flags import options_from_args
from spatialvla_ros.tools.processes import isolated_domain
from spatialvla_ros.tools.processes import ProcessError
from spatialvla_ros.tools.processes import start_sim


def _modes(text):
    modes = tuple(m.strip() for m in text.split(',') if m.strip())
    if not modes or any(m not in EXECUTION_MODES for m in modes):
        raise argparse.ArgumentTypeError(f'got {text!r}, expected a comma list of '
                                         f'{EXECUTION_MODES}')
    return modes


def _delays(text):
    try:
        delays = tuple(float(d) for d in text.split(',') if d.strip())
    except ValueError:
        delays = ()
    if not delays or any(d < 0 for d in delays):
        raise argparse.ArgumentTypeError(f'got {text!r}, expected a comma list of delays >= 0 '
                                         '[ms]')
    return delays


def build_parser():
    parser = argparse.ArgumentParser(
        prog='execution_modes', description='Success, time to success, seam jump and jerk of '
        'the execution modes against injected inference delay (real-time DDS closed loop).')
    parser.add_argument('--checkpoint', required=True, help='policy checkpoint directory')
    parser.add_argument('--modes', type=_modes, default=EXECUTION_MODES,
                        help='comma list of execution modes (default: sync,async,rtc)')
    parser.add_argument('--delays-ms', type=_delays, default=(0.0, 100.0, 200.0, 300.0),
                        help='comma list of injected delays per inference [ms] '
                             '(default: 0,100,200,300)')
    return add_closed_loop_arguments(parser, episodes=10, out_dir='execution_modes')


def _row(mode, delay, summary):
    out = {'mode': mode, 'delay_ms': delay, 'tasks': summary}
    n = sum(s['episodes'] for s in summary.values())
    out['success_rate'] = sum(s['successes'] for s in summary.values()) / n if n else 0.0
    out['seam_jump'] = max((s['seam_jump'] for s in summary.values()), default=float('nan'))
    return out


def _line(row):
    parts = [f'{row["mode"]:5s} {row["delay_ms"]:5.0f} ms']
    for task, s in row['tasks'].items():
        lo, hi = s['success_ci95']
        lat = s['latency_s']
        parts.append(
            f'{task}: {s["successes"]}/{s["episodes"]} [{100 * lo:.0f}, {100 * hi:.0f}]%, '
            f'time to success {report.fmt(s["time_to_success_s"], 3)} s, seam jump '
            f'{report.fmt(s["seam_jump"], 3)} (max {report.fmt(s["seam_jump_max"], 3)}), '
            f'jerk RMS {report.fmt(s["jerk_rms"], 3)} rad/s^3, '
            f'{report.fmt(s["chunks_per_s"], 3)} chunks/s, latency p50/p99 '
            f'{report.fmt(lat["p50"] * 1e3, 3)}/{report.fmt(lat["p99"] * 1e3, 3)} ms, '
            f'starved {report.fmt(100 * s["starved_fraction"], 3)}%')
    return ' | '.join(parts)


def plot(rows, path):
    """Success and seam jump against delay, one line per mode."""
    fig = Figure(figsize=(10, 3.6))   # no pyplot: no display, no global figure state
    axes = fig.subplots(1, 2)
    for mode in dict.fromkeys(r['mode'] for r in rows):
        mine = [r for r in rows if r['mode'] == mode]
        delays = [r['delay_ms'] for r in mine]
        axes[0].plot(delays, [100 * r['success_rate'] for r in mine], marker='o', label=mode)
        axes[1].plot(delays, [r['seam_jump'] for r in mine], marker='o', label=mode)
    axes[0].set_ylabel('success [%]')
    axes[0].set_ylim(-5, 105)
    axes[1].set_ylabel('seam jump [x nominal step]')
    axes[1].axhline(1.5, color='grey', lw=0.8, ls='--')
    for ax in axes:
        ax.set_xlabel('injected inference delay [ms]')
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle('execution modes, real-time closed loop', fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def main(args=None):
    ns = build_parser().parse_args(args)
    try:
        base = options_from_args(ns, ns.checkpoint)
    except ValueError as exc:
        print(f'execution_modes: error: {exc}', file=sys.stderr)
        return 2
    # Real time, always; a loaded machine can take minutes to start a policy node.
    base = dataclasses.replace(base, lockstep=False, startup_timeout_s=600.0)
    os.makedirs(ns.out_dir, exist_ok=True)
    rows = []
    with isolated_domain() as env:
        sim = start_sim(os.path.join(ns.out_dir, 'sim_node.log'), sim_parameters(base), env)
        try:
            for mode in ns.modes:
                for delay in ns.delays_ms:
                    options = dataclasses.replace(base, execution=mode, inject_latency_ms=delay)
                    out = os.path.join(ns.out_dir, f'{mode}_{delay:g}ms')
                    results = run_closed_loop(ns.checkpoint, options, out, env, sim=sim)
                    report.write_closed_loop_report(
                        results, options, out, notes=[f'checkpoint: `{ns.checkpoint}`'],
                        loop=report.DDS_LOOP + ' in real time')
                    rows.append(_row(mode, delay, summarize(results, options.tasks)))
                    print(_line(rows[-1]), flush=True)
        except (LockstepError, LifecycleError, ProcessError, TimeoutError) as exc:
            print(f'execution_modes: error: {exc}', file=sys.stderr)
            return 1
        finally:
            sim.stop()
    report.write_json(os.path.join(ns.out_dir, 'results.json'),
                      {'options': dict(base.__dict__), 'rows': rows})
    table = [[r['mode'], f'{r["delay_ms"]:g}', task, f'{s["successes"]}/{s["episodes"]}',
              f'{100 * s["success_ci95"][0]:.0f}..{100 * s["success_ci95"][1]:.0f}%',
              report.fmt(s['time_to_success_s'], 3), report.fmt(s['seam_jump'], 3),
              report.fmt(s['seam_jump_max'], 3), report.fmt(s['jerk_rms'], 3),
              report.fmt(s['chunks_per_s'], 3), report.fmt(100 * s['starved_fraction'], 3)]
             for r in rows for task, s in r['tasks'].items()]
    with open(os.path.join(ns.out_dir, 'results.md'), 'w', encoding='utf-8') as f:
        f.write(report.markdown_table(
            ['mode', 'delay [ms]', 'task', 'successes', '95% interval', 'time to success [s]',
             'seam jump', 'seam jump max', 'jerk RMS [rad/s^3]', 'chunks/s', 'starved [%]'],
            table) + '\n')
    png = plot(rows, os.path.join(ns.out_dir, 'execution_modes.png'))
    print(f'written: {os.path.join(ns.out_dir, "results.md")}, {png}')
    print(json.dumps({f'{r["mode"]}@{r["delay_ms"]:g}ms': round(r['success_rate'], 3)
                      for r in rows}))
    return 0


if __name__ == '__main__':
    sys.exit(main())

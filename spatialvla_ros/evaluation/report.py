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


"""Reports a researcher can paste: Markdown tables, CSV files and PNG plots.

Plots use matplotlib's Agg backend (no display needed). Nothing here imports rclpy.
"""

import csv
import json
import math
import os

import numpy as np

from spatialvla_ros.evaluation import replay
from spatialvla_ros.evaluation.closed_loop import summarize


def _plt():
    # Deferred: matplotlib takes about a second to import and only the plots need it (the
    # comparison imports this module for its table helpers alone).
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def fmt(value, digits=4):
    """Format a number for a table cell ('-' for None / NaN)."""
    if value is None:
        return '-'
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(value):
        return '-'
    return f'{value:.{digits}g}'


def markdown_table(header, rows):
    """GitHub-flavoured Markdown table of already formatted cells."""
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


def write_csv(path, header, rows):
    with open(path, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_json(path, data):
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=1, default=_json_default)
    return path


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)


# ---------------------------------------------------------------------- replay
def plot_replay_trajectories(result, path, max_chunks=25):
    """Plot recorded targets (black) and predicted chunks (colour) per joint over bag time."""
    plt = _plt()
    rec = result.recorded
    names = list(rec.names)
    t_ref = rec.times_ns[0] if len(rec) else 0
    cols = 2
    rows = max(1, math.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(11, 2.2 * rows), squeeze=False, sharex=True)
    preds = result.predictions
    step = max(1, math.ceil(len(preds) / max_chunks))
    cmap = plt.get_cmap('viridis')
    for j, name in enumerate(names):
        ax = axes[j // cols][j % cols]
        ax.plot((rec.times_ns - t_ref) / 1e9, rec.values[:, j], color='black', lw=1.6,
                label='recorded')
        for n, pred in enumerate(preds[::step]):
            if name not in pred.names:
                continue
            c = pred.names.index(name)
            t = (pred.stamp_ns + pred.offsets_ns - t_ref) / 1e9
            ax.plot(t, pred.values[:, c], color=cmap(n / max(1, len(preds[::step]) - 1)),
                    lw=0.9, alpha=0.8, label='predicted chunks' if n == 0 else None)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=8)
    for j in range(len(names), rows * cols):
        axes[j // cols][j % cols].axis('off')
    axes[0][0].legend(fontsize=7, loc='best')
    for ax in axes[-1]:
        ax.set_xlabel('time since first recorded action [s]', fontsize=8)
    fig.suptitle(f'{os.path.basename(result.bag)}: predicted vs recorded', fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_replay_errors(result, path):
    """MAE per horizon step, MAE per joint, and the latency histograms."""
    plt = _plt()
    m = result.metrics
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    axes[0].plot(range(1, len(m.mae_per_step) + 1), m.mae_per_step, marker='o')
    axes[0].set_xlabel('horizon step k (+1)')
    axes[0].set_ylabel('MAE')
    axes[0].set_title('error per horizon step', fontsize=9)
    axes[1].bar(range(len(m.names)), m.mae_per_dim)
    axes[1].set_xticks(range(len(m.names)))
    axes[1].set_xticklabels([n.replace('panda_', '') for n in m.names], rotation=45,
                            fontsize=7, ha='right')
    axes[1].set_title('error per action dimension (MAE)', fontsize=9)
    bins = 20
    if result.inference_latency_s:
        axes[2].hist(np.asarray(result.inference_latency_s) * 1e3, bins=bins, alpha=0.7,
                     label='inference (policy)')
    if result.round_trip_s:
        axes[2].hist(np.asarray(result.round_trip_s) * 1e3, bins=bins, alpha=0.7,
                     label='round trip (DDS)')
    axes[2].set_xlabel('latency [ms]')
    axes[2].set_title('latency', fontsize=9)
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _latency_row(label, values):
    d = replay.distribution(values)
    return [label, d['count']] + [fmt(d[k] * 1e3 if d['count'] else None, 3)
                                  for k in ('mean', 'p50', 'p90', 'p99', 'max')]


def replay_section(result, plot_dir, index):
    """Markdown of one bag's replay; writes its two plots into plot_dir."""
    stem = f'replay_{index:02d}_{os.path.basename(result.bag.rstrip("/"))}'
    traj_png = plot_replay_trajectories(result, os.path.join(plot_dir, stem + '_traj.png'))
    err_png = plot_replay_errors(result, os.path.join(plot_dir, stem + '_errors.png'))
    m = result.metrics
    s = result.summary()
    out = [f'## {os.path.basename(result.bag)}', '',
           f'- bag: `{result.bag}`, played at {result.rate:g}x '
           f'({s["bag_duration_s"]:.2f} s recorded, {s["playback_wall_s"]:.2f} s wall, '
           f'worst lateness {s["max_playback_lateness_s"] * 1e3:.1f} ms)',
           f'- observations (`{result.observation_topic}`): {result.observations_sent} sent, '
           f'{result.observations_answered} answered, {result.unanswered} unanswered; '
           f'policy-reported dropped frames: {result.policy_dropped_frames}',
           f'- scored points: {m.matched} (unmatched, past the recording: {m.unmatched}); '
           f'MAE {fmt(m.mae)}, RMSE {fmt(m.rmse)}', '',
           markdown_table(['joint', 'MAE', 'RMSE'],
                          [[n, fmt(a), fmt(r)] for n, a, r in
                           zip(m.names, m.mae_per_dim, m.rmse_per_dim)]), '',
           markdown_table(['horizon step', 'points', 'MAE', 'RMSE'],
                          [[k + 1, c, fmt(a), fmt(r)] for k, (c, a, r) in
                           enumerate(zip(m.count_per_step, m.mae_per_step,
                                         m.rmse_per_step))]), '',
           markdown_table(['latency [ms]', 'n', 'mean', 'p50', 'p90', 'p99', 'max'],
                          [_latency_row('inference (ActionChunk)', result.inference_latency_s),
                           _latency_row('round trip (last input -> trajectory)',
                                        result.round_trip_s)]), '',
           f'![trajectories]({os.path.basename(traj_png)})', '',
           f'![errors]({os.path.basename(err_png)})', '']
    return '\n'.join(out), [traj_png, err_png]


def write_replay_report(results, out_dir, title='Bag replay evaluation', notes=()):
    """report.md + per-bag PNGs + summary.json + errors.csv; returns the report path."""
    os.makedirs(out_dir, exist_ok=True)
    parts = [f'# {title}', '']
    parts += [f'- {n}' for n in notes]
    if len(results) > 1:
        total = aggregate_metrics(results)
        parts += ['', f'All {len(results)} bags: {total.matched} scored points, MAE '
                  f'{fmt(total.mae)}, RMSE {fmt(total.rmse)}; unanswered observations '
                  f'{sum(r.unanswered for r in results)} of '
                  f'{sum(r.observations_sent for r in results)}', '']
    rows = []
    for i, result in enumerate(results):
        text, _ = replay_section(result, out_dir, i)
        parts += ['', text]
        m = result.metrics
        for k, (c, a, r) in enumerate(zip(m.count_per_step, m.mae_per_step, m.rmse_per_step)):
            rows.append([result.bag, 'step', k + 1, c, a, r])
        for n, a, r in zip(m.names, m.mae_per_dim, m.rmse_per_dim):
            rows.append([result.bag, 'joint', n, m.matched, a, r])
    path = os.path.join(out_dir, 'report.md')
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(parts) + '\n')
    write_csv(os.path.join(out_dir, 'errors.csv'),
              ['bag', 'kind', 'key', 'points', 'mae', 'rmse'], rows)
    write_json(os.path.join(out_dir, 'summary.json'), [r.summary() for r in results])
    return path


def aggregate_metrics(results):
    """Compute ReplayMetrics over the pooled alignments of several bags."""
    aligns = [r.alignment for r in results if r.alignment.predicted.shape[0]]
    if not aligns:
        return replay.replay_metrics(results[0].alignment)
    names = aligns[0].names
    pooled = replay.Alignment(
        names=names, horizon=max(a.horizon for a in aligns),
        chunk_index=np.concatenate([a.chunk_index for a in aligns]),
        step=np.concatenate([a.step for a in aligns]),
        time_ns=np.concatenate([a.time_ns for a in aligns]),
        predicted=np.concatenate([a.predicted for a in aligns]),
        recorded=np.concatenate([a.recorded for a in aligns]),
        unmatched=sum(a.unmatched for a in aligns))
    return replay.replay_metrics(pooled)


# ---------------------------------------------------------------------- closed loop
def plot_closed_loop(results, path, max_episodes=12):
    """Joint trajectories of the first episodes (one panel each) and the latency histogram."""
    plt = _plt()
    shown = results[:max_episodes]
    cols = 4
    rows = math.ceil((len(shown) + 1) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(13, 2.6 * rows), squeeze=False)
    for i, r in enumerate(shown):
        ax = axes[i // cols][i % cols]
        if r.joint_positions:
            q = np.asarray(r.joint_positions, dtype=np.float64)
            ax.plot(r.joint_times_s, q[:, :7], lw=0.9)
        ax.set_title(f'{r.task} {r.seed}: {"OK" if r.success else "fail"} ({r.steps} ticks)',
                     fontsize=8, color='green' if r.success else 'red')
        ax.tick_params(labelsize=7)
        ax.set_xlabel('t [s]', fontsize=7)
    ax = axes[len(shown) // cols][len(shown) % cols]
    lat = [v * 1e3 for r in results for v in r.latencies_s]
    if lat:
        ax.hist(lat, bins=20)
    ax.set_title('chunk latency [ms]', fontsize=8)
    ax.tick_params(labelsize=7)
    for j in range(len(shown) + 1, rows * cols):
        axes[j // cols][j % cols].axis('off')
    fig.suptitle('closed loop: arm joint positions per episode (rad)', fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def closed_loop_rows(results, tasks):
    """Rows of the per-task success table (formatted)."""
    rows = []
    for task, s in summarize(results, tasks).items():
        lo, hi = s['success_ci95']
        lat = s['latency_s']
        rows.append([task, s['episodes'], s['successes'],
                     f'{100 * s["success_rate"]:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]',
                     fmt(s['time_to_success_s'], 3), fmt(lat['p50'] * 1e3, 3),
                     fmt(lat['p90'] * 1e3, 3)])
    return rows


EXECUTION_HEADER = ['task', 'chunks/s', 'latency p50 / p90 / p99 [ms]', 'starved periods',
                    'seam jump [x nominal step] mean (max)', 'jerk RMS [rad/s^3]']


def execution_rows(summary):
    """Rows of the cadence and seam table from `summarize`'s output (formatted)."""
    rows = []
    for task, s in summary.items():
        lat = s['latency_s']
        rows.append([task, fmt(s['chunks_per_s'], 3),
                     ' / '.join(fmt(lat[q] * 1e3, 3) for q in ('p50', 'p90', 'p99')),
                     f'{100 * s["starved_fraction"]:.1f}%'
                     if s['starved_fraction'] == s['starved_fraction'] else '-',
                     f'{fmt(s["seam_jump"], 3)} ({fmt(s["seam_jump_max"], 3)})',
                     fmt(s['jerk_rms'], 3)])
    return rows


DDS_LOOP = 'simulator node + policy node as separate processes over DDS'


def write_closed_loop_report(results, options, out_dir, notes=(), loop=DDS_LOOP):
    """report.md, episodes.csv, summary.json and closed_loop.png; returns the report path.

    `loop` says in words how the episodes ran (the DDS loop or the in-process runner).
    """
    os.makedirs(out_dir, exist_ok=True)
    png = plot_closed_loop(results, os.path.join(out_dir, 'closed_loop.png'))
    header = ['task', 'episodes', 'successes', 'success rate [95% CI]', 'time to success [s]',
              'chunk latency p50 [ms]', 'p90 [ms]']
    seeds = f'{options.seed_start}..{options.seed_start + options.episodes - 1}'
    parts = ['# Closed-loop evaluation', '']
    parts += [f'- {n}' for n in notes]
    parts += [f'- {loop}; held-out seeds '
              f'{seeds} per task (demonstrations use seeds < 1,000,000)',
              f'- control {options.rate_hz:g} Hz, camera {options.image_size} px / '
              f'{options.fov_deg:g} deg field of view'
              f'{" (and the side camera)" if options.side_camera else ""}, max steps '
              f'{options.max_steps or "task default"}, executed actions per chunk '
              f'{options.execute_steps or "until the next chunk (every frame)"}',
              f'- execution mode `{options.execution}`, injected latency '
              f'{options.inject_latency_ms:g} ms per inference', '',
              markdown_table(header, closed_loop_rows(results, options.tasks)), '',
              'Cadence and seams (`evaluation.execution_metrics`: starved periods had no '
              'action due; the seam jump is the largest joint step at a chunk boundary of the '
              'executed trajectory over the median step between boundaries):', '',
              markdown_table(EXECUTION_HEADER,
                             execution_rows(summarize(results, options.tasks))), '',
              markdown_table(['task', 'seed', 'instruction', 'success', 'ticks', 'chunks',
                              'wall [s]'],
                             [[r.task, r.seed, r.instruction, 'yes' if r.success else 'no',
                               r.steps, r.chunks, f'{r.wall_s:.1f}'] for r in results]), '',
              f'![closed loop]({os.path.basename(png)})', '']
    path = os.path.join(out_dir, 'report.md')
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(parts) + '\n')
    write_csv(os.path.join(out_dir, 'episodes.csv'),
              ['task', 'seed', 'instruction', 'success', 'steps', 'time_to_success_s', 'wall_s',
               'chunks', 'latency_mean_s'],
              [[r.task, r.seed, r.instruction, int(r.success), r.steps, r.time_to_success_s,
                r.wall_s, r.chunks, float(np.mean(r.latencies_s)) if r.latencies_s else '']
               for r in results])
    write_json(os.path.join(out_dir, 'summary.json'),
               {'options': dict(options.__dict__), 'tasks': summarize(results, options.tasks),
                'episodes': [r.summary() for r in results]})
    return path


# ---------------------------------------------------------------------- checkpoint card
def write_checkpoint_readme(out, info):
    """Write README.md next to the weights: what this checkpoint is and how it was made.

    `info` is the checkpoint's recipe.json (make_default_checkpoint writes both).
    """
    train, recipe, grounding = info['train'], info['recipe'], info.get('grounding')
    demos = ', '.join(f'{task} {n}' for task, n in info.get('demonstrations', {}).items())
    lines = [
        '# Default checkpoint (made by make_default_checkpoint)', '',
        f'- command: `{info["command"]}` ({info["train_wall_s"]:.0f} s, '
        f'{info["threads"]} torch thread(s))',
        f'- plan `{recipe["plan"]}`, tasks {", ".join(recipe["tasks"])}; demonstrations: '
        f'{demos} (reach: {recipe["scenes"]} scenes x {recipe["targets_per_scene"]} targets); '
        f'camera {recipe["image_size"]} px / {recipe["fov_deg"]:g} deg',
    ]
    if grounding:
        lines.append(f'- 3D grounding pre-training: {grounding["steps"]} steps; held-out scenes '
                     f'{grounding["val_scene_seeds"][0]}..{grounding["val_scene_seeds"][1]}: '
                     f'median error {100 * grounding["val_median_error_m"]:.1f} cm, '
                     f'{100 * grounding["val_within_5cm"]:.0f}% within 5 cm (the mean centre: '
                     f'{100 * grounding["baseline_median_error_m"]:.1f} cm)'
                     + (f'; goal point {100 * grounding["val_goal_median_error_m"]:.1f} cm'
                        if grounding.get('val_goal_median_error_m') is not None else ''))
    lines.append(f'- policy training: {train.get("steps")} steps; held-out action MSE '
                 f'{train.get("val_mse"):.4g} (predicting the mean: '
                 f'{train.get("baseline_mse"):.4g})')
    for task, cl in (info.get('closed_loop') or {}).items():
        low, high = cl['success_ci95']
        lines.append(f'- closed loop {task} (simulator and policy node over DDS, lockstep, '
                     f'{recipe["execute_steps"]} actions per chunk) on held-out seeds '
                     f'{cl["seeds"][0]}..{cl["seeds"][-1]}: {cl["successes"]}/{cl["episodes"]} '
                     f'successful ({100 * cl["success_rate"]:.0f}%, 95% CI {100 * low:.0f}-'
                     f'{100 * high:.0f}%), mean time to success {cl["time_to_success_s"]:.2f} s')
    lines += ['', 'Files: config.yaml, model.safetensors, normalization.safetensors, tokenizer/ '
              '(loaded by the policy node), recipe.json (everything above, machine-readable).']
    with open(os.path.join(out, 'README.md'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')


__all__ = ['DDS_LOOP', 'EXECUTION_HEADER', 'aggregate_metrics', 'closed_loop_rows',
           'execution_rows', 'fmt', 'markdown_table',
           'plot_closed_loop', 'plot_replay_errors', 'plot_replay_trajectories', 'replay_section',
           'write_checkpoint_readme', 'write_closed_loop_report', 'write_csv', 'write_json',
           'write_replay_report']

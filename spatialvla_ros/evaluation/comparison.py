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


"""The plan comparison: one table of cost and quality per fusion plan, on equal terms.

Every plan is trained on the same demonstrations (same episodes, same held-out split, same
seed and recipe) or given as a checkpoint; then, per plan and with identical inputs: parameter
counts, peak memory and latency (prefix, one denoising step, a chunk; each plan in a fresh
process, `latency.main`), held-out action error (full denoised chunks from seeded noise, in
robot units, against predicting the training mean), and closed-loop success per task on
held-out seeds (`closed_loop.summarize` rows). The table is written as Markdown and CSV with
the run's configuration, seeds and hardware.
"""

from dataclasses import dataclass
from dataclasses import field
import json
import os
import platform
import subprocess
import sys

import numpy as np
from spatialvla_ros.data.dataset import EpisodeDataset
from spatialvla_ros.data.dataset import load_episodes
from spatialvla_ros.data.dataset import split_episodes
from spatialvla_ros.evaluation.report import fmt
from spatialvla_ros.evaluation.report import markdown_table
from spatialvla_ros.evaluation.report import write_csv
from spatialvla_ros.evaluation.report import write_json
from spatialvla_ros.training.options import TrainOptions
from spatialvla_ros.training.trainer import train
from spatialvla_ros.training.validation import val_indices
import torch

NOTES_KEYS = ('demos', 'train', 'heldout', 'closed_loop', 'latency', 'hardware', 'software')


@dataclass
class PlanResult:
    """Everything measured for one plan."""

    plan: str
    checkpoint: str
    parameters: dict = field(default_factory=dict)
    latency: dict = field(default_factory=dict)            # latency.measure_checkpoint output
    heldout: dict = field(default_factory=dict)            # heldout_action_error output
    closed_loop: dict = field(default_factory=dict)        # task -> summarize() row
    train: dict = field(default_factory=dict)              # trainer summary (if trained here)


def hardware_notes():
    """CPU model, cores, GPU (if any), torch version and threads."""
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'
    return {'cpu': cpu, 'cores': os.cpu_count(), 'gpu': gpu, 'torch': torch.__version__,
            'torch_threads': torch.get_num_threads(), 'python': platform.python_version()}


def git_revision(repo):
    try:
        out = subprocess.run(['git', '-C', repo, 'rev-parse', '--short', 'HEAD'],
                             capture_output=True, text=True, timeout=10, check=False)
        return out.stdout.strip() or 'unknown'
    except (OSError, subprocess.SubprocessError):
        return 'unknown'


def heldout_episodes(data, config, cache_dir=None):
    """Return the held-out episodes of `data` for `config`.

    It is the trainer's own split (same function, same val_fraction and seed), so every plan
    is scored on the same episodes.
    """
    episodes, _ = load_episodes(list(data), config, cache_dir=cache_dir)
    _, val = split_episodes(episodes, config.train.val_fraction, config.train.seed)
    return val


def heldout_action_error(policy, episodes, max_samples=256, batch_size=16, seed=0):
    """Score full denoised chunks against the recorded actions of held-out frames.

    Gives the MSE in robot units, the MSE of predicting the training mean action (the
    checkpoint's statistics) and their ratio.
    """
    dataset = EpisodeDataset(episodes)
    if len(dataset) == 0:
        nan = float('nan')
        return {'mse': nan, 'baseline_mse': nan, 'ratio': nan, 'samples': 0}
    indices = val_indices(len(dataset), max_samples)
    mean = policy.processor.stats.action_mean.astype(np.float64)
    err = base = count = 0.0
    for start in range(0, len(indices), batch_size):
        samples = [dataset[i] for i in indices[start:start + batch_size]]
        pred = policy.predict_chunks([s[0] for s in samples], seed=seed + start)
        target = np.stack([s[1] for s in samples]).astype(np.float64)
        mask = np.stack([s[2] for s in samples]).astype(np.float64)[..., None]   # (B, H, 1)
        err += float((((pred - target) ** 2) * mask).sum())
        base += float((((mean - target) ** 2) * mask).sum())
        count += float(mask.sum()) * target.shape[-1]
    return {'mse': err / count, 'baseline_mse': base / count,
            'ratio': err / max(base, 1e-12), 'samples': len(indices)}


def measure_latency_subprocess(checkpoint, out_json, threads=1, repeats=10, device='cpu',
                               dtype='', env=None):
    """latency.main in a fresh process (clean peak memory); returns its JSON."""
    argv = [sys.executable, '-m', 'spatialvla_ros.evaluation.latency', '--checkpoint',
            checkpoint, '--json', out_json, '--repeats', str(repeats), '--threads',
            str(threads), '--device', device]
    if dtype:
        argv += ['--dtype', dtype]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f'latency measurement of {checkpoint} failed:\n{proc.stderr[-2000:]}')
    with open(out_json, encoding='utf-8') as f:
        return json.load(f)


def train_plan(config_path, data, run_dir, overrides, cache_dir):
    """Train one plan with this project's trainer, in this process; returns its summary.

    `overrides` are TrainOptions fields (steps, batch_size, seed, ...). The trainer's split,
    seed and recipe come from the config file, identical for the tiny configs of every plan.
    """
    options = TrainOptions(config=config_path, data=tuple(data), out_dir=run_dir,
                           cache_dir=cache_dir, device='cpu', progress=False,
                           **overrides).validate()
    summary = train(options)
    with open(os.path.join(run_dir, 'summary.json'), 'w', encoding='utf-8') as f:
        json.dump(summary, f, indent=1, default=str)
    return summary


# ---------------------------------------------------------------------- the table
TABLE_HEADER = ['plan', 'params total', 'params trainable', 'peak memory [MiB]',
                'prefix [ms]', 'denoise step [ms]', 'chunk [ms]', 'chunk w/o prefix cache [ms]',
                'held-out action MSE', 'MSE / mean-baseline']


def table_rows(results, tasks):
    """(header, formatted rows, raw rows) of the comparison table."""
    header = TABLE_HEADER + [f'success {t}' for t in tasks] + \
        [f'time to success {t} [s]' for t in tasks]
    rows, raw = [], []
    for r in results:
        lat, held, p = r.latency, r.heldout, r.parameters
        values = [r.plan, p.get('total'), p.get('trainable'), lat.get('peak_memory_mb'),
                  _ms(lat.get('prefix_s')), _ms(lat.get('step_s')), _ms(lat.get('chunk_s')),
                  _ms(lat.get('chunk_recompute_s')), held.get('mse'), held.get('ratio')]
        success, timing = [], []
        for t in tasks:
            row = r.closed_loop.get(t)
            if row:
                success.append(f'{row["successes"]}/{row["episodes"]}')
                timing.append(row['time_to_success_s'])
            else:
                success.append(None)
                timing.append(None)
        raw.append(values + [row and row['success_rate'] for row in
                             (r.closed_loop.get(t) for t in tasks)] + timing)
        rows.append([values[0], fmt(values[1]), fmt(values[2]), fmt(values[3], 3)]
                    + [fmt(v, 3) for v in values[4:8]] + [fmt(values[8], 3), fmt(values[9], 3)]
                    + [s or '-' for s in success] + [fmt(v, 3) for v in timing])
    return header, rows, raw


def _ms(seconds):
    return None if seconds is None else seconds * 1e3


def write_comparison(results, tasks, notes, out_dir):
    """comparison.md, comparison.csv and comparison.json; returns (md path, markdown text)."""
    os.makedirs(out_dir, exist_ok=True)
    header, rows, raw = table_rows(results, tasks)
    table = markdown_table(header, rows)
    lines = ['# Fusion plan comparison', '', table, '']
    for key in NOTES_KEYS:
        if key in notes:
            lines.append(f'- **{key}**: {notes[key]}')
    text = '\n'.join(lines) + '\n'
    md = os.path.join(out_dir, 'comparison.md')
    with open(md, 'w', encoding='utf-8') as f:
        f.write(text)
    write_csv(os.path.join(out_dir, 'comparison.csv'), header, raw)
    write_json(os.path.join(out_dir, 'comparison.json'),
               {'notes': notes, 'plans': [r.__dict__ for r in results]})
    return md, text


__all__ = ['PlanResult', 'TABLE_HEADER', 'git_revision', 'hardware_notes',
           'heldout_action_error', 'heldout_episodes', 'measure_latency_subprocess',
           'table_rows', 'train_plan', 'write_comparison']

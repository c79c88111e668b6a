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

"""Progress reporting of a run: CSV log, tqdm bar and the loss plot (matplotlib, Agg)."""

import csv
import json
import math
import os

from tqdm import tqdm

CSV_FIELDS = ('step', 'loss', 'lr', 'grad_norm', 'val_mse', 'baseline_mse', 'time')


def _fmt(value):
    if value is None:
        return ''
    if isinstance(value, float):
        return f'{value:.8g}'
    return str(value)


class CsvLog:
    """Append-only CSV of the run (step, loss, lr, grad_norm, val_mse, baseline_mse, time).

    On resume, rows after the resumed step are dropped (they belong to the interrupted run).
    """

    def __init__(self, path, resume_step=None):
        self.path = path
        rows = read_csv(path) if resume_step is not None and os.path.isfile(path) else []
        rows = [r for r in rows if int(r['step']) <= (resume_step or 0)]
        with open(path, 'w', newline='', encoding='utf-8') as f:
            writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: row.get(k, '') for k in CSV_FIELDS})

    def write(self, **row):
        with open(self.path, 'a', newline='', encoding='utf-8') as f:
            csv.DictWriter(f, fieldnames=CSV_FIELDS).writerow(
                {k: _fmt(row.get(k)) for k in CSV_FIELDS})


def truncate_jsonl(path, step):
    """Drop JSON lines logged after `step` (by an interrupted run that is being resumed)."""
    if not os.path.isfile(path):
        return
    with open(path, encoding='utf-8') as f:
        lines = [line for line in f if line.strip() and json.loads(line)['step'] <= step]
    with open(path, 'w', encoding='utf-8') as f:
        f.writelines(lines)


def read_csv(path):
    with open(path, newline='', encoding='utf-8') as f:
        return list(csv.DictReader(f))


def _column(rows, key):
    xs, ys = [], []
    for row in rows:
        if row.get(key) not in (None, ''):
            value = float(row[key])
            if math.isfinite(value):
                xs.append(int(row['step']))
                ys.append(value)
    return xs, ys


def plot_losses(csv_path, png_path, title=''):
    """Training loss (left) and held-out action MSE vs the mean baseline (right), log scale."""
    # matplotlib (about half a second) is imported only by runs that write the plot.
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    rows = read_csv(csv_path)
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 4))
    xs, ys = _column(rows, 'loss')
    ax_loss.plot(xs, ys, label='training loss (flow matching, normalised)')
    ax_loss.set_xlabel('step')
    ax_loss.set_yscale('log')
    ax_loss.legend()
    for key, label, style in (('val_mse', 'held-out action MSE', 'o-'),
                              ('baseline_mse', 'predict-the-mean baseline', '--')):
        xs, ys = _column(rows, key)
        if xs:
            ax_val.plot(xs, ys, style, label=label)
    ax_val.set_xlabel('step')
    ax_val.set_ylabel('MSE [robot units^2]')
    ax_val.set_yscale('log')
    ax_val.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    tmp = png_path + '.tmp.png'
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, png_path)
    return png_path


def progress_bar(total, initial, enabled, desc='train'):
    """Create the tqdm bar on the main process (a no-op object elsewhere)."""
    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, unit='step',
                dynamic_ncols=True)


__all__ = ['CSV_FIELDS', 'CsvLog', 'plot_losses', 'progress_bar', 'read_csv', 'truncate_jsonl']

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

"""The training loop, end to end on simulator demonstrations.

Covered: schedule, checkpoints the policy node loads, exact resume after a SIGKILL, atomic
checkpoints under a kill mid-write, frozen VLM, the CLI and the ROS node.

Data: simulator demonstrations (demo_bags.generate_demos, shared per session).
"""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

from checkpoint_utils import make_tiny_checkpoint
from demo_bags import generate_demos
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from repo_paths import REPO_ROOT
from spatialvla_ros.data.dataset import load_episodes
from spatialvla_ros.models.checkpoint import load_checkpoint
from spatialvla_ros.models.tokenizer import build_word_tokenizer
from spatialvla_ros.training import train_state
from spatialvla_ros.training.configuration_training import TrainingConfig
from spatialvla_ros.training.options import TrainOptions
from spatialvla_ros.training.progress import read_csv
from spatialvla_ros.training.schedule import warmup_cosine_factor
from spatialvla_ros.training.schedule import WarmupCosineSchedule
from spatialvla_ros.training.trainer import Trainer
import torch
import yaml

REPO = REPO_ROOT


@pytest.fixture(scope='session')
def demos(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    return {'bags': generate_demos(base), 'cache': str(base / 'episode_cache')}


def options(demos, out_dir, plan='late_gemma', **kw):
    values = {'config': os.path.join(REPO, 'config', f'{plan}.yaml'),
              'data': tuple(demos['bags']), 'out_dir': str(out_dir), 'strategy': 'single',
              'device': 'cpu', 'steps': 6, 'batch_size': 4, 'checkpoint_every': 2,
              'log_every': 1, 'val_every': 100, 'val_max_samples': 4,
              'cache_dir': demos['cache'], 'progress': False, 'plot': False}
    values.update(kw)
    return TrainOptions(**values).validate()


def run(opts, on_log=None):
    trainer = Trainer(opts, on_log=on_log)
    try:
        return trainer, trainer.run()
    finally:
        trainer.close()


def losses(run_dir):
    return {int(r['step']): float(r['loss']) for r in read_csv(os.path.join(run_dir,
                                                                            'train_log.csv'))}


@pytest.fixture(scope='module')
def reference(demos, tmp_path_factory):
    """Train the uninterrupted 6-step reference run (checkpoints every 2 steps)."""
    out = tmp_path_factory.mktemp('reference')
    trainer, summary = run(options(demos, out, plot=True))
    return {'dir': str(out), 'summary': summary, 'losses': losses(out),
            'weights': {k: v.clone() for k, v in trainer.model.state_dict().items()}}


def test_warmup_cosine_schedule_and_json_state():
    params = [torch.nn.Parameter(torch.zeros(2))]
    opt = torch.optim.AdamW(params, lr=0.5)
    sched = WarmupCosineSchedule(opt, warmup_steps=4, total_steps=20, min_ratio=0.1)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]['lr'])
        sched.step()
    assert lrs[:4] == pytest.approx([0.125, 0.25, 0.375, 0.5])
    for step in range(4, 20):  # closed form of the cosine from 1 to min_ratio
        expect = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - 4) / 16))
        assert lrs[step] == pytest.approx(0.5 * expect)
    state = json.loads(json.dumps(sched.state_dict()))
    other_opt = torch.optim.AdamW(params, lr=0.5)
    WarmupCosineSchedule(other_opt, 4, 20, 0.1).load_state_dict(state)
    assert other_opt.param_groups[0]['lr'] == opt.param_groups[0]['lr']
    assert warmup_cosine_factor(0, 0, 10) == 1.0


def test_run_writes_policy_checkpoint_log_and_plot(reference):
    run_dir, summary = reference['dir'], reference['summary']
    latest = train_state.latest_checkpoint(run_dir)
    assert latest == summary['checkpoint'] and latest.endswith('step_0000006')
    model, config, stats, tokenizer = load_checkpoint(latest)  # what the policy node does
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, reference['weights'][name], rtol=0, atol=0)
    assert config.plan == 'late_gemma' and stats.action_dim == 8
    assert tokenizer('reach the red cube')['input_ids']
    files = [os.path.join(d, f) for d, _, fs in os.walk(latest) for f in fs]
    assert not [f for f in files if f.endswith(('.pt', '.pth', '.bin', '.pkl', '.pickle'))]
    rows = read_csv(os.path.join(run_dir, 'train_log.csv'))
    assert [int(r['step']) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[-1]['val_mse'] and rows[-1]['baseline_mse'] and rows[0]['lr']
    assert os.path.getsize(os.path.join(run_dir, 'train_loss.png')) > 1000
    assert summary['val_mse'] > 0 and len(summary['val_mse_per_step']) == 10
    assert len(summary['val_mse_per_dim']) == 8
    with open(os.path.join(run_dir, 'val_metrics.jsonl'), encoding='utf-8') as f:
        lines = [json.loads(line) for line in f]
    assert [r['step'] for r in lines] == [6] and lines[0]['val_mse'] == summary['val_mse']
    assert len(lines[0]['baseline_mse_per_dim']) == 8


def test_stop_and_resume_continue_exactly(demos, reference, tmp_path):
    stop_at = []

    def on_log(info):
        if info['step'] == 2:
            trainer.request_stop()
            stop_at.append(2)

    trainer = Trainer(options(demos, tmp_path), on_log=on_log)
    summary = trainer.run()
    trainer.close()
    assert summary['stopped'] and summary['checkpoint'].endswith('step_0000003')
    _, summary = run(options(demos, tmp_path, resume=True))
    assert summary['checkpoint'].endswith('step_0000006')
    assert losses(tmp_path) == reference['losses']


def test_sigkill_then_resume_matches_the_uninterrupted_run(demos, reference, tmp_path):
    cmd = [sys.executable, '-m', 'spatialvla_ros.tools.train', '--config',
           os.path.join(REPO, 'config', 'late_gemma.yaml'), '--data', *demos['bags'],
           '--out-dir', str(tmp_path), '--device', 'cpu', '--steps', '6', '--batch-size', '4',
           '--checkpoint-every', '2', '--log-every', '1', '--val-every', '100',
           '--val-max-samples', '4', '--cache-dir', demos['cache'], '--progress', 'false',
           '--plot', 'false']
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    pointer = tmp_path / 'checkpoints' / 'latest'
    deadline = time.monotonic() + 120
    while not pointer.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = train_state.latest_checkpoint(tmp_path)
    assert killed_at is not None
    _, summary = run(options(demos, tmp_path, resume=True))
    assert summary['checkpoint'].endswith('step_0000006')
    assert losses(tmp_path) == reference['losses']


def test_resume_with_more_steps_continues_the_run(demos, reference, tmp_path):
    shutil.copytree(reference['dir'], tmp_path, dirs_exist_ok=True)
    _, summary = run(options(demos, tmp_path, resume=True, steps=8))
    assert summary['steps'] == 8 and summary['checkpoint'].endswith('step_0000008')
    rows = {int(r['step']): r for r in read_csv(os.path.join(tmp_path, 'train_log.csv'))}
    assert {s: float(rows[s]['loss']) for s in range(1, 7)} == reference['losses']
    # From the resume step on, the learning rate follows the schedule of the new total (the
    # config's warm-up of 30 steps is capped at the run's 8 steps).
    for step in (7, 8):
        expect = 1e-3 * warmup_cosine_factor(step - 1, min(30, 8), 8)
        assert float(rows[step]['lr']) == pytest.approx(expect, rel=1e-6)


def test_resume_cannot_go_back_before_its_checkpoint(demos, reference, tmp_path):
    shutil.copytree(reference['dir'], tmp_path, dirs_exist_ok=True)
    with pytest.raises(ValueError, match=r'steps: got 4, .*step 6'):
        run(options(demos, tmp_path, resume=True, steps=4))


def test_keep_last_removes_old_checkpoints_but_never_latest(demos, tmp_path):
    _, summary = run(options(demos, tmp_path, steps=4, checkpoint_every=1, keep_last=2))
    root = tmp_path / 'checkpoints'
    assert sorted(os.listdir(root)) == ['latest', 'step_0000003', 'step_0000004']
    assert train_state.latest_checkpoint(tmp_path) == summary['checkpoint']
    # `latest` naming an older step (a run resumed from it) keeps it and every newer one.
    (root / 'latest').write_text('step_0000003\n')
    assert train_state.prune_checkpoints(tmp_path, 1) == []
    assert sorted(os.listdir(root)) == ['latest', 'step_0000003', 'step_0000004']
    (root / 'latest').write_text('step_0000004\n')
    assert [os.path.basename(p) for p in train_state.prune_checkpoints(tmp_path, 1)] == [
        'step_0000003']
    assert sorted(os.listdir(root)) == ['latest', 'step_0000004']


def _train_cli(args, env=None):
    cmd = [sys.executable, '-m', 'spatialvla_ros.tools.train', '--device', 'cpu', '--steps',
           '1', '--batch-size', '4', '--progress', 'false', '--plot', 'false', *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS='1', **(env or {})))


def test_cli_reports_a_bad_run_in_one_line_with_status_2(demos, tmp_path):
    gemma = os.path.join(REPO, 'config', 'late_gemma.yaml')
    with open(gemma, encoding='utf-8') as f:
        values = yaml.safe_load(f)
    values['train']['learning_rat'] = 0.1
    bad_key = tmp_path / 'bad_key.yaml'
    bad_key.write_text(yaml.safe_dump(values))
    data = ['--data', *demos['bags'], '--cache-dir', demos['cache']]
    cases = [
        (['--config', gemma, '--data', str(tmp_path / 'no_demos')], 'no_demos'),
        (['--config', str(bad_key), *data], 'learning_rat'),
        (['--config', gemma, *data, '--init-checkpoint', str(tmp_path / 'no_ckpt')], 'no_ckpt'),
    ]
    for args, named in cases:
        out = _train_cli(args + ['--out-dir', str(tmp_path / 'run')])
        assert out.returncode == 2, out.stderr
        assert 'Traceback' not in out.stderr, out.stderr
        last = out.stderr.strip().splitlines()[-1]
        assert last.startswith('error: ') and named in last, out.stderr
    out = _train_cli(cases[0][0] + ['--out-dir', str(tmp_path / 'run'), '--debug'])
    assert out.returncode == 2 and 'Traceback' in out.stderr and 'no_demos' in out.stderr
    out = _train_cli(cases[0][0] + ['--out-dir', str(tmp_path / 'run')],
                     env={'SPATIALVLA_DEBUG': '1'})
    assert out.returncode == 2 and 'Traceback' in out.stderr


def test_train_node_reports_a_bad_run_in_one_line_with_status_2(tmp_path, spawn):
    proc = spawn(['-m', 'spatialvla_ros.nodes.train_node', '--ros-args',
                  '-p', f"config:={os.path.join(REPO, 'config', 'late_gemma.yaml')}",
                  '-p', f"data:=['{tmp_path / 'no_demos'}']",
                  '-p', f"out_dir:={tmp_path / 'run'}", '-p', 'device:=cpu'])
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    assert 'Traceback' not in out, out
    errors = [line for line in out.splitlines() if 'no_demos' in line]
    assert len(errors) == 1 and '[ERROR]' in errors[0], out


WRITER = textwrap.dedent("""
    import sys
    from spatialvla_ros.training.options import TrainOptions
    from spatialvla_ros.training.trainer import Trainer
    trainer = Trainer(TrainOptions(**__import__('json').loads(sys.argv[1]))).setup()
    for step in range(1, 100000):
        trainer.save(step, 0.0)
""")


def _staging(root):
    return [p.name for p in root.iterdir() if '.staging-' in p.name] if root.exists() else []


def test_sigkill_during_checkpoint_write_leaves_latest_loadable(demos, tmp_path):
    opts = options(demos, tmp_path)
    payload = {k: (list(v) if isinstance(v, tuple) else v) for k, v in opts.__dict__.items()}
    proc = subprocess.Popen([sys.executable, '-c', WRITER, json.dumps(payload)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    root = tmp_path / 'checkpoints'
    deadline = time.monotonic() + 120
    try:
        while not (root / 'latest').exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        # Freeze the writer while a checkpoint is half written (staging directory present),
        # then kill it there; if the write finished in between, let it go on and retry.
        while time.monotonic() < deadline:
            if not _staging(root):
                time.sleep(0.0005)
                continue
            proc.send_signal(signal.SIGSTOP)
            if _staging(root):
                break
            proc.send_signal(signal.SIGCONT)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    leftovers = _staging(root)
    assert leftovers, 'the writer was not caught mid-write'
    latest = train_state.latest_checkpoint(tmp_path)
    model, config, stats, _ = load_checkpoint(latest)
    assert config.plan == 'late_gemma' and stats.action_dim == 8
    # The next run removes the half-written staging directory and resumes from `latest`.
    trainer = Trainer(options(demos, tmp_path, resume=True)).setup()
    assert trainer.start_step == int(os.path.basename(latest).split('_')[1])
    assert not _staging(root)
    trainer.close()


def test_expert_only_training_keeps_the_vlm_frozen(demos, tmp_path):
    torch.manual_seed(0)
    init = Trainer(options(demos, tmp_path / 'a', plan='late_llama', trainable='expert_only',
                           steps=2)).setup()
    before = {k: v.clone() for k, v in init.model.state_dict().items()}
    init.close()
    trainer, _ = run(options(demos, tmp_path / 'b', plan='late_llama', trainable='expert_only',
                             steps=2))
    after = trainer.model.state_dict()
    frozen = [k for k in after if k.startswith(('vlm.', 'encoder3d.'))]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    moved = [k for k in after if k.startswith('action_head.')]
    assert any(not torch.equal(before[k], after[k]) for k in moved)


def test_help_does_not_import_torch():
    code = ('import sys\n'
            'from spatialvla_ros.tools import train\n'
            'try:\n    train.main(["--help"])\nexcept SystemExit as e:\n    assert e.code == 0\n'
            'assert "rclpy" not in sys.modules\n'
            'from spatialvla_ros.nodes import train_node\n'
            'assert train_node.main(["--help"]) == 0\n'
            'assert "torch" not in sys.modules\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert '--strategy' in out.stdout and 'val_max_samples' in out.stdout
    assert '--keep-last' in out.stdout and 'keep_last (integer, default 3)' in out.stdout


def test_train_node_publishes_progress_and_finishes(demos, tmp_path, ros_env, spawn,
                                                    monkeypatch):
    params = tmp_path / 'train_node.yaml'
    with open(os.path.join(REPO, 'config', 'params', 'train_node.yaml'), encoding='utf-8') as f:
        values = yaml.safe_load(f)['train_node']['ros__parameters']
    values.update(config=os.path.join(REPO, 'config', 'late_gemma.yaml'),
                  data=list(demos['bags']), out_dir=str(tmp_path / 'run'), device='cpu',
                  steps=3, batch_size=4, val_every=3, val_max_samples=4,
                  cache_dir=demos['cache'], plot=False)
    params.write_text(yaml.safe_dump({'train_node': {'ros__parameters': values}}))
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(ros_env['ROS_DOMAIN_ID']))
    node = rclpy.create_node('train_node_listener', context=context)
    got, lock = [], threading.Lock()

    def store(msg):
        with lock:
            got.extend(msg.status)

    node.create_subscription(DiagnosticArray, '/diagnostics', store, 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    time.sleep(1.0)  # discovery before the node's first message
    try:
        proc = spawn(['-m', 'spatialvla_ros.nodes.train_node', '--ros-args', '--params-file',
                      str(params)])
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
        time.sleep(0.5)
    finally:
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
    with lock:
        statuses = list(got)
    steps = [s for s in statuses if s.message.startswith('step')]
    assert [s.message.split()[1] for s in steps][-1] == '3/3'
    final = next(s for s in statuses if s.message == 'training finished')
    values = {kv.key: kv.value for kv in final.values}
    assert values['checkpoint'].endswith('step_0000003') and float(values['val_mse']) > 0
    assert np.isfinite(float(values['mse_ratio']))


def test_fine_tuning_keeps_the_tokenizer_of_its_initial_checkpoint(demos, tmp_path):
    init = make_tiny_checkpoint(str(tmp_path / 'init'))
    _, summary = run(options(demos, tmp_path / 'run', steps=1, init_checkpoint=init))
    tok_init = load_checkpoint(init)[3]
    tok_run = load_checkpoint(summary['checkpoint'])[3]
    config = TrainingConfig.from_yaml(os.path.join(REPO, 'config', 'late_gemma.yaml'))
    episodes, _ = load_episodes(demos['bags'], config, cache_dir=demos['cache'])
    instructions = sorted({str(i) for e in episodes for i in e.instructions})
    fresh = build_word_tokenizer(instructions, str(tmp_path / 'fresh'))
    # A tokenizer built from the demonstrations would number the words differently, so
    # the initial weights' embeddings would be read under the wrong ids.
    assert any(fresh(t)['input_ids'] != tok_init(t)['input_ids'] for t in instructions)
    for text in instructions:
        assert tok_run(text)['input_ids'] == tok_init(text)['input_ids'], text

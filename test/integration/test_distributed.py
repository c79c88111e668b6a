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

"""Scale-out: 2 gloo processes (torchrun) follow the 1-process loss curve, DDP and FSDP2.

Same global batch, same seed: the sharded data and the per-sample noise / time draws make the
two-process run compute the same global-batch gradient, so losses and validation metrics
must agree up to float32 summation order (1e-5 relative), and the weights after 4 AdamW steps
of lr 1e-3 to 1e-5 absolute (1 % of one step: Adam rescales tiny gradients). DDP runs
late fusion (Gemma expert); FSDP runs deep fusion, whose layers are driven submodule by
submodule (the harder case for FSDP's per-unit gathering), with gradient checkpointing.
"""

import json
import os
import subprocess
import sys
import textwrap

from demo_bags import generate_demos
import pytest
from repo_paths import REPO_ROOT
from spatialvla_ros.models.checkpoint import load_checkpoint
from spatialvla_ros.training.distributed import free_port
from spatialvla_ros.training.progress import read_csv
from spatialvla_ros.training.trainer import Trainer
from test_training import options
import torch

REPO = REPO_ROOT
CASES = {'ddp': 'late_gemma', 'fsdp': 'deep_fusion'}
RTOL = 1e-5

DRIVER = textwrap.dedent("""
    import json, sys
    from spatialvla_ros.training import distributed
    from spatialvla_ros.training.options import TrainOptions
    from spatialvla_ros.training.trainer import Trainer
    jobs = json.loads(sys.argv[1])
    ctx = distributed.setup('ddp', 'cpu')     # one gloo group, reused by both strategies
    results = {}
    for strategy, values in jobs.items():
        sub = distributed.DistContext(strategy, ctx.rank, ctx.world_size, ctx.local_rank,
                                      ctx.device, ctx.backend)
        results[strategy] = Trainer(TrainOptions(**values), ctx=sub).run()
    if ctx.rank == 0:
        with open(sys.argv[2], 'w') as f:
            json.dump(results, f, default=str)
    distributed.teardown(ctx)
""")


@pytest.fixture(scope='module')
def demos(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    return {'bags': generate_demos(base), 'cache': str(base / 'episode_cache')}


def _opts(demos, out_dir, plan, strategy):
    # 4 steps, one checkpoint and one validation at the end. Deep fusion also recomputes its
    # joint layers in backward (gradient checkpointing) to cover FSDP gathering on recompute.
    return options(demos, out_dir, plan=plan, strategy=strategy, steps=4, checkpoint_every=4,
                   gradient_checkpointing='true' if plan == 'deep_fusion' else '')


def _single(demos, out_dir, plan):
    trainer = Trainer(_opts(demos, out_dir, plan, 'single'))
    try:
        return trainer.run()
    finally:
        trainer.close()


@pytest.fixture(scope='module')
def runs(demos, tmp_path_factory):
    base = tmp_path_factory.mktemp('dist')
    jobs = {s: {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in _opts(demos, base / s, p, s).__dict__.items()}
            for s, p in CASES.items()}
    script = base / 'driver.py'
    script.write_text(DRIVER)
    result = base / 'result.json'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc-per-node', '2',
                           '--master-addr', '127.0.0.1', '--master-port', str(free_port()),
                           str(script), json.dumps(jobs), str(result)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(result, encoding='utf-8') as f:
        two = json.load(f)
    one = {s: _single(demos, base / f'{s}_single', p) for s, p in CASES.items()}
    return {'one': one, 'two': two, 'base': base}


@pytest.mark.parametrize('strategy', sorted(CASES))
def test_two_processes_follow_the_single_process_curve(runs, strategy):
    one, two, base = runs['one'][strategy], runs['two'][strategy], runs['base']
    assert two['world_size'] == 2 and two['strategy'] == strategy
    curve_1 = [float(r['loss']) for r in read_csv(one['csv'])]
    curve_2 = [float(r['loss']) for r in read_csv(two['csv'])]
    assert len(curve_1) == len(curve_2) == 4
    assert curve_2 == pytest.approx(curve_1, rel=RTOL)
    for key in ('val_mse', 'baseline_mse'):
        assert two[key] == pytest.approx(one[key], rel=RTOL)
    assert two['val_mse_per_step'] == pytest.approx(one['val_mse_per_step'], rel=1e-4)
    # The checkpoint written by 2 processes (gathered from shards for FSDP) is a policy
    # checkpoint with the weights of the single-process run.
    m1 = load_checkpoint(one['checkpoint'])[0].state_dict()
    m2 = load_checkpoint(two['checkpoint'])[0].state_dict()
    assert m1.keys() == m2.keys()
    for name in m1:
        torch.testing.assert_close(m2[name], m1[name], rtol=1e-4, atol=1e-5)
    assert str(base) in two['checkpoint']

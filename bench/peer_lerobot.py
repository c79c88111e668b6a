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

"""
This project's deep fusion vs LeRobot 0.3.2's pi0 at equal shapes, side by side in one run.

Shapes (both sides, random weights, bf16 weights as LeRobot keeps pi0's): vision 224 px / patch
14, 2 layers 128 wide (MLP 512, 4 heads); VLM 4 layers 256 wide, MLP 1024, 4 heads / 1 KV head,
head_dim 64; expert 128 wide, MLP 512 (same layers and heads); prefix 304 tokens (256 visual +
48 text); chunk 50; 10 Euler steps; state and action 8-D. Per chunk (batch 1, no grad): prefix
(vision + VLM, K/V cached), one denoising step, a whole chunk. Per training step (batch 8):
forward + backward of the flow-matching loss, every parameter trainable on both sides.

pi0 runs in its own venv (LeRobot 0.3.2 needs transformers 4.52; this project needs 5.x),
created on first use under <repo>/.peer-venv from the package registry (torch pinned to the
local CPU build), through the worker bench/peer_lerobot_pi0.py. Each side is one long-lived
worker process; rounds interleave the sides (the order flips every round) so that both see the
same CPU contention; each round times --repeats call(s) per figure, and the table shows the
median over rounds with the range (the first round also warms up). Ratios are pi0 / this
project (> 1: this project is faster).

    python bench/peer_lerobot.py [--rounds 12] [--repeats 1] [--threads 1,2] [--compile]
                                 [--clock wall|cpu]
"""

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_VENV = os.path.join(REPO, '.peer-venv')
# The peer venv's packages. torch is the local CPU build (unpinned, pip pulls a CUDA build of
# several GB); LeRobot itself is installed without its dependencies (wandb, rerun, gym, ...,
# none of which pi0 needs) and these are what its pi0 modules import.
PEER_PACKAGES = (
    'torch==2.13.0', 'torchvision==0.28.0', 'transformers==4.52.4', 'draccus==0.10.0',
    'einops', 'huggingface-hub>=0.34.2,<1', 'safetensors', 'termcolor', 'deepdiff>=7.0.1,<9',
    'jsonlines', 'packaging', 'datasets>=2.19.0,<=3.6.0', 'imageio<3', 'pyserial', 'av',
    'pytest')
SHAPE = {
    'image_size': 224, 'patch_size': 14, 'vision_width': 128, 'vision_mlp': 512,
    'vision_layers': 2, 'vision_heads': 4, 'vlm_width': 256, 'vlm_mlp': 1024, 'layers': 4,
    'heads': 4, 'kv_heads': 1, 'head_dim': 64, 'vocab': 1024, 'expert_width': 128,
    'expert_mlp': 512, 'text_tokens': 48, 'chunk': 50, 'steps': 10, 'state_dim': 8,
    'action_dim': 8}
METRICS = (('prefix_s', 'prefix ms', 1e3), ('step_s', 'one step ms', 1e3),
           ('chunk_s', 'chunk ms', 1e3), ('train_s', 'train step ms', 1e3))


def ensure_peer_venv(path=PEER_VENV, lerobot_version='0.3.2', packages=PEER_PACKAGES):
    """Create a LeRobot venv when it is missing (a few minutes, once); return its python.

    LeRobot `lerobot_version` goes in without its dependencies, `packages` with theirs.
    """
    python = os.path.join(path, 'bin', 'python')
    probe = [python, '-c', f'import lerobot; assert lerobot.__version__ == "{lerobot_version}"']
    if os.path.exists(python) and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f'creating the venv at {path} (LeRobot {lerobot_version}) ...', file=sys.stderr,
          flush=True)
    base = getattr(sys, '_base_executable', sys.executable)
    subprocess.run([base, '-m', 'venv', path], check=True)
    with open(os.path.join(path, '.gitignore'), 'w', encoding='utf-8') as f:
        f.write('*\n')  # never committed, whatever the repository's .gitignore says
    pip = [python, '-m', 'pip', 'install', '-q']
    subprocess.run(pip + list(packages), check=True)
    subprocess.run(pip + ['--no-deps', f'lerobot=={lerobot_version}'], check=True)
    subprocess.run(probe, check=True)
    return python


class Worker:
    """One side's long-lived process: one JSON request per line in, one JSON line out."""

    def __init__(self, name, argv):
        self.name = name
        env = dict(os.environ, OMP_NUM_THREADS='2', TOKENIZERS_PARALLELISM='false')
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env, cwd=REPO)

    def ask(self, **request):
        self.proc.stdin.write(json.dumps(request) + '\n')
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f'the {self.name} worker died (exit code {self.proc.wait()}); '
                               'its error is printed above')
        return json.loads(line)

    def close(self):
        try:
            self.ask(op='quit')
        except (RuntimeError, BrokenPipeError, json.JSONDecodeError):
            pass
        self.proc.wait(timeout=30)


# ------------------------------------------------------------------ this project's worker
def project_config(shape):
    """config/deep_fusion.yaml resized to the bench shapes."""
    from spatialvla_ros.policies.configuration_policy import PolicyConfig

    r = dataclasses.replace
    config = PolicyConfig.from_yaml(os.path.join(REPO, 'config', 'deep_fusion.yaml'))
    s = shape
    vision = r(config.vision, image_size=s['image_size'], patch_size=s['patch_size'],
               hidden_size=s['vision_width'], intermediate_size=s['vision_mlp'],
               num_hidden_layers=s['vision_layers'], num_attention_heads=s['vision_heads'])
    heads = {'num_hidden_layers': s['layers'], 'num_attention_heads': s['heads'],
             'num_key_value_heads': s['kv_heads'], 'head_dim': s['head_dim']}
    lm = r(config.language_model, hidden_size=s['vlm_width'], intermediate_size=s['vlm_mlp'],
           vocab_size=s['vocab'], max_text_tokens=s['text_tokens'], **heads)
    expert = r(config.expert, hidden_size=s['expert_width'], intermediate_size=s['expert_mlp'],
               **heads)
    grid = s['image_size'] // s['patch_size']
    # Voxels small enough that every patch of the bench's point ramp gets its own token.
    enc = r(config.encoder3d, max_visual_tokens=grid * grid, voxel_size=0.02)
    action = r(config.action, chunk_size=s['chunk'], action_dim=s['action_dim'],
               state_dim=s['state_dim'], names=(), lower_limits=(), upper_limits=())
    return r(config, name='peer_bench', vision=vision, language_model=lm, expert=expert,
             encoder3d=enc, action=action, flow=r(config.flow, num_steps=s['steps'])).validate()


def project_observation(config, batch):
    """Random RGB, a tilted plane of points (one voxel per patch), random ids and state."""
    import torch

    from spatialvla_ros.models.modeling_spatialvla import ModelObservation

    g = torch.Generator().manual_seed(0)
    size = config.vision.image_size
    u = torch.linspace(0, 1, size)
    ramp = torch.stack(torch.broadcast_tensors(0.2 + 0.6 * u[None, :], -0.4 + 0.8 * u[:, None],
                                               0.1 + 0.2 * u[None, :]), dim=-1)
    lm = config.language_model
    ids = torch.randint(3, lm.vocab_size, (batch, lm.max_text_tokens), generator=g)
    return ModelObservation(
        images=torch.rand((batch, 1, 3, size, size), generator=g),
        points=ramp.expand(batch, 1, size, size, 3).clone(),
        state=torch.randn((batch, config.action.state_dim), generator=g),
        input_ids=ids, attention_mask=torch.ones_like(ids, dtype=torch.bool))


class ProjectBench:
    """This project's model + fixed inputs; the same requests as the pi0 worker."""

    def __init__(self, shape, compile_=False):
        import torch

        from spatialvla_ros.models.modeling_spatialvla import SpatialVLAModel

        self.torch = torch
        self.config = project_config(shape)
        torch.manual_seed(0)
        self.model = SpatialVLAModel(self.config).to(torch.bfloat16)
        self.compile = compile_
        self.compiled = False
        self.shape = shape

    def params(self):
        return sum(p.numel() for p in self.model.parameters())

    def dtype(self):
        return str(self.model.dtype)

    def infer(self, repeats, warmup, clock):
        torch = self.torch
        model = self.model.eval()
        if self.compile and not self.compiled:
            from spatialvla_ros.policies.policy_spatialvla import compile_model
            compile_model(model)
            self.compiled = True
        obs = project_observation(self.config, 1).to(dtype=torch.bfloat16)
        act = self.config.action
        noise = torch.randn((1, act.chunk_size, act.action_dim),
                            generator=torch.Generator().manual_seed(1))
        suffix_ar = model._suffix_ar
        t = torch.ones(1)
        tokens = []

        def prefix():
            embeds, mask = model.embed_prefix(obs)
            tokens[:] = [embeds.shape[1]]
            return model.backbone.encode_prefix(embeds, mask, suffix_ar)

        with torch.inference_mode():
            cache = prefix()

            def step():
                suffix = model.suffix_embedding(noise, t, obs.state)
                return model.action_head(model.backbone.decode_suffix(cache, suffix))

            def chunk():
                return model.sample_actions(obs, noise=noise)

            return {'prefix_s': timed(prefix, repeats, warmup, clock),
                    'step_s': timed(step, repeats, warmup, clock),
                    'chunk_s': timed(chunk, repeats, warmup, clock), 'tokens': tokens[0]}

    def train(self, repeats, batch, warmup, clock):
        torch = self.torch
        from spatialvla_ros.models.modeling_spatialvla import ModelBatch

        model = self.model.train()
        obs = project_observation(self.config, batch)
        act = self.config.action
        g = torch.Generator().manual_seed(2)
        data = ModelBatch(observation=obs,
                          actions=torch.randn((batch, act.chunk_size, act.action_dim),
                                              generator=g),
                          action_mask=torch.ones((batch, act.chunk_size), dtype=torch.bool))

        def step():
            model.compute_loss(data, generator=g).backward()
            model.zero_grad(set_to_none=True)

        return {'train_s': timed(step, repeats, warmup, clock)}


CLOCKS = {'wall': time.perf_counter, 'cpu': time.process_time}


def timed(fn, repeats, warmup=0, clock='wall'):
    """
    Median time [s] of fn over `repeats` calls after `warmup` untimed calls.

    clock 'wall': elapsed time; 'cpu': CPU time of this process, which leaves out the time
    other processes hold the cores (at 1 thread the latency of an unloaded machine; at 2
    threads the work of both threads, not latency).
    """
    clock = CLOCKS[clock]
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


def serve(make_bench):
    """
    Answer timing requests on stdin until 'quit' (the worker side of `Worker`).

    Shared by both workers (pi0's imports it from its own venv: this module imports only the
    standard library at load). make_bench(shape) builds the side's bench object.
    """
    import torch

    bench = None
    for line in sys.stdin:
        request = json.loads(line)
        if request['op'] == 'init':
            bench = make_bench(request['shape'])
            reply = {'params': bench.params(), 'torch': torch.__version__,
                     'dtype': bench.dtype()}
        elif request['op'] == 'quit':
            break
        else:
            torch.set_num_threads(request['threads'])
            clock = request.get('clock', 'wall')
            if request['op'] == 'infer':
                reply = bench.infer(request['repeats'], request['warmup'], clock)
            else:
                reply = bench.train(request['repeats'], request['batch'],
                                    request['warmup'], clock)
        print(json.dumps(reply), flush=True)
    return 0


# ------------------------------------------------------------------ driver
def fmt(values, scale):
    values = sorted(v * scale for v in values)
    med = statistics.median(values)
    if len(values) == 1:
        return f'{med:.1f}'
    return f'{med:.1f} ({values[0]:.1f}-{values[-1]:.1f})'


def main(args=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rounds', type=int, default=12,
                        help='interleaved rounds (default 12)')
    parser.add_argument('--repeats', type=int, default=1,
                        help='calls per figure and round (default 1)')
    parser.add_argument('--train-repeats', type=int, default=1,
                        help='training steps per figure and round (default 1)')
    parser.add_argument('--threads', default='1,2', help='torch thread counts (default 1,2)')
    parser.add_argument('--batch', type=int, default=8, help='training batch (default 8)')
    parser.add_argument('--compile', action='store_true',
                        help='also this project with torch.compile of prefix and step '
                             '(inference only)')
    parser.add_argument('--no-train', action='store_true', help='inference figures only')
    parser.add_argument('--clock', choices=sorted(CLOCKS), default='wall',
                        help="'wall' (default) or 'cpu': CPU time of each worker, which leaves "
                             'out time other processes take on a shared machine')
    parser.add_argument('--worker', choices=('project', 'project-compiled'),
                        help=argparse.SUPPRESS)
    ns = parser.parse_args(args)
    if ns.worker:
        return serve(lambda shape: ProjectBench(shape, ns.worker == 'project-compiled'))

    peer_python = ensure_peer_venv()
    here = os.path.abspath(__file__)
    workers = [Worker('project', [sys.executable, here, '--worker', 'project']),
               Worker('pi0', [peer_python, os.path.join(REPO, 'bench', 'peer_lerobot_pi0.py')])]
    if ns.compile:
        workers.insert(1, Worker('project+compile',
                                 [sys.executable, here, '--worker', 'project-compiled']))
    try:
        info = {w.name: w.ask(op='init', shape=SHAPE) for w in workers}
        threads = [int(t) for t in ns.threads.split(',')]
        results = {}  # (worker, threads, metric) -> [per-round medians]
        for rnd in range(ns.rounds):
            order = workers if rnd % 2 == 0 else workers[::-1]
            for n in threads:
                for w in order:
                    # The first round warms up (and compiles) each thread count.
                    warm = 2 if rnd == 0 else 0
                    out = w.ask(op='infer', threads=n, repeats=ns.repeats, warmup=warm,
                                clock=ns.clock)
                    if not ns.no_train and w.name != 'project+compile':
                        out.update(w.ask(op='train', threads=n, repeats=ns.train_repeats,
                                         batch=ns.batch, warmup=warm, clock=ns.clock))
                    for key, value in out.items():
                        results.setdefault((w.name, n, key), []).append(value)
                    print(f'round {rnd + 1} threads {n} {w.name}: '
                          + ', '.join(f'{k} {v * 1e3:.1f} ms' for k, v in out.items()
                                      if k.endswith('_s')), file=sys.stderr, flush=True)
    finally:
        for w in workers:
            w.close()

    names = [w.name for w in workers]
    print(f'this project (deep fusion) vs LeRobot 0.3.2 pi0, equal shapes, bf16 weights, '
          f'CPU, {ns.rounds} interleaved rounds x {ns.repeats} calls (train: '
          f'{ns.train_repeats} steps, batch {ns.batch}), {ns.clock} time; median over rounds '
          '(range)')
    for name in names:
        i = info[name]
        tokens = results.get((name, threads[0], 'tokens'), ['?'])[0]
        print(f'  {name}: {i["params"]:,d} parameters, {i["dtype"]}, prefix {tokens} tokens, '
              f'torch {i["torch"]}')
    head = f'{"figure":<14s} {"thr":>3s} ' + ' '.join(f'{n:>22s}' for n in names) + \
        ' ' + ' '.join(f'{"pi0/" + n:>16s}' for n in names if n != 'pi0')
    print(head)
    print('-' * len(head))
    for key, label, scale in METRICS:
        for n in threads:
            cols = [results.get((name, n, key)) for name in names]
            if not cols[-1] and not cols[0]:
                continue
            cells = [f'{fmt(c, scale):>22s}' if c else f'{"-":>22s}' for c in cols]
            peer = results.get(('pi0', n, key))
            ratios = []
            for name, c in zip(names, cols):
                if name == 'pi0':
                    continue
                ratios.append(f'{statistics.median(peer) / statistics.median(c):>6.2f}x / '
                              f'{min(peer) / min(c):.2f}x' if c and peer else f'{"-":>16s}')
            print(f'{label:<14s} {n:>3d} ' + ' '.join(cells) + ' ' + ' '.join(ratios))
    print('ratios: pi0 / this project, of the medians over rounds / of the best rounds (the '
          'least disturbed by other processes); > 1: this project is faster (target >= 1.5x '
          'per chunk and per training step)')
    return 0


if __name__ == '__main__':
    sys.exit(main())

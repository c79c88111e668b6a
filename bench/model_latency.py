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


"""Model latency of the three fusion plans, side by side in one run.

For each plan at the tiny size of config/<plan>.yaml (and, with --mid, a mid-size preset with
8-layer 512-wide VLM and a 256-wide expert), in fp32 and bf16: prefix time (3D encoder + VLM
(+ expert context) once), time of one denoising step (suffix only, prefix K/V cached), a full
chunk with the prefix cache (`sample_actions`) and a full chunk recomputing the prefix at every
step; the ratio recompute / cached is printed per row. Random weights: latency does not depend
on their values. Every figure is the median of --repeats runs in this one process.

    python bench/model_latency.py [--mid] [--repeats 20] [--threads 2] [--device cuda]

With --configs (the real-size presets on a GPU; bench/gpu_check.sh runs it), one row per
preset and variant: 'eager'; 'graph' (the whole 10-step denoising loop captured as one CUDA
graph, replayed per chunk); 'compile' (torch.compile of the denoising step, as the policy's
compile option). Latencies are p50/p99 over --repeats; peak memory is CUDA's allocator peak;
roofline share = max(FLOPs / peak FLOP/s, bytes / peak bandwidth) / measured time, with FLOPs
2 x (matmul parameters x tokens) + attention and bytes = bf16 weights read + K/V cache read
(an estimate: it ignores activations). --tiny shrinks every preset to run on a CPU.

    python bench/model_latency.py --configs config/llava3d_7b_*.yaml --device cuda
    python bench/model_latency.py --configs config/llava3d_7b_*.yaml --tiny --repeats 3
"""

import argparse
import dataclasses
import math
import os
import sys
import time

from spatialvla_ros.models.configuration_spatialvla import PLANS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ('eager', 'graph', 'compile')
# Dense bf16 tensor-core peak [TFLOP/s] and memory bandwidth [GB/s] by device name (datasheets);
# --peak-tflops / --peak-gbps override, and unknown devices need them for the roofline column.
PEAKS = (('H200', 989.0, 4800.0), ('H100 NVL', 835.0, 3900.0), ('H100 PCIe', 756.0, 2000.0),
         ('H100', 989.0, 3350.0), ('A100', 312.0, 2039.0), ('L40S', 362.0, 864.0),
         ('L4', 121.0, 300.0), ('A10', 125.0, 600.0))


def mid_config(config):
    """Return a mid-size variant of a tiny config (same plan): 8 layers, VLM 512, expert 256."""
    r = dataclasses.replace
    vision = r(config.vision, image_size=224, patch_size=14, hidden_size=256,
               num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
               feature_layer=-2)
    lm = r(config.language_model, hidden_size=512, num_hidden_layers=8, num_attention_heads=8,
           num_key_value_heads=8, head_dim=64, intermediate_size=1408)
    expert = r(config.expert, hidden_size=256, num_hidden_layers=8, num_attention_heads=8,
               num_key_value_heads=1 if config.expert.architecture == 'gemma' else 8,
               head_dim=64, intermediate_size=704)
    return r(config, name=f'{config.plan}_mid', vision=vision, language_model=lm, expert=expert,
             encoder3d=r(config.encoder3d, max_visual_tokens=256),
             action=r(config.action, chunk_size=50)).validate()


def tiny_preset(config):
    """Shrink a preset to CPU size, keeping its plan, views, chunk and steps."""
    r = dataclasses.replace
    vision = r(config.vision, image_size=56, patch_size=14, hidden_size=32, num_hidden_layers=2,
               num_attention_heads=2, intermediate_size=64, feature_layer=-2, pretrained_path='')
    lm = r(config.language_model, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
           num_key_value_heads=2, head_dim=16, intermediate_size=128, vocab_size=256,
           max_text_tokens=8, pretrained_path='', tokenizer_path='')
    kv = 2 if config.expert.num_key_value_heads != 1 else 1
    expert = r(config.expert, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=kv, head_dim=16, intermediate_size=64, vocab_size=256,
               pretrained_path='')
    return r(config, name=f'{config.name}_tiny', vision=vision, language_model=lm,
             expert=expert, encoder3d=r(config.encoder3d, max_visual_tokens=16)).validate()


def percentiles(times):
    """(p50, p99) of a list of durations [s], nearest rank."""
    times = sorted(times)
    rank = max(0, math.ceil(0.99 * len(times)) - 1)
    return times[len(times) // 2], times[rank]


def _timed(fn, device, repeats, warmup=2):
    import torch

    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        out.append(time.perf_counter() - start)
    return out


def roofline(model, prefix_len, kv_len, peaks):
    """Estimated FLOPs and bytes of the prefix and of one denoising step (see module doc)."""
    cfg = model.config
    counts = model.num_parameters()
    lm, ex = cfg.language_model, cfg.expert
    embed = lm.vocab_size * lm.hidden_size       # a lookup, not a matmul
    grid = cfg.vision.image_size // cfg.vision.patch_size
    views = max(1, len(cfg.data.cameras))
    suffix = 2 + cfg.action.chunk_size
    attn = 4 * lm.num_hidden_layers * lm.num_attention_heads * lm.head_dim
    prefix_flops = (2 * counts['encoder'] * views * grid * grid
                    + 2 * (counts['vlm'] - embed) * prefix_len + attn * prefix_len ** 2 / 2)
    step_flops = 2 * counts['expert'] * suffix + 4 * ex.num_hidden_layers * \
        ex.num_attention_heads * ex.head_dim * suffix * (kv_len + suffix)
    kv_bytes = 2 * 2 * ex.num_hidden_layers * ex.num_key_value_heads * ex.head_dim * kv_len
    prefix_bytes = 2 * (counts['encoder'] + counts['vlm'])
    step_bytes = 2 * counts['expert'] + kv_bytes
    if not peaks:
        return None
    tflops, gbps = peaks

    def bound(flops, nbytes):
        return max(flops / (tflops * 1e12), nbytes / (gbps * 1e9))
    return {'prefix': bound(prefix_flops, prefix_bytes), 'step': bound(step_flops, step_bytes)}


def graph_chunk(model, obs, noise, num_steps):
    """
    Chunk function replaying the whole denoising loop as one CUDA graph (prefix eager).

    The prefix cache is encoded once into static buffers before capture; each call
    re-encodes the prefix for its observation into those buffers and replays the loop.
    """
    import torch

    from spatialvla_ros.models import flow_matching

    suffix_ar = model._suffix_ar
    static_noise = noise.clone()
    with torch.inference_mode():
        embeds, mask = model.embed_prefix(obs)
        cache = model.backbone.encode_prefix(embeds, mask, suffix_ar)

        def velocity(x_t, t):
            suffix = model.suffix_embedding(x_t, t, obs.state)
            return model.action_head(model.backbone.decode_suffix(cache, suffix))

        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):   # warm-up outside the graph, as CUDA graphs require
            for _ in range(2):
                flow_matching.euler_sample(velocity, static_noise, num_steps)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = flow_matching.euler_sample(velocity, static_noise, num_steps)

    def prefix():
        e, m = model.embed_prefix(obs)
        fresh = model.backbone.encode_prefix(e, m, suffix_ar)
        for dst, src in zip(cache.layers, fresh.layers):
            dst.keys.copy_(src.keys)
            dst.values.copy_(src.values)

    def chunk():
        with torch.inference_mode():
            prefix()
            static_noise.copy_(noise)
            graph.replay()
            return static_out.clone()

    def step():
        with torch.inference_mode():
            graph.replay()
    return chunk, step


def measure_variant(model, obs, noise, variant, repeats, bounds):
    """Time one variant on one model: lists of durations [s], peak memory, roofline shares."""
    import torch

    from spatialvla_ros.policies.policy_spatialvla import compile_model

    device = model.device
    steps = model.config.flow.num_steps
    suffix_ar = model._suffix_ar
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    if variant == 'compile':
        compile_model(model)

    def prefix():
        with torch.inference_mode():
            e, m = model.embed_prefix(obs)
            return model.backbone.encode_prefix(e, m, suffix_ar)

    cache = prefix()
    t = torch.ones(1, device=device)

    def step():
        with torch.inference_mode():
            suffix = model.suffix_embedding(noise, t, obs.state)
            model.backbone.decode_suffix(cache, suffix)

    def eager_chunk():
        return model.sample_actions(obs, noise=noise)

    row = {}
    chunk = eager_chunk
    if variant == 'graph':
        if device.type != 'cuda':
            raise RuntimeError('CUDA graphs need a CUDA device')
        chunk, loop = graph_chunk(model, obs, noise, steps)
        row['step'] = [x / steps for x in _timed(loop, device, repeats)]
    else:
        row['step'] = _timed(step, device, repeats)
    row['prefix'] = _timed(prefix, device, repeats)
    row['chunk'] = _timed(chunk, device, repeats)
    if device.type == 'cuda':
        row['peak_gib'] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    if bounds:
        row['roof_prefix'] = bounds['prefix'] / percentiles(row['prefix'])[0]
        row['roof_step'] = bounds['step'] / percentiles(row['step'])[0]
    return row


def preset_rows(ns):
    """Yield one result dict per preset and variant (see the module docstring)."""
    import torch

    from spatialvla_ros.policies.configuration_policy import PolicyConfig
    from spatialvla_ros.evaluation.latency import dummy_observation
    from spatialvla_ros.models.modeling_spatialvla import SpatialVLAModel

    device = torch.device(ns.device)
    peaks = None
    if ns.peak_tflops and ns.peak_gbps:
        peaks = (ns.peak_tflops, ns.peak_gbps)
    elif device.type == 'cuda':
        name = torch.cuda.get_device_name(device)
        peaks = next(((f, b) for key, f, b in PEAKS if key in name), None)
    for path in ns.configs:
        config = PolicyConfig.from_yaml(path)
        if ns.tiny:
            config = tiny_preset(config)
        torch.manual_seed(0)
        with torch.device(device):
            model = SpatialVLAModel(config).to(torch.bfloat16).eval()
        size = config.vision.image_size
        obs = dummy_observation(config, image_size=size).to(device, torch.bfloat16)
        act = config.action
        steps = config.flow.num_steps
        noise = torch.randn((1, act.chunk_size, act.action_dim), device=device)
        with torch.inference_mode():
            embeds, mask = model.embed_prefix(obs)
        prefix_len = embeds.shape[1]
        bounds = roofline(model, prefix_len, prefix_len, peaks)
        # 'compile' compiles the model in place, so it runs last.
        for variant in sorted(ns.variants.split(','), key=VARIANTS.index):
            row = {'config': os.path.basename(path), 'variant': variant,
                   'prefix_tokens': prefix_len, 'steps': steps}
            started = time.perf_counter()
            try:
                row.update(measure_variant(model, obs, noise, variant, ns.repeats, bounds))
            except Exception as exc:  # noqa: B902 (one failed variant must not hide the rest)
                row['error'] = f'{type(exc).__name__}: {str(exc).splitlines()[0][:120]}'
            row['wall_s'] = time.perf_counter() - started
            yield row
        del model
        if device.type == 'cuda':
            torch.cuda.empty_cache()


def preset_main(ns):
    """Print (and with --out write) the preset table; give the exit code."""
    import torch

    if ns.threads > 0:
        torch.set_num_threads(ns.threads)
    device = torch.device(ns.device)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'
    lines = [f'# model latency, random weights, bf16, batch 1, {time.strftime("%Y-%m-%d")}, '
             f'{name}, torch {torch.__version__}{", TINY sizes" if ns.tiny else ""}',
             f'# p50/p99 over {ns.repeats} runs; graph = denoising loop as one CUDA graph; '
             'compile = torch.compile of the step; roofline share = bound / p50',
             '| preset | variant | prefix tok | prefix ms p50/p99 | step ms p50/p99 | '
             'chunk ms p50/p99 | peak GiB | roofline prefix | roofline step |',
             '|---|---|---|---|---|---|---|---|---|']
    print('\n'.join(lines), flush=True)
    failed = 0
    for row in preset_rows(ns):
        if 'error' in row:
            failed += 1
            line = f"| {row['config']} | {row['variant']} | {row['prefix_tokens']} | " \
                f"failed: {row['error']} | | | | | |"
        else:
            cells = []
            for key in ('prefix', 'step', 'chunk'):
                p50, p99 = percentiles(row[key])
                cells.append(f'{p50 * 1e3:.2f} / {p99 * 1e3:.2f}')
            peak = f"{row['peak_gib']:.1f}" if 'peak_gib' in row else '-'
            roof = [f'{row[k]:.0%}' if k in row else '-' for k in ('roof_prefix', 'roof_step')]
            line = f"| {row['config']} | {row['variant']} | {row['prefix_tokens']} | " + \
                ' | '.join(cells) + f' | {peak} | {roof[0]} | {roof[1]} |'
        print(line, flush=True)
        lines.append(line)
    if ns.out:
        with open(ns.out, 'w', encoding='utf-8') as f:
            f.write('\n'.join(lines) + '\n')
    return 1 if failed and ns.strict else 0


def main(args=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--mid', action='store_true', help='also the mid-size preset')
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--dtypes', default='float32,bfloat16')
    parser.add_argument('--plans', default=','.join(PLANS))
    parser.add_argument('--configs', nargs='+', help='preset YAML files: the per-preset table')
    parser.add_argument('--variants', default=','.join(VARIANTS),
                        help='with --configs: eager,graph,compile')
    parser.add_argument('--tiny', action='store_true',
                        help='with --configs: shrink every preset (a CPU dry run)')
    parser.add_argument('--peak-tflops', type=float, default=0.0,
                        help='dense bf16 peak for the roofline (default: by GPU name)')
    parser.add_argument('--peak-gbps', type=float, default=0.0,
                        help='memory bandwidth for the roofline (default: by GPU name)')
    parser.add_argument('--out', default='', help='with --configs: also write the table here')
    parser.add_argument('--strict', action='store_true',
                        help='with --configs: exit 1 when a variant failed')
    ns = parser.parse_args(args)
    if ns.configs:
        return preset_main(ns)

    import torch

    from spatialvla_ros.evaluation.latency import dummy_observation
    from spatialvla_ros.evaluation.latency import measure_model
    from spatialvla_ros.models.modeling_spatialvla import SpatialVLAModel
    from spatialvla_ros.policies.configuration_policy import PolicyConfig

    if ns.threads > 0:
        torch.set_num_threads(ns.threads)
    sizes = ['tiny'] + (['mid'] if ns.mid else [])
    print(f'model latency, median of {ns.repeats}, batch 1, device {ns.device}, '
          f'{torch.get_num_threads()} thread(s), torch {torch.__version__}')
    head = (f'{"plan":<12s} {"size":<5s} {"dtype":<9s} {"params":>9s} {"tokens":>6s} '
            f'{"prefix ms":>9s} {"step ms":>8s} {"chunk ms":>9s} {"no-cache ms":>11s} '
            f'{"ratio":>6s}')
    print(head)
    print('-' * len(head))
    for size in sizes:
        for plan in ns.plans.split(','):
            config = PolicyConfig.from_yaml(os.path.join(REPO, 'config', f'{plan}.yaml'))
            if size == 'mid':
                config = mid_config(config)
            torch.manual_seed(0)
            base = SpatialVLAModel(config).eval()
            obs = dummy_observation(config)
            for dtype in ns.dtypes.split(','):
                model = base.to(device=ns.device, dtype=getattr(torch, dtype))
                out = measure_model(model, obs, repeats=ns.repeats)
                params = model.num_parameters()['total']
                tokens = config.encoder3d.max_visual_tokens + config.language_model.max_text_tokens
                flag = '' if out['recompute_matches'] else '  (!) cached and recomputed differ'
                print(f'{plan:<12s} {size:<5s} {dtype:<9s} {params:>9,d} {tokens:>6d} '
                      f'{out["prefix_s"] * 1e3:>9.2f} {out["step_s"] * 1e3:>8.2f} '
                      f'{out["chunk_s"] * 1e3:>9.2f} {out["chunk_recompute_s"] * 1e3:>11.2f} '
                      f'{out["recompute_ratio"]:>5.1f}x{flag}', flush=True)
            del base, model
    print('ratio = chunk recomputing the prefix at every denoising step / chunk with the '
          'prefix K/V cached (same process, same inputs)')
    return 0


if __name__ == '__main__':
    sys.exit(main())

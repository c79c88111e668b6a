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


"""Model timing on equal terms for every plan: prefix, one denoising step, a whole chunk.

All figures come from the model's own building blocks (`embed_prefix`,
`backbone.encode_prefix` / `decode_suffix`, `sample_actions`) on one synthetic observation
whose points fill the workspace, so the visual token cap is reached (the worst case, and the
same token count for every plan). `chunk_s` is `sample_actions` (prefix once, its K/V reused by
every Euler step); `chunk_recompute_s` recomputes the prefix (encoder + VLM) at every step, as
an implementation without a prefix cache would. Both are measured in the same process, one
after the other, and their ratio is reported. Peak memory: CUDA's allocator peak on a GPU;
on the CPU the highest RSS while loading and running the model, above the RSS before
(`RssPeak`; cleanest in a fresh process: `python -m spatialvla_ros.evaluation.latency`).
"""

import argparse
import json
import resource
import statistics
import sys
import threading
import time

from spatialvla_ros.models import flow_matching
from spatialvla_ros.models.checkpoint import load_checkpoint
from spatialvla_ros.models.modeling_spatialvla import ModelObservation
from spatialvla_ros.models.modeling_spatialvla import suffix_ar_mask
from spatialvla_ros.policies.configuration_policy import PolicyConfig
import torch


def rss_mb():
    """Return the current resident set size of this process [MiB]."""
    try:
        with open('/proc/self/statm', encoding='ascii') as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20
    except OSError:  # not Linux: the peak so far is the best there is
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class RssPeak:
    """Highest RSS above the RSS at entry while the block runs, sampled every millisecond.

    The process's own peak (ru_maxrss) is useless for small models: importing torch and
    transformers peaks higher than a tiny model ever needs, so its growth reads 0.
    """

    def __enter__(self):
        self.before = self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())

    @property
    def growth_mb(self):
        return self.peak - self.before


def dummy_observation(config, batch=1, image_size=128, seed=0):
    """Build a ModelObservation with random images and points spread over the workspace."""
    g = torch.Generator().manual_seed(seed)
    v = len(config.data.cameras)
    images = torch.rand((batch, v, 3, image_size, image_size), generator=g)
    lo = torch.tensor([0.2, -0.5, 0.0])
    hi = torch.tensor([0.9, 0.5, 0.4])
    points = lo + (hi - lo) * torch.rand((batch, v, image_size, image_size, 3), generator=g)
    lm = config.language_model
    ids = torch.randint(3, lm.vocab_size, (batch, lm.max_text_tokens), generator=g)
    return ModelObservation(images=images, points=points,
                            state=torch.randn((batch, config.action.state_dim), generator=g),
                            input_ids=ids,
                            attention_mask=torch.ones_like(ids, dtype=torch.bool))


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _median_time(fn, device, repeats, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.inference_mode()
def measure_model(model, observation, num_steps=None, repeats=10, warmup=2, seed=0):
    """Median timings [s] of one model on one observation (see the module docstring)."""
    cfg = model.config
    num_steps = num_steps or cfg.flow.num_steps
    device = model.device
    obs = observation.to(device, model.dtype)
    act = cfg.action
    suffix_ar = suffix_ar_mask(act.chunk_size).to(device)
    g = torch.Generator(device=device).manual_seed(seed)
    noise = torch.randn((obs.batch_size, act.chunk_size, act.action_dim), generator=g,
                        device=device)
    t = torch.ones(obs.batch_size, device=device)

    def prefix():
        embeds, mask = model.embed_prefix(obs)
        return model.backbone.encode_prefix(embeds, mask, suffix_ar)

    cache = prefix()

    def step(cache_=cache):
        suffix = model.suffix_embedding(noise, t, obs.state)
        return model.action_head(model.backbone.decode_suffix(cache_, suffix))

    def chunk():
        return model.sample_actions(obs, num_steps=num_steps, noise=noise)

    def chunk_recompute():
        def velocity(x_t, t_):
            embeds, mask = model.embed_prefix(obs)                     # prefix every step
            fresh = model.backbone.encode_prefix(embeds, mask, suffix_ar)
            suffix = model.suffix_embedding(x_t, t_, obs.state)
            return model.action_head(model.backbone.decode_suffix(fresh, suffix))
        return flow_matching.euler_sample(velocity, noise, num_steps)

    # Same arithmetic, so the same chunk (a guard against timing two different things).
    same = torch.allclose(chunk().float(), chunk_recompute().float(), atol=1e-3, rtol=1e-3)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    out = {
        'prefix_s': _median_time(prefix, device, repeats, warmup),
        'step_s': _median_time(step, device, repeats, warmup),
        'chunk_s': _median_time(chunk, device, repeats, warmup),
        'chunk_recompute_s': _median_time(chunk_recompute, device, max(1, repeats // 2), 1),
        'num_steps': int(num_steps), 'recompute_matches': bool(same),
        'device': str(device), 'dtype': str(model.dtype).replace('torch.', ''),
    }
    out['recompute_ratio'] = out['chunk_recompute_s'] / out['chunk_s']
    if device.type == 'cuda':
        out['peak_memory_mb'] = torch.cuda.max_memory_allocated(device) / 2 ** 20
    return out


def measure_checkpoint(checkpoint_dir, device='cpu', dtype=None, repeats=10, image_size=128):
    """Load a checkpoint and measure it; adds parameters and peak memory (see above)."""
    # Memory first (weights + one chunk), so the sampler thread never competes with the timing.
    with RssPeak() as rss:
        model, config, _, _ = load_checkpoint(checkpoint_dir, device=device, dtype=dtype,
                                              config_class=PolicyConfig)
        model.eval()
        observation = dummy_observation(config, image_size=image_size)
        with torch.inference_mode():
            model.sample_actions(observation.to(model.device, model.dtype))
    out = measure_model(model, observation, repeats=repeats)
    out['parameters'] = model.num_parameters()
    out['plan'] = config.plan
    if 'peak_memory_mb' not in out:
        out['peak_memory_mb'] = rss.growth_mb
        out['peak_memory_kind'] = 'cpu peak RSS growth (weights + one chunk)'
    else:
        out['peak_memory_kind'] = 'cuda allocator peak (one chunk)'
    return out


def main(args=None):
    parser = argparse.ArgumentParser(
        prog='spatialvla_latency',
        description='Time one checkpoint (prefix, denoising step, chunk with and without the '
                    'prefix cache) in this fresh process; prints JSON.')
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--dtype', default='', choices=('', 'float32', 'bfloat16'))
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument('--json', default='', help='also write the result to this file')
    ns = parser.parse_args(args)
    if ns.threads > 0:
        torch.set_num_threads(ns.threads)
    out = measure_checkpoint(ns.checkpoint, ns.device,
                             getattr(torch, ns.dtype) if ns.dtype else None, ns.repeats)
    text = json.dumps(out, indent=1)
    if ns.json:
        with open(ns.json, 'w', encoding='utf-8') as f:
            f.write(text)
    print(text)
    return 0


__all__ = ['RssPeak', 'dummy_observation', 'measure_checkpoint', 'measure_model', 'rss_mb']

if __name__ == '__main__':
    sys.exit(main())

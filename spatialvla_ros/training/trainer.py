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

"""The offline training loop (ROS-free): bags -> cached episodes -> SpatialVLAModel.

One loop serves the three strategies. The global batch of step s is fixed by (seed, s)
(`global_batch_indices`); rank r of W takes the r-th equal share of it, draws noise and time
per sample from (seed, s, index in the global batch) and scales its masked squared-error sum
by W / (valid steps of the global batch), so DDP's and FSDP's gradient averaging yields the
gradient of the global-batch loss: N processes follow the single-process loss curve.
"""

import contextlib
import json
import logging
import os
import random
import threading
import time

import numpy as np
from spatialvla_ros.core_types import NormalizationStats
from spatialvla_ros.data.dataset import EpisodeDataset
from spatialvla_ros.data.dataset import global_batch_indices
from spatialvla_ros.data.dataset import load_episodes
from spatialvla_ros.data.dataset import shard_range
from spatialvla_ros.data.dataset import split_episodes
from spatialvla_ros.models.checkpoint import read_safetensors
from spatialvla_ros.models.modeling_spatialvla import SpatialVLAModel
from spatialvla_ros.models.tokenizer import build_word_tokenizer
from spatialvla_ros.models.tokenizer import load_tokenizer
from spatialvla_ros.policies.processor_spatialvla import SpatialVLAProcessor
from spatialvla_ros.training import distributed
from spatialvla_ros.training import train_state
from spatialvla_ros.training.configuration_training import TrainingConfig
from spatialvla_ros.training.loss import FlowLossModule
from spatialvla_ros.training.loss import sample_seed
from spatialvla_ros.training.loss import TRAIN_STREAM
from spatialvla_ros.training.options import apply_overrides
from spatialvla_ros.training.progress import CsvLog
from spatialvla_ros.training.progress import plot_losses
from spatialvla_ros.training.progress import progress_bar
from spatialvla_ros.training.progress import truncate_jsonl
from spatialvla_ros.training.schedule import WarmupCosineSchedule
from spatialvla_ros.training.validation import evaluate
from spatialvla_ros.training.validation import val_indices
import torch

logger = logging.getLogger(__name__)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _no_decay(name, param):
    # Norm scales, biases and embeddings-like vectors are not decayed (standard AdamW recipe).
    return param.ndim < 2 or name.endswith('.bias')


def build_optimizer(model, train_cfg):
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if _no_decay(name, param) else decay).append(param)
    if not decay and not no_decay:
        raise ValueError('train.trainable: no parameter requires a gradient')
    groups = [{'params': decay, 'weight_decay': train_cfg.weight_decay},
              {'params': no_decay, 'weight_decay': 0.0}]
    return torch.optim.AdamW([g for g in groups if g['params']], lr=train_cfg.learning_rate,
                             betas=(0.9, 0.95), eps=1e-8)


def _grad_norm_value(norm):
    if hasattr(norm, 'full_tensor'):  # FSDP2 returns a DTensor
        norm = norm.full_tensor()
    return float(norm)


def build_tokenizer(config, instructions, run_dir, ctx, checkpoint=None):
    """Load or build the tokenizer: the checkpoint's, the config's or a word tokenizer.

    `checkpoint` is the one resumed or fine-tuned from: its weights need its word ids.

    Without a tokenizer_path (tiny configs) a word-level tokenizer over the dataset's
    instructions is built by rank 0 into <run_dir>/tokenizer and loaded by every rank.
    """
    if checkpoint:
        tokenizer = load_tokenizer(os.path.join(checkpoint, 'tokenizer'))
    elif config.language_model.tokenizer_path:
        tokenizer = load_tokenizer(config.language_model.tokenizer_path)
    else:
        path = os.path.join(run_dir, 'tokenizer')
        if ctx.is_main:
            build_word_tokenizer(list(instructions), path)
        distributed.barrier(ctx)
        tokenizer = load_tokenizer(path)
    if len(tokenizer) > config.language_model.vocab_size:
        raise ValueError(f'language_model.vocab_size: got {config.language_model.vocab_size}, '
                         f"expected >= {len(tokenizer)} (the tokenizer's vocabulary)")
    return tokenizer


class Trainer:
    """Trains one config on rosbag2 demonstrations; `run()` returns a summary dict.

    Args:
        options: TrainOptions (runtime knobs; the architecture comes from the config file).
        ctx: DistContext (default: set up from options.strategy and the environment).
        on_log: callable(dict) on the main process after every step (progress for the node).
    """

    def __init__(self, options, ctx=None, on_log=None):
        self.options = options
        self.ctx = ctx or distributed.setup(options.strategy, options.device)
        self.on_log = on_log
        self._stop = threading.Event()
        self.config = apply_overrides(TrainingConfig.from_yaml(options.config), options)
        self.run_dir = os.path.abspath(options.out_dir)
        self.warnings = []

    def request_stop(self):
        """Stop after the current step (a checkpoint is written first)."""
        self._stop.set()

    # ------------------------------------------------------------------ setup
    def _load_data(self):
        opts, ctx = self.options, self.ctx
        cache = opts.cache_dir or os.path.join(self.run_dir, 'cache')
        cache = None if cache == 'none' else cache
        kwargs = {'cache_dir': cache, 'points_dtype': np.dtype(opts.points_dtype),
                  'skip_failed': not opts.keep_failed}
        # Rank 0 decodes and fills the cache; the others then read it instead of the bags.
        if ctx.is_main or cache is None:
            episodes, warnings = load_episodes(opts.data, self.config, **kwargs)
        distributed.barrier(ctx)
        if not (ctx.is_main or cache is None):
            episodes, warnings = load_episodes(opts.data, self.config, **kwargs)
        self.warnings = list(warnings)
        if not episodes:
            raise ValueError(f'data {list(opts.data)}: no usable episode (warnings: '
                             f'{warnings[:3]})')
        train, val = split_episodes(episodes, self.config.train.val_fraction,
                                    self.config.train.seed)
        self.train_set, self.val_set = EpisodeDataset(train), EpisodeDataset(val)
        self.valid_steps = np.concatenate([e.action_mask.sum(1) for e in train])  # (N,)
        self.instructions = sorted({str(s) for e in episodes for s in set(e.instructions)})

    def setup(self):
        """Load data, statistics, tokenizer; build, wrap and optimise the model; resume."""
        opts, ctx, cfg = self.options, self.ctx, self.config
        os.makedirs(self.run_dir, exist_ok=True)
        if ctx.is_main:
            train_state.clean_staging(self.run_dir)
        distributed.barrier(ctx)
        seed_everything(cfg.train.seed)
        self._load_data()
        resume = train_state.latest_checkpoint(self.run_dir) if opts.resume else None
        if opts.resume and resume is None and ctx.is_main:
            logger.warning('%s: no checkpoint to resume from; starting from step 0',
                           self.run_dir)
        if resume:
            stats_path = os.path.join(resume, 'normalization.safetensors')
            self.stats = NormalizationStats.from_tensors(read_safetensors(stats_path),
                                                         source=stats_path)
        else:
            self.stats = self.train_set.compute_stats()
        # Fine-tuning keeps the tokenizer its weights were trained with (word ids must match).
        self.tokenizer = build_tokenizer(cfg, self.instructions, self.run_dir, ctx,
                                         resume or opts.init_checkpoint or None)
        self.processor = SpatialVLAProcessor(cfg, self.tokenizer, self.stats)
        seed_everything(cfg.train.seed)
        with torch.device(ctx.device):
            self.model = SpatialVLAModel(cfg)
            cfg.train.apply_to(self.model)
        if resume or opts.init_checkpoint:
            train_state.load_model_weights(self.model, resume or opts.init_checkpoint)
        self.model.train()
        precision = opts.precision
        if precision == 'auto':
            precision = 'bf16' if ctx.device.type == 'cuda' else 'fp32'
        self.autocast_dtype = torch.bfloat16 if precision == 'bf16' else None
        self.loss_module = FlowLossModule(self.model)
        self.train_module = distributed.wrap_model(
            self.model, self.loss_module, ctx,
            param_dtype=self.autocast_dtype if ctx.strategy == 'fsdp' else None)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(self.model, cfg.train)
        self.scheduler = WarmupCosineSchedule(self.optimizer, cfg.train.warmup_steps,
                                              cfg.train.steps)
        self.start_step, self.elapsed0 = 0, 0.0
        if resume:
            state = train_state.load_training_state(resume, self.loss_module, self.optimizer,
                                                    self.scheduler)
            self.start_step = int(state['step'])
            self.elapsed0 = float(state.get('elapsed_s', 0.0))
            if ctx.is_main:
                logger.info('resumed from %s at step %d', resume, self.start_step)
                saved = state['scheduler']
                if (saved['total_steps'], saved['warmup_steps']) != (
                        cfg.train.steps, cfg.train.warmup_steps):
                    logger.info('the checkpoint planned %d steps (warm-up %d); the learning '
                                'rate now follows the schedule of %d steps (warm-up %d)',
                                saved['total_steps'], saved['warmup_steps'], cfg.train.steps,
                                cfg.train.warmup_steps)
        self.resumed_from = resume
        return self

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.ctx.device.type, dtype=self.autocast_dtype)

    # ------------------------------------------------------------------ steps
    def train_step(self, step):
        """One optimiser update; returns (global loss, lr used, grad norm, stop requested)."""
        cfg, ctx = self.config, self.ctx
        batch_size = cfg.train.batch_size
        indices = global_batch_indices(step, batch_size, len(self.train_set), cfg.train.seed)
        lo, hi = shard_range(batch_size, ctx.rank, ctx.world_size)
        batch = self.processor.collate([self.train_set[i] for i in indices[lo:hi]])
        seeds = [sample_seed(cfg.train.seed, TRAIN_STREAM, step, lo + j) for j in range(hi - lo)]
        valid = float(self.valid_steps[indices].sum())
        with self.autocast():
            per_step = self.train_module(batch, seeds)                        # (b, H)
        mask = batch.action_mask.to(device=per_step.device, dtype=torch.float32)
        local_sum = (per_step.float() * mask).sum()
        self.optimizer.zero_grad(set_to_none=True)
        (local_sum * (ctx.world_size / valid)).backward()
        norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.train.grad_clip_norm)
        lr = self.optimizer.param_groups[0]['lr']
        self.optimizer.step()
        self.scheduler.step()
        totals = distributed.all_reduce_sum(
            [float(local_sum.detach()), float(self._stop.is_set())], ctx)
        return float(totals[0]) / valid, lr, _grad_norm_value(norm), bool(totals[1] > 0)

    def validate(self):
        if len(self.val_set) == 0:
            return None
        opts = self.options
        indices = val_indices(len(self.val_set), opts.val_max_samples)
        batch_size = opts.val_batch_size or self.config.train.batch_size
        return evaluate(self.loss_module, self.processor, self.val_set, indices, self.ctx,
                        self.config.train.seed, batch_size,
                        self.autocast if self.autocast_dtype else None)

    def save(self, step, elapsed):
        """Write checkpoint `step` (every rank), then delete those beyond options.keep_last."""
        path = train_state.save_training_checkpoint(
            self.run_dir, step, self.loss_module, self.optimizer, self.scheduler, self.stats,
            self.tokenizer, self.ctx, extra={'elapsed_s': elapsed, 'seed': self.config.train.seed})
        if self.ctx.is_main:
            train_state.prune_checkpoints(self.run_dir, self.options.keep_last)
        return path

    # ------------------------------------------------------------------ loop
    def run(self):
        """Train to config.train.steps (or until stopped); returns a summary dict."""
        if not hasattr(self, 'model'):
            self.setup()
        cfg, ctx, opts = self.config, self.ctx, self.options
        total = cfg.train.steps
        val_every = opts.val_every or cfg.train.checkpoint_every
        csv_path = os.path.join(self.run_dir, 'train_log.csv')
        val_path = os.path.join(self.run_dir, 'val_metrics.jsonl')
        log = None
        if ctx.is_main:
            log = CsvLog(csv_path, self.start_step if self.resumed_from else None)
            if self.resumed_from:
                truncate_jsonl(val_path, self.start_step)
            elif os.path.isfile(val_path):
                os.remove(val_path)
        bar = progress_bar(total, self.start_step, ctx.is_main and opts.progress)
        t0 = time.monotonic() - self.elapsed0
        last_t, losses, metrics, done = time.monotonic(), [], None, self.start_step
        checkpoint = self.resumed_from
        stopped = False
        for step in range(self.start_step, total):
            loss, lr, grad_norm, stopped = self.train_step(step)
            losses.append(loss)
            done = step + 1
            now = time.monotonic()
            rate = cfg.train.batch_size / max(now - last_t, 1e-9)
            last_t = now
            bar.update(1)
            bar.set_postfix(loss=f'{loss:.4f}', lr=f'{lr:.2e}', samples_s=f'{rate:.1f}')
            is_last = done == total or stopped
            row_val = None
            if (done % val_every == 0 or is_last) and len(self.val_set):
                metrics = row_val = self.validate()
                if ctx.is_main:  # per-dimension / per-step figures, one JSON line each time
                    with open(val_path, 'a', encoding='utf-8') as f:
                        f.write(json.dumps({'step': done, **row_val}) + '\n')
            if ctx.is_main and (done % cfg.train.log_every == 0 or is_last or row_val):
                log.write(step=done, loss=float(np.mean(losses)), lr=lr, grad_norm=grad_norm,
                          val_mse=row_val and row_val['val_mse'],
                          baseline_mse=row_val and row_val['baseline_mse'],
                          time=now - t0)
                losses = []
            if done % cfg.train.checkpoint_every == 0 or is_last:
                checkpoint = self.save(done, now - t0)
            if self.on_log and ctx.is_main:
                self.on_log({'step': done, 'total_steps': total, 'loss': loss, 'lr': lr,
                             'grad_norm': grad_norm, 'samples_per_s': rate,
                             'val': row_val, 'checkpoint': checkpoint})
            if stopped:
                break
        bar.close()
        plot = None
        if ctx.is_main and opts.plot and os.path.isfile(csv_path):
            plot = plot_losses(csv_path, os.path.join(self.run_dir, 'train_loss.png'),
                               title=f'{cfg.name} ({cfg.plan})')
        distributed.barrier(ctx)
        summary = {'plan': cfg.plan, 'rank': ctx.rank, 'world_size': ctx.world_size,
                   'strategy': ctx.strategy, 'steps': done,
                   'stopped': stopped, 'checkpoint': checkpoint, 'csv': csv_path, 'plot': plot,
                   'train_samples': len(self.train_set), 'val_samples': len(self.val_set),
                   'train_episodes': len(self.train_set.episodes),
                   'val_episodes': len(self.val_set.episodes), 'warnings': self.warnings,
                   'params': self.model.num_parameters()['total'] if ctx.strategy != 'fsdp'
                   else None}
        if metrics:
            summary.update(metrics)
            summary['mse_ratio'] = metrics['val_mse'] / max(metrics['baseline_mse'], 1e-12)
        return summary

    def close(self):
        distributed.teardown(self.ctx)


def train(options, on_log=None):
    """Set up, train and tear down; the entry point of the CLI and the node."""
    trainer = Trainer(options, on_log=on_log)
    try:
        return trainer.run()
    finally:
        trainer.close()


__all__ = ['Trainer', 'build_optimizer', 'build_tokenizer', 'seed_everything', 'train']

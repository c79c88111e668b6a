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

"""Process groups and model wrapping for the three strategies: single, DDP and FSDP2.

Launch with torchrun (it sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT);
gloo on CPU, nccl on GPU. Sharding units for FSDP2 (`torch.distributed.fsdp.fully_shard`):
deep fusion drives each decoder layer's projections and MLP directly instead of calling the
layer, and FSDP2 gathers a unit's parameters in that unit's forward hook, so the units are
the modules whose forward runs in every plan: the attention projections and the MLP of each
Llama / Gemma decoder layer, and each vision-encoder layer. Norms, embeddings and the small
heads stay with the root unit (the loss module around the model).
"""

from dataclasses import dataclass
import datetime
import os
import socket

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.fsdp import MixedPrecisionPolicy
from torch.distributed.fsdp import register_fsdp_forward_method
from torch.nn.parallel import DistributedDataParallel

STRATEGIES = ('single', 'ddp', 'fsdp')
_ATTENTION_PROJECTIONS = ('q_proj', 'k_proj', 'v_proj', 'o_proj')


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: strategy, rank, world size and its device."""

    strategy: str
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str = ''

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def distributed(self):
        return self.strategy != 'single'


def free_port():
    """Return a TCP port free right now on localhost (MASTER_PORT of tests, one-node runs)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def pick_device(device, local_rank=0):
    """'auto' -> the local GPU when there is one, else the CPU."""
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    device = torch.device(device)
    if device.type == 'cuda' and device.index is None:
        device = torch.device('cuda', local_rank)
    return device


def setup(strategy, device='auto', timeout_s=600):
    """Initialise the process group (ddp / fsdp) from torchrun's environment.

    A ddp / fsdp run started without torchrun becomes a one-process group on a free port, so
    the same command works on one machine with one process.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f'strategy: got {strategy!r}, expected one of {", ".join(STRATEGIES)}')
    world = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    dev = pick_device(device, local_rank)
    if strategy == 'single':
        if world > 1:
            raise ValueError(f'strategy: got single with WORLD_SIZE={world}; use --strategy '
                             'ddp or fsdp under torchrun')
        return DistContext('single', 0, 1, 0, dev)
    if dev.type == 'cuda':
        torch.cuda.set_device(dev)
    if world == 1:
        os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
        os.environ.setdefault('MASTER_PORT', str(free_port()))
    backend = 'nccl' if dev.type == 'cuda' else 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=timeout_s))
    return DistContext(strategy, rank, world, local_rank, dev, backend)


def teardown(ctx):
    if ctx is not None and ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values, ctx):
    """Sum a float tensor (or list of floats) over processes; returns a CPU float64 tensor."""
    tensor = torch.as_tensor(values, dtype=torch.float64)
    if not ctx.distributed or ctx.world_size == 1:
        return tensor
    work = tensor.to(ctx.device)
    dist.all_reduce(work, op=dist.ReduceOp.SUM)
    return work.cpu()


def barrier(ctx):
    if ctx.distributed and ctx.world_size > 1:
        dist.barrier()


def fsdp_units(model):
    """Modules sharded as their own FSDP2 unit (see the module docstring), each once."""
    units, seen = [], set()

    def add(module):
        if module is not None and id(module) not in seen and any(
                p.numel() for p in module.parameters()):
            seen.add(id(module))
            units.append(module)

    for module in model.modules():
        name = type(module).__name__
        if name.endswith('DecoderLayer'):
            for proj in _ATTENTION_PROJECTIONS:
                add(getattr(module.self_attn, proj, None))
            add(getattr(module, 'mlp', None))
        elif name.endswith('EncoderLayer'):
            add(module)
    return units


def wrap_model(model, loss_module, ctx, param_dtype=None):
    """Wrap for the strategy; returns the module whose forward computes the training loss.

    Args:
        model: SpatialVLAModel on ctx.device (parameters in float32).
        loss_module: nn.Module wrapping `model` whose forward returns per-step losses.
        ctx: DistContext.
        param_dtype: FSDP compute dtype for parameters (e.g. torch.bfloat16), None = as stored.
    """
    if ctx.strategy == 'single':
        return loss_module
    if ctx.strategy == 'ddp':
        # Some parameters get no gradient by design (deep fusion skips the VLM's last MLP,
        # the VLM's final norm is unused by the expert): find_unused_parameters handles them.
        ids = [ctx.device.index] if ctx.device.type == 'cuda' else None
        return DistributedDataParallel(loss_module, device_ids=ids,
                                       find_unused_parameters=True)
    mesh = init_device_mesh(ctx.device.type, (ctx.world_size,))
    kwargs = {'mesh': mesh}
    if param_dtype is not None:
        kwargs['mp_policy'] = MixedPrecisionPolicy(param_dtype=param_dtype,
                                                   reduce_dtype=torch.float32)
    for unit in fsdp_units(model):
        fully_shard(unit, **kwargs)
    # The loss module is the root: its forward gathers every parameter not in a unit above.
    fully_shard(loss_module, **kwargs)
    register_fsdp_forward_method(loss_module, 'sample_actions')
    return loss_module


__all__ = ['DistContext', 'STRATEGIES', 'all_reduce_sum', 'barrier', 'free_port',
           'fsdp_units', 'pick_device', 'setup', 'teardown', 'wrap_model']

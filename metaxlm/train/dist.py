"""Multi-process training through torch.distributed, with no code change for the user.

Launched by ``torchrun --nproc_per_node=N`` or ``accelerate launch`` (both set ``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ...), the trainer joins the process group (gloo on CPU, nccl on
GPU) and wraps the loss module in torch ``DistributedDataParallel``: every process builds the same
global batch and trains on its own shard; DDP all-reduces the gradients in buckets while the last
micro-batch's backward runs (``no_sync`` for the others, so gradient accumulation costs one
reduction per step), so N processes compute the same update as one process with the same global
batch. Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class DistEnv:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def broadcast(self, obj):
        """rank 0's ``obj`` on every rank."""
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.owns_group = False


def wait_for_file(path, poll: float = 0.5) -> None:
    """Block until ``path`` exists: how non-zero ranks wait for rank 0's long file-producing work
    (tokenizer training, the token cache) without a collective that would time out."""
    import time
    from pathlib import Path

    while not Path(path).exists():
        time.sleep(poll)


def wrap(module, env: DistEnv, device):
    """``module`` in DistributedDataParallel when several processes run, else ``module`` itself."""
    if env.world == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)


def no_sync(engine, sync: bool):
    """DDP's ``no_sync()`` for the micro-batches before the last one of a step."""
    import contextlib

    if sync or not hasattr(engine, "no_sync"):
        return contextlib.nullcontext()
    return engine.no_sync()


def setup(device: str = "auto") -> DistEnv:
    import torch
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return DistEnv(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        return DistEnv()
    use_cuda = torch.cuda.is_available() and device != "cpu"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistEnv(dist.get_rank(), dist.get_world_size(), local_rank, owns_group=True)

"""torchrun, from inside: which process this is, the process group, and gathering per-image results.

Under ``torchrun`` (``WORLD_SIZE`` > 1, on one machine or ``--nnodes N``) each process reads its own shard of an
image folder; per-image results are gathered so that rank 0 reports on the whole set, and only rank 0 writes.
Without torchrun every function here is the one-process case and costs nothing.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import numpy as np

_ALONE: list[bool] = []  # inside ``alone()``: this process works by itself, whatever torchrun says


@contextlib.contextmanager
def alone():
    """Run the block as one process although torchrun started several: rank 0 after the others have returned
    (``edgekit run``'s export and profile after a fine-tuning by every process)."""
    _ALONE.append(True)
    try:
        yield
    finally:
        _ALONE.pop()


def world_size() -> int:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """False in a torchrun process other than rank 0: it works alongside, and writes nothing."""
    return rank() == 0


def active() -> bool:
    """A process group of more than one process is open (results must be gathered)."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@contextlib.contextmanager
def process_group():
    """(rank, world size, device) under torchrun, or (0, 1, best local device); a process group opened here is
    destroyed on the way out. gloo on the CPU, nccl where each process has a GPU."""
    import torch
    import torch.distributed as dist

    world = 1 if _ALONE else int(os.environ.get("WORLD_SIZE", "1"))
    opened = world > 1 and not dist.is_initialized()
    if opened:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", **_attempt_store())
    r = dist.get_rank() if world > 1 else 0
    device = torch.device("cpu")
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    try:
        with warnings.catch_warnings():  # depthwise weights' gradients come with other (equivalent) strides
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
            yield r, world, device
    finally:
        if opened:
            dist.destroy_process_group()


def _attempt_store() -> dict:
    """The process group's store, its keys under this torchrun attempt's own prefix.

    torchrun's agent keeps one store server for the whole job and restarts the workers against it, so without a
    prefix a restarted group reads the addresses the lost attempt's processes left there: gloo then connects to a
    dead process (connection refused) or waits for it until its 30-minute timeout (seen here: the restarted group
    hung in ``init_process_group``). Empty outside torchrun's ``env://`` launch (torch's defaults apply)."""
    if "MASTER_ADDR" not in os.environ or "TORCHELASTIC_RESTART_COUNT" not in os.environ:
        return {}
    import torch.distributed as dist
    from torch.distributed.rendezvous import rendezvous

    store, rank, world = next(rendezvous("env://"))  # torch's own choice of who serves the store
    attempt = os.environ["TORCHELASTIC_RESTART_COUNT"]
    return {"store": dist.PrefixStore(f"edgekit/attempt_{attempt}/", store), "rank": rank, "world_size": world}


def barrier() -> None:
    import torch.distributed as dist

    if active():
        dist.barrier()


def gather_interleaved(parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-image arrays of each rank's shard (rank r holds images r, r + W, r + 2W...) put back in image order,
    on every rank."""
    import torch.distributed as dist

    if not active():
        return parts
    world = dist.get_world_size()
    everyone: list = [None] * world
    dist.all_gather_object(everyone, parts)
    n = sum(len(next(iter(p.values()))) for p in everyone)
    out = {}
    for key in parts:
        first = everyone[0][key]
        whole = np.empty((n, *first.shape[1:]), dtype=first.dtype)
        for r, p in enumerate(everyone):
            whole[r::world] = p[key]
        out[key] = whole
    return out

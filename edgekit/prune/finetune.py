"""Recovery fine-tuning of a pruned model by distillation from the unpruned one.

Runs on CUDA when present; under ``torchrun`` it trains data-parallel (one process per GPU, or gloo on
CPU) with no change to the command: ``batch_size`` is per process, every process trains on an equal shard
and ends with the same weights; only rank 0 writes (the state here, everything else in the caller, which
asks ``is_main_process()``). Resumable: the state after each epoch is saved beside the output.
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import EdgekitError


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = 5
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    temperature: float = 4.0
    kd_weight: float = 0.7  # share of the distillation loss; the rest is cross-entropy when labels exist
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise EdgekitError(f"--epochs {self.epochs} must be at least 1")
        if self.optimizer not in ("adamw", "sgd"):
            raise EdgekitError(f"--optimizer {self.optimizer!r}: choose adamw or sgd")
        if not 0.0 <= self.kd_weight <= 1.0:
            raise EdgekitError(f"--kd-weight {self.kd_weight} must lie in [0, 1]")


def is_main_process() -> bool:
    """False in a torchrun process other than rank 0: it trains alongside, and writes nothing."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def _distributed():
    """(rank, world size, device) under torchrun, or (0, 1, best local device); a process group opened here
    is destroyed on the way out."""
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    opened = world > 1 and not dist.is_initialized()
    if opened:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    device = torch.device("cpu")
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    try:
        with warnings.catch_warnings():  # depthwise weights' gradients come with other (equivalent) strides
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
            yield rank, world, device
    finally:
        if opened:
            dist.destroy_process_group()


def _sync_buffers(student, world: int) -> None:
    """Rank 0's BatchNorm statistics on every rank: each rank updated its own in its last step (DDP broadcasts
    them only at the next forward), while the parameters agree already (DDP averages the gradients)."""
    import torch.distributed as dist

    if world > 1:
        for b in student.buffers():
            dist.broadcast(b.data, 0)


def _agree(values: list[float], world: int, device, how: str) -> list[float]:
    """``values`` summed over the ranks (``how="sum"``) or rank 0's (``how="rank0"``), on every rank."""
    import torch
    import torch.distributed as dist

    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t) if how == "sum" else dist.broadcast(t, 0)
    return t.tolist()


def kd_loss(student_logits, teacher_logits, labels, temperature: float, kd_weight: float):
    """Hinton's distillation: KL between softened distributions (x T^2), plus cross-entropy on labels."""
    import torch.nn.functional as F

    t = temperature
    kd = F.kl_div(F.log_softmax(student_logits / t, 1), F.softmax(teacher_logits / t, 1),
                  reduction="batchmean") * t * t
    if labels is None:
        return kd
    return kd_weight * kd + (1 - kd_weight) * F.cross_entropy(student_logits, labels)


SELECT_EVERY = 10  # every tenth fine-tuning image chooses the best epoch and is not trained on


def selection_split(n: int, every: int = SELECT_EVERY) -> tuple[list[int], list[int]]:
    """(train indices, selection indices) of ``n`` fine-tuning images; no selection set under 10 images.

    The best epoch is chosen on images of the fine-tuning set, never on the evaluation images that the
    caller reports accuracy on: a figure chosen and reported on the same images flatters the model."""
    pick = [i for i in range(n) if i % every == 0] if n // every >= 10 else []
    chosen = set(pick)
    return [i for i in range(n) if i not in chosen], pick


def finetune(student, teacher, x_train: np.ndarray, y_train: np.ndarray | None, cfg: FinetuneConfig,
             held_out: tuple[np.ndarray, np.ndarray | None] | None, state_file: Path, progress=None) -> dict:
    """Train ``student`` in place; returns the history and the best epoch.

    The best epoch is chosen on a tenth of the fine-tuning images held out from training (accuracy, or
    agreement with the teacher when there are no labels), or is the last epoch when they are too few;
    ``held_out`` (the caller's evaluation images) is scored each epoch for the report only."""
    train_idx, select_idx = selection_split(len(x_train))
    select = (x_train[select_idx], None if y_train is None else np.asarray(y_train)[select_idx]) if select_idx \
        else None
    x_train = x_train[train_idx]
    y_train = None if y_train is None else np.asarray(y_train)[train_idx]
    import torch

    with _distributed() as (rank, world, device), torch.enable_grad():  # even where the caller turned them off
        history, best = _train(student, teacher, (x_train, y_train), cfg, (select, held_out), state_file,
                               progress, (rank, world, device))
    student.load_state_dict(best["state"])
    student.to("cpu").eval()
    metric = "top-1 %" if held_out is not None and held_out[1] is not None \
        else "top-1 agreement with the unpruned model %"
    if select is None:
        selection = {"images": 0, "rule": f"last epoch (under {10 * SELECT_EVERY} fine-tuning images: none held "
                                          "out to choose on)"}
    else:
        selection = {"images": len(select_idx), "rule": f"best epoch on every {SELECT_EVERY}th fine-tuning image "
                                                        "(not trained on, not the evaluation images)",
                     "metric": "top-1 %" if select[1] is not None else "top-1 agreement with the unpruned model %"}
    return {"config": asdict(cfg), "history": history, "best_epoch": best["epoch"],
            "best_score": best["score"] if select is not None else None, "selection": selection,
            "device": str(device), "world_size": world, "held_out_metric": metric}


def _train(student, teacher, train, cfg: FinetuneConfig, scored, state_file: Path, progress, dist_info):
    """The epochs: returns (history, best). ``scored`` is (selection images or None, the caller's held-out)."""
    import torch

    (x_train, y_train), (select, held_out), (rank, world, device) = train, scored, dist_info
    torch.manual_seed(cfg.seed)
    student.to(device).train()
    teacher = teacher.to(device).eval()
    model = student
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(student, device_ids=[device.index] if device.type == "cuda"
                                                          else None)
    params = [p for p in student.parameters() if p.requires_grad]
    opt = (torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay) if cfg.optimizer == "adamw"
           else torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True))
    # equal shards (the remainder sits the epoch out), or the ranks take unequal steps and DDP waits forever;
    # a last batch of one image is left out too: BatchNorm cannot train on it
    shard = len(x_train) // world
    steps_per_epoch = max(1, shard // cfg.batch_size + (shard % cfg.batch_size > 1))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    history, best, start = [], {"epoch": 0, "score": -1.0, "state": copy.deepcopy(student.state_dict())}, 0
    if state_file.exists():
        saved = torch.load(state_file, map_location=device, weights_only=True)
        if saved.get("config") != asdict(cfg):
            raise EdgekitError(f"{state_file} is an interrupted fine-tuning with other settings: delete it or "
                               "repeat the earlier options")
        student.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        history, best, start = saved["history"], saved["best"], saved["epoch"]
    xt = torch.from_numpy(x_train)
    yt = None if y_train is None else torch.from_numpy(np.asarray(y_train)).long()
    from ..progress import track_progress

    with track_progress(progress) as prog:
        task = prog.add_task("fine-tuning", total=cfg.epochs * steps_per_epoch, completed=start * steps_per_epoch)
        for epoch in range(start, cfg.epochs):
            g = torch.Generator().manual_seed(cfg.seed + epoch)
            order = torch.randperm(len(xt), generator=g)[:shard * world][rank::world][:steps_per_epoch * cfg.batch_size]
            model.train()
            total = 0.0
            for i in range(0, len(order), cfg.batch_size):
                idx = order[i:i + cfg.batch_size]
                xb = xt[idx].to(device, non_blocking=True)
                with torch.no_grad():
                    tl = teacher(xb)
                loss = kd_loss(model(xb), tl, None if yt is None else yt[idx].to(device), cfg.temperature,
                               cfg.kd_weight)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(idx)
                prog.update(task, advance=1, description=f"fine-tuning epoch {epoch + 1}/{cfg.epochs} "
                                                          f"loss {float(loss.detach()):.3f}")
            _sync_buffers(student, world)
            score = _score(student, teacher, select, device) if select is not None else float(epoch)
            score, reported = _agree([score, _score(student, teacher, held_out, device)], world, device, "rank0")
            total, seen = _agree([total, float(len(order))], world, device, "sum")
            prog.update(task, description=f"fine-tuning epoch {epoch + 1}/{cfg.epochs} held-out {reported:.2f}%")
            history.append({"epoch": epoch + 1, "loss": total / max(1.0, seen), "held_out": reported,
                            "selection": score if select is not None else None})
            if score > best["score"]:
                best = {"epoch": epoch + 1, "score": score, "state": copy.deepcopy(student.state_dict())}
            if rank == 0:
                _save_state(state_file, {"config": asdict(cfg), "epoch": epoch + 1, "model": student.state_dict(),
                                         "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                                         "history": history, "best": best})
    return history, best


def _score(student, teacher, held_out, device) -> float:
    import torch

    if held_out is None:
        return 0.0
    x, y = held_out
    student.eval()
    with torch.no_grad():
        preds, ref = [], []
        for i in range(0, len(x), 256):
            xb = torch.from_numpy(x[i:i + 256]).to(device)
            preds.append(student(xb).argmax(1).cpu())
            if y is None:
                ref.append(teacher(xb).argmax(1).cpu())
    p = torch.cat(preds).numpy()
    target = np.asarray(y) if y is not None else torch.cat(ref).numpy()
    return 100.0 * float((p == target).mean())


def _save_state(path: Path, state: dict) -> None:
    import io

    import torch

    from ..fsutil import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(state, buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())

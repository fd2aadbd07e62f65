"""Recovery fine-tuning of a pruned model by distillation from the unpruned one.

The images stream: a ``DistributedSampler`` deals each process its shard of positions, torch's ``DataLoader``
decodes and augments them in worker processes a batch at a time, so no process holds the training set. Runs on
CUDA when present (pinned batches); under ``torchrun`` (one machine or ``--nnodes N``) it trains data-parallel
with no change to the command: ``batch_size`` is per process, every process trains on an equal shard and ends
with the same weights; only rank 0 writes (the state here, everything else in the caller, which asks
``is_main_process()``). Resumable: the state is saved after each epoch and every few minutes within one
(``CHECKPOINT_S``), with the step reached, so a lost process resumes at the same place in the same order.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..dist import process_group
from ..errors import EdgekitError

CHECKPOINT_S = 300.0  # within an epoch, the state is saved at most this often (and after every epoch)
AUGMENTS = ("crop-flip", "flip", "none")  # what edgekit.data.train.Augment does to the training images


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
    augment: str = "crop-flip"  # on the training images: crop-flip, flip or none (edgekit.data.train.Augment)

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTS:
            raise EdgekitError(f"--augment {self.augment}: choose {', '.join(AUGMENTS)}")
        if self.epochs < 1:
            raise EdgekitError(f"--epochs {self.epochs} must be at least 1")
        if self.optimizer not in ("adamw", "sgd"):
            raise EdgekitError(f"--optimizer {self.optimizer!r}: choose adamw or sgd")
        if not 0.0 <= self.kd_weight <= 1.0:
            raise EdgekitError(f"--kd-weight {self.kd_weight} must lie in [0, 1]")


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


def finetune(student, teacher, train, cfg: FinetuneConfig, held_out, state_file: Path, progress=None) -> dict:
    """Train ``student`` in place on ``train``; returns the history and the best epoch.

    ``train`` reads its images: ``edgekit.data.train.TrainImages`` (image files, augmented as it says, decoded a
    batch at a time) or ``ArrayImages`` (a script's arrays); ``cfg.augment`` is for the caller that builds it.

    The best epoch is chosen on a tenth of the fine-tuning images held out from training (accuracy, or
    agreement with the teacher when there are no labels), or is the last epoch when they are too few;
    ``held_out`` (the caller's evaluation images, the same kinds, or None) is scored each epoch for the report only.
    Labels are used when ``train`` has them."""
    train_idx, select_idx = selection_split(len(train))
    select = train.subset(select_idx) if select_idx else None
    import torch

    with process_group() as (rank, world, device), torch.enable_grad():  # even where the caller turned them off
        history, best, reads = _train(student, teacher, train.subset(train_idx), cfg, (select, held_out),
                                      state_file, progress, (rank, world, device))
    student.load_state_dict(best["state"])
    student.to("cpu").eval()
    metric = "top-1 %" if held_out is not None and held_out.labelled else "top-1 agreement with the unpruned model %"
    if select is None:
        selection = {"images": 0, "rule": f"last epoch (under {10 * SELECT_EVERY} fine-tuning images: none held "
                                          "out to choose on)"}
    else:
        selection = {"images": len(select_idx), "rule": f"best epoch on every {SELECT_EVERY}th fine-tuning image "
                                                        "(not trained on, not the evaluation images)",
                     "metric": "top-1 %" if select.labelled else "top-1 agreement with the unpruned model %"}
    return {"config": asdict(cfg), "history": history, "best_epoch": best["epoch"],
            "best_score": best["score"] if select is not None else None, "selection": selection,
            "device": str(device), "world_size": world, "held_out_metric": metric,
            "augmentation": train.augmentation, "reads": reads}


def _optimizer(student, cfg: FinetuneConfig, total_steps: int):
    import torch

    params = [p for p in student.parameters() if p.requires_grad]
    opt = (torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay) if cfg.optimizer == "adamw"
           else torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True))
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)


def _resume(state_file: Path, cfg: FinetuneConfig, student, opt, sched, device) -> dict | None:
    import torch

    if not state_file.exists():
        return None
    saved = torch.load(state_file, map_location=device, weights_only=True)
    if saved.get("config") != asdict(cfg):
        raise EdgekitError(f"{state_file} is an interrupted fine-tuning with other settings: delete it or "
                           "repeat the earlier options")
    student.load_state_dict(saved["model"])
    opt.load_state_dict(saved["optimizer"])
    sched.load_state_dict(saved["scheduler"])
    if "rng" in saved:
        torch.set_rng_state(saved["rng"].cpu())
    return saved


def _train(student, teacher, train, cfg: FinetuneConfig, scored, state_file: Path, progress, run):
    """The epochs: returns (history, best, reads). ``scored`` is (selection images or None, the caller's
    held-out); ``run`` is (rank, world size, device)."""
    import torch
    from torch.utils.data import DistributedSampler

    (select, held_out), (rank, world, device) = scored, run
    torch.manual_seed(cfg.seed)
    student.to(device).train()
    teacher = teacher.to(device).eval()
    model = student
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(student, device_ids=[device.index] if device.type == "cuda"
                                                          else None)
    # equal shards (DistributedSampler's drop_last: the remainder sits the epoch out), or the ranks take unequal
    # steps and DDP waits forever; a last batch of one image is left out too: BatchNorm cannot train on it
    sampler = DistributedSampler(range(len(train)), num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed,
                                 drop_last=True)
    shard = len(sampler)
    steps_per_epoch = max(1, shard // cfg.batch_size + (shard % cfg.batch_size > 1))
    opt, sched = _optimizer(student, cfg, cfg.epochs * steps_per_epoch)
    history, best = [], {"epoch": 0, "score": -1.0, "state": copy.deepcopy(student.state_dict())}
    start, step0, carried = 0, 0, (0.0, 0.0)
    saved = _resume(state_file, cfg, student, opt, sched, device)
    if saved is not None:
        history, best, start = saved["history"], saved["best"], saved["epoch"]
        step0, carried = saved.get("step", 0), tuple(saved.get("loss_sum", (0.0, 0.0)))
    reads = {"per_epoch": [], "disjoint": True}
    from ..progress import track_progress

    with track_progress(progress) as prog:
        task = prog.add_task("fine-tuning", total=cfg.epochs * steps_per_epoch,
                             completed=start * steps_per_epoch + step0, unit="img", per=cfg.batch_size)
        for epoch in range(start, cfg.epochs):
            sampler.set_epoch(epoch)
            order = list(sampler)[:steps_per_epoch * cfg.batch_size]
            skip = step0 if epoch == start else 0
            model.train()
            total, seen = carried if skip else (0.0, 0.0)
            read: list[int] = []
            last_save = time.monotonic()
            batches = train.train_batches(order[skip * cfg.batch_size:], cfg.batch_size, (cfg.seed, epoch),
                                          pin=device.type == "cuda", reads=read)
            for k, (xb, yb) in enumerate(batches, start=skip):
                xb = xb.to(device, non_blocking=True)
                with torch.no_grad():
                    tl = teacher(xb)
                loss = kd_loss(model(xb), tl, None if yb is None else yb.to(device), cfg.temperature, cfg.kd_weight)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total, seen = total + float(loss.detach()) * len(xb), seen + len(xb)
                prog.update(task, advance=1, description=f"fine-tuning epoch {epoch + 1}/{cfg.epochs} "
                                                          f"loss {float(loss.detach()):.3f}")
                if rank == 0 and k + 1 < steps_per_epoch and time.monotonic() - last_save >= CHECKPOINT_S:
                    _save_state(state_file, {"config": asdict(cfg), "epoch": epoch, "step": k + 1,
                                             "loss_sum": [total, seen], **_states(student, opt, sched),
                                             "history": history, "best": best})
                    last_save = time.monotonic()
            _sync_buffers(student, world)
            reads["per_epoch"].append(_shard_reads(read, len(train), world, reads))
            s_right, s_n = _score(student, teacher, select, device, rank, world)
            h_right, h_n = _score(student, teacher, held_out, device, rank, world)
            s_right, s_n, h_right, h_n = _agree([s_right, s_n, h_right, h_n], world, device, "sum")
            score = 100.0 * (s_right / s_n) if select is not None else float(epoch)
            reported = 100.0 * (h_right / h_n) if h_n else 0.0
            total, seen = _agree([total, seen], world, device, "sum")
            prog.update(task, description=f"fine-tuning epoch {epoch + 1}/{cfg.epochs} held-out {reported:.2f}%")
            history.append({"epoch": epoch + 1, "loss": total / max(1.0, seen), "held_out": reported,
                            "selection": score if select is not None else None})
            if score > best["score"]:
                best = {"epoch": epoch + 1, "score": score, "state": copy.deepcopy(student.state_dict())}
            if rank == 0:
                _save_state(state_file, {"config": asdict(cfg), "epoch": epoch + 1, "step": 0,
                                         **_states(student, opt, sched), "history": history, "best": best})
    return history, best, reads


def _states(student, opt, sched) -> dict:
    import torch

    return {"model": student.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "rng": torch.get_rng_state()}


def _shard_reads(read: list[int], n: int, world: int, reads: dict) -> list[int]:
    """Images each process read this epoch (gathered); ``reads["disjoint"]`` stays True while no image was read by
    two processes in one epoch."""
    import torch.distributed as dist

    mask = np.zeros(n, bool)
    mask[read] = True
    if world == 1:
        return [len(read)]
    everyone: list = [None] * world
    dist.all_gather_object(everyone, (len(read), np.packbits(mask)))
    masks = np.stack([np.unpackbits(m)[:n].astype(bool) for _, m in everyone])
    reads["disjoint"] = reads["disjoint"] and bool((masks.sum(0) <= 1).all())
    return [c for c, _ in everyone]


def _score(student, teacher, images, device, rank: int, world: int) -> tuple[float, float]:
    """(images right, images) on this process's share of ``images``: top-1 with labels, else agreement with the
    teacher. Each process scores every ``world``-th image; the caller sums them."""
    import torch

    if images is None:
        return 0.0, 0.0
    if world > 1:
        images = images.subset(np.arange(rank, len(images), world))
    student.eval()
    right = n = 0
    with torch.no_grad():
        for x, y in images.batches(256):
            xb = torch.from_numpy(x).to(device)
            p = student(xb).argmax(1).cpu().numpy()
            target = np.asarray(y) if y is not None else teacher(xb).argmax(1).cpu().numpy()
            right += int((p == target).sum())
            n += len(p)
    return float(right), float(n)


def _save_state(path: Path, state: dict) -> None:
    import io

    import torch

    from ..fsutil import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(state, buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())

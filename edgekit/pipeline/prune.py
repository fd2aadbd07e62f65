"""`edgekit prune`: prune, optionally sparsify and fine-tune, then export and measure before and after."""

from __future__ import annotations

import contextlib
import copy
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import dist
from ..data.images import scan
from ..data.stream import ImageStream
from ..data.train import Augment, TrainImages
from ..errors import EdgekitError
from ..fsutil import atomic_write_bytes, check_out_dir, staged_dir, write_json
from ..graph.export import onnx_from_torch, simplify, write_onnx_with_meta
from ..measure.facts import artifact_facts
from ..measure.quality import Tolerance, outcomes, verify
from ..measure.timing import TimingOptions, compare_latency
from ..models.source import PreprocessOverrides, is_onnx, open_model
from ..progress import make_progress
from ..prune.finetune import FinetuneConfig, finetune
from ..prune.plan import PruneConfig, gzip_size, prune, sparsify
from ..report import document as report_mod


def _torch_logits(model, x) -> np.ndarray:
    from ..backends.torch import TorchRunner

    with TorchRunner(model) as r:
        return np.concatenate([r.infer(x[i:i + 64]) for i in range(0, len(x), 64)])


def _torch_outcomes(model, images, progress, desc: str):
    """The model on every evaluation image, 64 at a time (under torchrun, each process on its shard)."""
    from ..backends.torch import TorchRunner

    with TorchRunner(model) as r:
        return outcomes([r], images, progress=progress, desc=desc, batch_size=64, chunk=64)[0]


def _quality(o, ref) -> dict:
    if o.acc is not None:
        acc = o.accuracy()
        return {"top1": acc["top1"], "top5": acc["top5"], "basis": "labels"}
    return {"top1": o.top1_agreement_with(ref), "basis": "agreement with unpruned"}


@dataclass(frozen=True)
class PruneRequest:
    """Everything `edgekit prune` does, once: built by the CLI, a recipe or a script, checked before any work."""

    model: str
    out: str | None = None  # default edgekit-out/<model>-pruned
    weights: str = "imagenet"
    num_classes: int | None = None
    trust_checkpoint: bool = False
    eval_data: str | None = None
    force: bool = False
    preprocess: PreprocessOverrides = field(default_factory=PreprocessOverrides)
    prune: PruneConfig | None = None  # channel pruning
    sparsity: str | None = None  # zeroed weights: a fraction, or 2:4
    finetune_data: str | None = None
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    threads: int | None = None

    def __post_init__(self) -> None:
        if is_onnx(self.model):
            raise EdgekitError(f"pruning needs the torch model, not {self.model}: pass a zoo name and --weights")
        if self.prune is None and self.sparsity is None:
            raise EdgekitError("nothing to do: pass --ratio for channel pruning and/or --sparsity")

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path("edgekit-out") / f"{self.model}-pruned"


def prune_model(request: PruneRequest, *, timing: TimingOptions | None = None) -> dict | None:
    """Prune the model (and/or sparsify it), fine-tune on ``finetune_data`` by distillation, export it.

    Writes ``plan.json``, ``pruned_state_dict.pt``, ``model.onnx`` and the report into the output folder.
    Under torchrun only rank 0 goes on past the fine-tuning and writes; the other ranks return None.
    """
    r = request
    model, out, weights, cfg, sparsity = r.model, r.out_dir, r.weights, r.prune, r.sparsity
    finetune_data, ft, eval_data, threads, force = r.finetune_data, r.finetune, r.eval_data, r.threads, r.force
    num_classes, trust_checkpoint, overrides = r.num_classes, r.trust_checkpoint, r.preprocess
    check_out_dir(out, force)
    source = open_model(model, weights, num_classes, trust_checkpoint, overrides)
    from ..models.registry import get_card

    card = get_card(source.name)
    if cfg is not None:
        from ..prune.plan import check_prunable

        check_prunable(card)
    student, teacher = source.torch_model, copy.deepcopy(source.torch_model).eval()
    shape = source.input_shape
    notes: list[str] = []
    with make_progress(show=dist.is_main_process()) as progress, contextlib.ExitStack() as closing:
        with dist.process_group():  # under torchrun: the processes evaluate and train side by side until here
            evalset = scan(eval_data, source.categories, source.num_classes) if eval_data else None
            ftset = scan(finetune_data, source.categories, source.num_classes) if finetune_data else None
            if ftset is not None and evalset is None:
                # hold out every fifth fine-tuning image to choose the best epoch and report accuracy
                held = [i for i in range(len(ftset)) if i % 5 == 0]
                evalset = ftset.subset(held)
                ftset = ftset.subset([i for i in range(len(ftset)) if i % 5])
                notes.append(f"no --eval-data: {len(evalset)} of the fine-tuning images held out for evaluation")
            evals = None
            if evalset is not None:
                evals = ImageStream(evalset, source.preprocess)
                if dist.world_size() == 1:  # read once per stage: one decoded copy (under torchrun each process
                    evals = closing.enter_context(evals.cache(progress, "reading eval images"))  # reads its shard)
                if not source.pretrained:
                    evals = evals.unlabelled()
            stages: dict = {}
            ref = _torch_outcomes(teacher, evals, progress, "unpruned model") if evals is not None else None

            def record(stage: str, m) -> None:
                import torch
                import torch_pruning as tp

                macs, params = tp.utils.count_ops_and_params(m, torch.zeros(*shape))
                entry = {"params": int(params), "macs": int(macs),
                         "state_dict_gzip_bytes": gzip_size(m.state_dict())}
                if evals is not None:
                    entry["quality"] = _quality(ref if m is teacher else _torch_outcomes(m, evals, progress, stage),
                                                ref)
                stages[stage] = entry

            record("unpruned", teacher)
            plan = None
            if cfg is not None:
                taylor = None
                from ..prune.importance import needs_gradients

                if needs_gradients(cfg.importance):
                    src = ftset or evalset
                    if src is None:
                        raise EdgekitError("--importance taylor needs images: pass --finetune-data or --eval-data")
                    tx, ty = ImageStream(src, source.preprocess).subset(range(min(64, len(src)))).array()
                    taylor = [(tx[i:i + 16], None if ty is None else ty[i:i + 16]) for i in range(0, len(tx), 16)]
                plan = prune(student, card, shape, cfg, taylor)
                plan["base_weights"] = {"source": source.weights, "sha256": source.weights_sha256}
                record("pruned", student)
            history = None
            if ftset is not None:
                if not source.pretrained:
                    notes.append("fine-tuning a randomly initialised model: accuracy figures are not meaningful")
                state_file = out.parent / f".{out.name}.finetune-state.pt"
                ft = ft or FinetuneConfig()
                train = TrainImages(ImageStream(ftset, source.preprocess), Augment(ft.augment))
                history = finetune(student, teacher, train, ft, evals, state_file, progress)
                record("finetuned", student)
        if not dist.is_main_process():
            return None  # another torchrun process: it trained alongside rank 0, which writes the output
        sparse = None
        if sparsity is not None:
            sparse = sparsify(student, sparsity)
            record("sparse", student)

        with staged_dir(out, force) as tmp:
            import torch

            buf = io.BytesIO()
            torch.save(student.state_dict(), buf)
            atomic_write_bytes(tmp / "pruned_state_dict.pt", buf.getvalue())
            from ..fsutil import sha256_file

            if plan is not None:
                plan["pruned_weights_sha256"] = sha256_file(tmp / "pruned_state_dict.pt")
                write_json(tmp / "plan.json", plan)
            fp32 = tmp / "model.onnx"
            onnx_from_torch(student, shape, tmp / "raw.onnx")
            from ..graph.info import load_checked

            raw = load_checked(tmp / "raw.onnx")
            (tmp / "raw.onnx").unlink()
            write_onnx_with_meta(simplify(raw), fp32, {
                "model": source.name, "family": source.family, "weights": "pruned_state_dict.pt",
                "pretrained": source.pretrained, "num_classes": source.num_classes,
                "categories": source.categories, "preprocess": source.preprocess.to_dict(), "precision": "fp32",
                "pruning": None if plan is None else {"ratio": cfg.ratio, "layers": len(plan["layers"]),
                                                      **({"units": plan["units"]} if "units" in plan else {})}})
            x = evals.head(64) if evals is not None else np.zeros(shape, np.float32)
            verification = verify(fp32, x[:64], _torch_logits(student, x[:64]), Tolerance())
            base = tmp / "unpruned.onnx"
            onnx_from_torch(teacher, shape, base)
            lat = compare_latency({"unpruned": base, "pruned": fp32}, x, timing or TimingOptions(10, 50), threads,
                                  progress)
            base_size = base.stat().st_size
            base.unlink()
            rep = report_mod.new_report(
                "prune", model=source.describe(), precision="fp32", plan=plan, sparsity=sparse,
                finetune=history, stages=stages, artifact=artifact_facts(fp32), verification=verification,
                latency_compare=lat, unpruned_onnx_bytes=base_size, input_shape=list(shape),
                preprocess=source.preprocess.to_dict(), out=str(out), environment=report_mod.environment(threads),
                notes=notes, images=evalset.summary() if evalset is not None else None)
            report_mod.write(rep, tmp)
        if history is not None:
            (out.parent / f".{out.name}.finetune-state.pt").unlink(missing_ok=True)
    return rep

"""Pruned and fine-tuned candidates for ``--optimize --finetune-data``.

Pruning removes work no quantizer can (a channel ratio of 0.5 quarters a convolution's MACs), but only
fine-tuning gives the accuracy back, and only a measurement says whether the thinner model is faster on this CPU.
So each ratio becomes one model: pruned by Torch-Pruning (L1), channels rounded to the CPU's vector width,
fine-tuned by distillation from the model as given on the user's fine-tuning images, exported, then quantized with
round 1's best INT8 recipe. Both files run on every backend and are judged on the selection half like every
other candidate. A fine-tuned model is cached by a hash of all it depends on, and an interrupted fine-tuning
resumes from its last epoch, so a second run (another budget, a Ctrl-C) does not train again.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..cpuinfo import cpu_info
from .candidates import Candidate

PRUNE_RATIOS = (0.25, 0.5)
FINETUNE_EPOCHS = 3


def channel_rounding(backend: str, cpu_flags: set[str]) -> int:
    """The channel multiple a pruned layer keeps for ``backend``: a width off the vector size runs padded, so the
    channels it saves cost time instead of saving it. onnxruntime's NCHWc kernels and OpenVINO's blocked layouts
    hold 16 floats per AVX-512 register and 8 per AVX2 register; TensorRT's INT8 Tensor Core kernels take channels
    in multiples of 32."""
    if backend == "tensorrt":
        return 32
    return 16 if "avx512f" in cpu_flags else 8


def pruned_key(model_sha256: str, ratio: float, round_to: int, finetune: dict, data_fingerprint: str,
               preprocess: dict, depth: float = 0.0) -> str:
    """Everything a fine-tuned pruned model depends on; any change trains again. ``model_sha256`` is
    :func:`edgekit.models.weights.weights_sha256` of the model as given."""
    import torch

    from ..prune.plan import PLAN_VERSION

    fields = {"plan": PLAN_VERSION, "model": model_sha256, "ratio": ratio, "round_to": round_to,
              "importance": "l1", "finetune": finetune, "data": data_fingerprint, "preprocess": preprocess,
              "torch": torch.__version__}
    if depth:  # only then: the keys of models cached before depth pruning existed stay valid
        fields["depth"] = depth
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def pruned_candidates(ratios, backends: list[str], int8_like: Candidate | None, depth: float = 0.0) -> list[Candidate]:
    """Per ratio and backend: the pruned model in FP32, and in INT8 with the exclusions of ``int8_like`` (round 1's
    fastest INT8 within the budget; plain INT8 when none fitted). ``depth`` (units removed) shows in the names."""
    base = int8_like or Candidate("int8", "onnxruntime", "int8")
    suffix = "".join(f"-float-{e.lower()}" for e in base.exclude) + ("-s8" if base.symmetric_activations else "")
    out = []
    for r in ratios:
        tag = f"{r:g}" + (f"-depth-{depth:g}" if depth else "")
        for be in backends:
            out.append(Candidate(f"{be}-pruned-{tag}-fp32", be, "fp32", pruned=r))
            out.append(Candidate(f"{be}-pruned-{tag}-int8{suffix}", be, "int8", exclude=base.exclude,
                                 symmetric_activations=base.symmetric_activations, pruned=r))
    return out


@dataclass(frozen=True)
class FinetuneSearch:
    """What the pruned round needs from the request: the images, the ratios, the fine-tuning settings."""

    data: str
    ratios: tuple[float, ...]
    config: object  # a FinetuneConfig
    cache_dir: Path
    opset: int = 18  # the pruned files are exported like the model's own file
    dynamic_batch: bool = False
    depth: float = 0.0  # ShuffleNetV2: share of each stage's repeated units removed too


class PrunedModels:
    """The fine-tuned pruned models of one search, one folder each under ``candidates/``."""

    def __init__(self, s, fs: FinetuneSearch, round_to: int, progress) -> None:
        self.s, self.fs, self.round_to, self.progress = s, fs, round_to, progress
        self.fp32: dict[float, Path] = {}
        self.info: dict[str, dict] = {}
        self._data = None
        self._weights: str | None = None

    def _images(self):
        """(the fine-tuning images as a stream, their fingerprint): read a batch at a time, never held."""
        if self._data is None:
            from ..data.images import scan
            from ..data.stream import ImageStream
            from ..data.train import Augment, TrainImages

            src = self.s.source
            images = scan(self.fs.data, src.categories, src.num_classes)
            stream = ImageStream(images, src.preprocess)
            stream = stream if images.labelled and src.pretrained else stream.unlabelled()
            self._data = (TrainImages(stream, Augment(self.fs.config.augment)), images.fingerprint())
        return self._data

    def cache_file(self, ratio: float) -> Path:
        s = self.s
        if self._weights is None:
            from ..models.weights import weights_sha256

            self._weights = weights_sha256(s.source.torch_model)
        key = pruned_key(self._weights, ratio, self.round_to, asdict(self.fs.config), self._images()[1],
                         s.source.preprocess.to_dict(), self.fs.depth)
        depth = f"-depth-{self.fs.depth:g}" if self.fs.depth else ""
        return self.fs.cache_dir / f"{s.source.name}-pruned-{ratio:g}{depth}-{key[:16]}.pt"

    def build(self, ratio: float) -> Path:
        """Prune, fine-tune (or read the cached result), export and verify; returns the FP32 ONNX file."""
        import torch

        from ..fsutil import atomic_write_bytes, sha256_file, write_json
        from ..measure.quality import Tolerance, verify
        from ..models.registry import get_card
        from ..prune.finetune import finetune
        from ..prune.plan import PruneConfig, prune

        s, source = self.s, self.s.source
        train, _ = self._images()
        teacher = source.torch_model.eval()
        student = copy.deepcopy(teacher)
        plan = prune(student, get_card(source.name), source.input_shape, PruneConfig(ratio, round_to=self.round_to,
                                                                                  depth=self.fs.depth))
        cache, started = self.cache_file(ratio), time.monotonic()
        saved = _cached(cache, student)
        if saved is not None:
            history = saved["history"]
        else:
            state = cache.with_name(cache.stem + ".finetune-state.pt")  # an interrupted run resumes here
            history = finetune(student, teacher, train, self.fs.config, None, state, self.progress)
            _save(cache, {"state": student.state_dict(), "history": history}, atomic_write_bytes)
            state.unlink(missing_ok=True)
        student.eval()
        folder = s.tmp / "candidates" / f"pruned-{ratio:g}"
        folder.mkdir(parents=True, exist_ok=True)
        _save(folder / "pruned_state_dict.pt", student.state_dict(), atomic_write_bytes)
        plan["base_weights"] = {"source": source.weights, "sha256": source.weights_sha256}
        plan["pruned_weights_sha256"] = sha256_file(folder / "pruned_state_dict.pt")
        write_json(folder / "plan.json", plan)
        path = _export(student, source, folder / "model.onnx", ratio, self.fs)
        x = s.images.head(32)
        with torch.no_grad():
            ref = student(torch.from_numpy(x)).numpy()
        checked = verify(path, x, ref, Tolerance())  # raises when the file disagrees with its model
        self.fp32[ratio] = path
        self.info[f"{ratio:g}"] = {"round_to": self.round_to, "cache": {"file": str(cache), "hit": saved is not None},
                                   "finetune_s": round(time.monotonic() - started, 1),
                                   "best_epoch": history["best_epoch"], "selection": history["selection"],
                                   "layers_pruned": len(plan["layers"]),
                                   "verification_max_abs_diff": checked["max_abs_diff"]}
        return path


def _cached(cache: Path, student) -> dict | None:
    """The cached fine-tuning, loaded into ``student``; None when there is none or it does not fit (a file from
    another Torch-Pruning cutting other channels, a damaged file): then it is trained again and replaced."""
    import torch

    if not cache.exists():
        return None
    try:
        saved = torch.load(cache, weights_only=True)
        copy.deepcopy(student).load_state_dict(saved["state"])  # a misfit raises here, leaving ``student`` whole
    except Exception:  # noqa: BLE001 - any unreadable cache means: train again
        return None
    student.load_state_dict(saved["state"])
    return saved


def _save(path: Path, obj, write) -> None:
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, buf.getvalue())


def _export(model, source, path: Path, ratio: float, fs: FinetuneSearch) -> Path:
    """The pruned model as ONNX with edgekit's metadata, checked against torch on a few of the search's images."""
    from ..graph.export import onnx_from_torch, simplify, write_onnx_with_meta
    from ..graph.info import load_checked

    raw = path.with_name("raw.onnx")
    onnx_from_torch(model, list(source.input_shape), raw, fs.opset, fs.dynamic_batch)
    graph = load_checked(raw)
    raw.unlink()
    write_onnx_with_meta(simplify(graph), path, {
        "model": source.name, "family": source.family, "weights": "pruned_state_dict.pt",
        "pretrained": source.pretrained, "num_classes": source.num_classes, "categories": source.categories,
        "preprocess": source.preprocess.to_dict(), "precision": "fp32",
        "pruning": {"ratio": ratio, **({"depth": fs.depth} if fs.depth else {})}})
    return path


def pruned_artifact(s, cand: Candidate) -> Path:
    """The file of a pruned candidate: the fine-tuned FP32 model, or its INT8 with the candidate's exclusions
    (ranges calibrated on the search's calibration set, cached under the pruned model's own key)."""
    from ..data import calibration
    from ..fsutil import sha256_file
    from ..quantize.guard import quantize_with_guard

    fp32 = s.pruned.fp32[cand.pruned]
    if cand.precision == "fp32":
        return fp32
    extra = (("ActivationSymmetric", True),) if cand.symmetric_activations else ()
    cfg = replace(s.base_cfg, exclude=s.base_cfg.exclude + cand.exclude, extra=s.base_cfg.extra + extra)
    key = calibration.cache_key(sha256_file(fp32), s.source.preprocess, {**cfg.method_fields(), "target": "cpu"},
                                s.cal)
    stem = "int8" + "".join(f"-float-{e.lower()}" for e in cand.exclude) + ("-s8" if cand.symmetric_activations
                                                                             else "")
    out = fp32.with_name(f"{stem}.onnx")
    quantize_with_guard(fp32, out, cfg, s.cal, s.cache_file.with_name(f"{s.cache_file.stem}-pruned-{key[:12]}.json"),
                        key)
    return out


def _int8_recipe(measured, max_drop: float) -> Candidate | None:
    """Round 1's fastest plain INT8 recipe within the budget (exclusions and activation symmetry only: mixed
    precision's node names and NNCF's own files do not carry over to another model)."""
    ok = [m for m in measured if m.candidate.precision == "int8" and m.candidate.pruned is None and m.fits(max_drop)
          and not (m.candidate.float_nodes or m.candidate.nncf or m.candidate.runtime or m.candidate.int8_ops)]
    return min(ok, key=lambda m: (m.latency_ms, m.candidate.name)).candidate if ok else None


def _step_seconds(model, images, batch_size: int) -> float:
    """One distillation step of the unpruned model, timed: an upper bound per step of a pruned one."""
    import torch

    student, xb = copy.deepcopy(model).train(), torch.from_numpy(images.head(batch_size))
    start = time.monotonic()
    with torch.no_grad():
        model(xb)
    with torch.enable_grad():  # a caller (a benchmark, a notebook) may have turned gradients off
        student(xb).sum().backward()
    return time.monotonic() - start


def pruned_round(s, fs: FinetuneSearch, measured, max_drop: float, backends: list[str], clock):
    """Fine-tune one pruned model per ratio (while ``clock`` allows), measure each in FP32 and INT8 on every
    backend. Returns (the measurements, the report's ``pruned`` section)."""
    from ..progress import track_progress

    round_to = channel_rounding(backends[0], set(cpu_info()[1]))
    int8_like = _int8_recipe(measured, max_drop)
    models = s.pruned = PrunedModels(s, fs, round_to, s.progress)
    x = models._images()[0]  # a stream: its length and, for the estimate, one batch
    steps = fs.config.epochs * max(1, len(x) * 9 // 10 // fs.config.batch_size)
    per_finetune, out = None, []
    with track_progress(s.progress) as prog:
        task = prog.add_task("pruned candidates", total=len(fs.ratios))
        for r in fs.ratios:
            cands = pruned_candidates([r], backends, int8_like, fs.depth)
            cached = models.cache_file(r).exists()
            if not cached and per_finetune is None:
                per_finetune = steps * _step_seconds(s.source.torch_model, x, fs.config.batch_size)
            estimate = (0.0 if cached else per_finetune) + len(cands) * clock.per_candidate()
            if not clock.allows_seconds(f"pruned {r:g} (about {estimate:.0f} s)", estimate):
                continue
            prog.update(task, description=f"pruned candidates: ratio {r:g}, about {estimate:.0f} s")
            started = time.monotonic()
            models.build(r)
            if not cached:
                per_finetune = time.monotonic() - started
            out += s.measure([(c, s.artifact(c)) for c in cands])
            clock.finished(len(cands))
            prog.advance(task)
        prog.remove_task(task)
    return out, {"ratios": list(fs.ratios), "depth": fs.depth, "round_to": round_to, "finetune": asdict(fs.config),
                 "finetune_images": len(x), "int8_recipe": int8_like.name if int8_like else "int8",
                 "models": models.info}


def ship_pruned(s, ratio: float, chosen: Path) -> list[str]:
    """Beside a pruned choice: its plan and weights, so the torch model can be rebuilt (`--plan`)."""
    import shutil

    folder = s.pruned.fp32[ratio].parent
    names = []
    for name in ("plan.json", "pruned_state_dict.pt"):
        target = chosen.with_name(f"{chosen.stem}.{name}")
        shutil.copyfile(folder / name, target)
        names.append(target.name)
    return names

"""The shared state of one ``--optimize`` run: the calibration set, the selection and judge halves, the files
built and their measurements. The rounds in ``optimize.py`` (and ``mixed.py``, ``pruned.py``) ask it for a
candidate's file and measure lists of candidates with it."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import statistics
from pathlib import Path

import numpy as np

from ..data.stream import ImageStream
from ..measure.quality import outcomes
from ..measure.timing import TimingOptions, head_to_head, sweep_order, time_runner
from ..quantize.config import QuantConfig
from ..stats import paired_drop
from . import candidates as opt
from .candidates import Candidate, Measured, drop_margin, runner_for
from .runoff import RUNOFF_ROUNDS

SWEEPS = 3  # every round times each candidate alone, in turn, this many times; the median of medians decides


@dataclasses.dataclass(frozen=True)
class Quantizing:
    """How the search quantizes: the base config, the (materialized) calibration set and its range cache."""

    cfg: QuantConfig
    cal: object  # a CalibrationSet: read once per config, and its array feeds NNCF
    cache_file: Path
    key: str


@dataclasses.dataclass(frozen=True)
class Running:
    """How the search runs and times candidates."""

    threads: int | None
    timing: TimingOptions
    progress: object = None


class Search:
    """Shared state of one --optimize run: the calibration set, the judge images, built files, measurements."""

    def __init__(self, source, tmp: Path, fp32_path: Path, images: ImageStream, quant: Quantizing, run: Running,
                 drop_rule: str = "point") -> None:
        self.source, self.tmp, self.fp32_path, self.images = source, tmp, fp32_path, images
        self.drop_rule = drop_rule  # GraphOptions checked it; drop_margin applies it
        self.base_cfg, self.cal, self.cache_file, self.key = quant.cfg, quant.cal, quant.cache_file, quant.key
        self.threads, self.timing, self.progress = run.threads, run.timing, run.progress
        threads, progress, cal = run.threads, run.progress, quant.cal
        self.sample = images.head(1)  # the input every candidate is timed on
        self.files: dict[tuple, Path] = {}
        self.labelled = images.labelled and source.pretrained
        pool = images
        if not self.labelled and cal.held_out is not None and len(cal.held_out):
            pool = ImageStream(cal.held_out.subset(range(min(len(cal.held_out), 500))), source.preprocess).cache(
                progress, "reading held-out images")
        sel, judge = opt.split_selection_judge(len(pool), pool.labels if self.labelled else None)
        with runner_for(Candidate("ref", "onnxruntime", "fp32"), fp32_path, threads) as r:
            ref = outcomes([r], pool, progress=progress, desc="FP32 on the judge images", keep=sel[:64])[0]
        # the half that chooses and the half that reports, as streams over the pool's images
        self.halves = {"selection": pool.subset(sel), "judge": pool.subset(judge)}
        self.sensitivity_ref = ref.kept  # FP32 logits of the first 64 selection images (mixed.py's ranking)
        self.ref_top1 = {"selection": ref.top1[sel], "judge": ref.top1[judge]}
        # per image: does FP32 answer right (always, when judged by agreement with FP32)
        self.ref_correct = {name: (ref.acc["top1"][idx] if self.labelled else np.ones(len(idx), bool))
                            for name, idx in (("selection", sel), ("judge", judge))}
        self.baseline = {name: 100.0 * float(c.mean()) for name, c in self.ref_correct.items()}
        self.metrics: dict[str, dict[str, float]] = {}
        self.uncertainty: dict[str, dict] = {}  # each candidate's paired drop on the selection half (stats.paired_drop)
        self.pruned = None  # the fine-tuned pruned models (pruned.PrunedModels), once the pruned round runs

    def correct(self, runner, half: str = "selection") -> np.ndarray:
        """Per image of the half: top-1 right (labelled), or the same top-1 as FP32 (unlabelled). Their mean is the
        metric: ``stats.accuracy``'s top-1 or ``stats.agreement``'s top-1 agreement."""
        o = outcomes([runner], self.halves[half], progress=self.progress, desc=f"judging on the {half} half")[0]
        return o.acc["top1"] if self.labelled else o.top1 == self.ref_top1[half]

    def score(self, runner, half: str = "selection") -> float:
        return 100.0 * float(self.correct(runner, half).mean())

    def describe_split(self) -> dict:
        return {"judged_by": "top-1" if self.labelled else "agreement with FP32",
                "selection_images": len(self.halves["selection"]), "judge_images": len(self.halves["judge"]),
                "baseline": self.baseline}

    def artifact(self, cand: Candidate) -> Path:
        if cand.precision == "fp32" and cand.pruned is None and cand.fmt is None:
            return self.fp32_path
        if cand.artifact_key in self.files:
            return self.files[cand.artifact_key]
        (self.tmp / "candidates").mkdir(exist_ok=True)
        if cand.fmt is not None:  # LiteRT / ExecuTorch: the format's converter, INT8 with its quantizer's defaults
            from ..formats import registry as fr
            from ..formats.pt2e import Int8Spec

            path = self.tmp / "candidates" / fr.file_name(cand.fmt, cand.precision)
            fr.convert(cand.fmt, fr.ConvertSource(self.source.torch_model, None, self.source.input_shape), path,
                       cand.precision, Int8Spec(lambda: self.cal.batches(32)) if cand.precision == "int8" else None)
        elif cand.pruned is not None:
            from .pruned import pruned_artifact

            path = pruned_artifact(self, cand)
        elif cand.float_nodes:
            from .mixed import build_mixed

            path = build_mixed(self, cand.float_nodes,
                               self.tmp / "candidates" / f"int8-mixed-{len(cand.float_nodes)}.onnx")
        elif cand.nncf:
            from ..backends.openvino import int8_with_nncf
            from ..data.calibration import Samples

            path = int8_with_nncf(self.fp32_path, self.tmp / "candidates" / "nncf_int8.xml", Samples(self.cal))
        else:
            from ..quantize.guard import quantize_with_guard

            stem = "int8" + "".join(f"-float-{e.lower()}" for e in cand.exclude) + ("-s8" if
                                                                                   cand.symmetric_activations else "")
            path = self.tmp / "candidates" / f"{stem}.onnx"
            extra = (("ActivationSymmetric", True),) if cand.symmetric_activations else ()
            cfg = dataclasses.replace(self.base_cfg, exclude=self.base_cfg.exclude + cand.exclude,
                                      extra=self.base_cfg.extra + extra)
            suffix = "-s8" if cand.symmetric_activations else ""
            quantize_with_guard(self.fp32_path, path, cfg, self.cal,
                                self.cache_file.with_name(self.cache_file.stem + suffix + ".json"), self.key + suffix)
        self.files[cand.artifact_key] = path
        return path

    def runoff(self, cands: list[tuple[Candidate, Path]], rounds: int = RUNOFF_ROUNDS) -> dict[str, list[float]]:
        """The runoff's timing: the candidates all loaded at once and timed head-to-head in short blocks, ``rounds``
        rounds (``edgekit.measure.timing.head_to_head``), about the calls of one ``measure`` round. Accuracy is not
        measured again."""
        with contextlib.ExitStack() as stack:
            live = {c.name: stack.enter_context(runner_for(c, p, self.threads)) for c, p in cands}
            return head_to_head(live, self.sample, rounds, max(2, self.timing.warmup // 5),
                                max(5, self.timing.repeats * SWEEPS // rounds), self.progress, desc="runoff")

    def measure(self, cands: list[tuple[Candidate, Path]]) -> list[Measured]:
        """Each candidate alone, in turn, ``SWEEPS`` times, in a new order each sweep (``sweep_order``: no candidate
        always runs first or after the same one); accuracy (or agreement) once on each half: the selection half's
        drop is the one the choice uses, the judge half's is reported."""
        medians: dict[str, list[float]] = {c.name: [] for c, _ in cands}
        for sweep in range(SWEEPS):
            for cand, path in (cands[i] for i in sweep_order(len(cands), sweep)):
                with runner_for(cand, path, self.threads) as r:
                    if cand.name not in self.metrics:
                        right = {h: self.correct(r, h) for h in self.halves}
                        self.metrics[cand.name] = {h: 100.0 * float(c.mean()) for h, c in right.items()}
                        self.uncertainty[cand.name] = paired_drop(right["selection"], self.ref_correct["selection"])
                    lat = time_runner(r, self.sample, self.timing, self.progress, desc=f"timing {cand.name}")
                medians[cand.name].append(lat["median_ms"])
                gc.collect()
        out = []
        for cand, path in cands:
            size = path.stat().st_size + (path.with_suffix(".bin").stat().st_size if path.suffix == ".xml" else 0)
            m = self.metrics[cand.name]
            sweeps = medians[cand.name]
            out.append(Measured(cand, statistics.median(sweeps), size, m["selection"],
                                self.baseline["selection"] - m["selection"],
                                str(path.relative_to(self.tmp)) if path.is_relative_to(self.tmp) else path.name,
                                {"sweeps_ms": sweeps, "spread_ms": max(sweeps) - min(sweeps),
                                 "judge_metric": m["judge"], "judge_drop": self.baseline["judge"] - m["judge"],
                                 "drop_uncertainty": self.uncertainty[cand.name]},
                                drop_margin(self.drop_rule, self.uncertainty[cand.name])))
        return out

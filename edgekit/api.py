"""The two jobs of the CPU path as plain functions: export a model, profile an artifact.

The CLI is a thin layer over these; a script can call them with the same arguments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import report as report_mod
from .data import ImageSet, builtin_photos, load_array, scan
from .errors import EdgekitError
from .export import Tolerance, onnx_from_torch, reference_logits, run_batched, simplify, verify
from .fsutil import check_out_dir, staged_dir
from .profile import TimingOptions, artifact_facts, evaluate, measure
from .progress import console, make_progress
from .quantize import QuantConfig
from .source import ModelSource, PreprocessOverrides, is_onnx, open_model, open_onnx
from .stats import accuracy


def _images(source: ModelSource, eval_data: str | os.PathLike | None, max_images: int | None,
            notes: list[str]) -> ImageSet:
    if eval_data is None:
        images = scan(builtin_photos())
        notes.append(f"checked on edgekit's {len(images)} built-in photos; pass --eval-data for your own images")
    else:
        images = scan(eval_data, source.categories, source.num_classes)
    if max_images and len(images) > max_images:
        # an even spread over the sorted list keeps every class folder represented
        idx = np.linspace(0, len(images) - 1, max_images).round().astype(int)
        images = images.subset(sorted(set(idx.tolist())))
    return images


def _image_notes(images: ImageSet, notes: list[str]) -> None:
    if images.skipped:
        notes.append(f"skipped {len(images.skipped)} non-image files in {images.root} "
                     f"(e.g. {images.skipped[0].name})")
    if images.converted:
        notes.append("converted to RGB: " + ", ".join(f"{n} {mode}" for mode, n in images.converted.items()))


def export_model(model: str, out: str | os.PathLike, weights: str = "imagenet", eval_data=None,
                 num_classes: int | None = None, trust_checkpoint: bool = False,
                 overrides: PreprocessOverrides | None = None, dynamic_batch: bool = False,
                 opset: int = 18, tolerance: Tolerance | None = None, max_images: int | None = None,
                 force: bool = False, int8: bool = False, fp16: bool = False, quant: QuantConfig | None = None,
                 calib: CalibOptions | None = None, max_drop: float | str | None = None, threads: int | None = None,
                 timing: TimingOptions | None = None, max_float_layers: int | None = None,
                 plan: str | None = None, prune_ratio: float | None = None, jetson: dict | None = None,
                 optimize: str | None = None, engine: dict | None = None, time_budget: float | None = None) -> dict:
    """Export ``model`` (zoo name or .onnx) to ``out/model.onnx``, verified against its source.

    With ``int8``, also ``out/model_int8.onnx`` (QDQ, calibrated on real images, guarded by ``max_drop``: None
    for the default budget of 1 top-1 point on held-out images, "off" for no budget);
    with ``fp16``, ``out/model_fp16.onnx``. With ``jetson`` (TensorRT build options), also the bundle to copy
    to the board in ``out/bundle``. With ``engine`` (TensorRT build options), also a TensorRT engine built and
    measured on this machine's GPU. Returns the report, also written to ``out/report.json`` and
    ``out/report.md``.
    """
    out = Path(out)
    if int8 and fp16:
        raise EdgekitError("--int8 and --fp16 together: choose one precision per export (run export twice "
                           "for both)")
    if max_drop is not None and not int8 and optimize is None:
        raise EdgekitError("--max-drop guards INT8 accuracy: add --int8 (or --optimize)")
    if optimize is not None and max_drop == "off":
        raise EdgekitError("--optimize chooses within an accuracy budget: give --max-drop in top-1 points, not off")
    if time_budget is not None and optimize is None:
        raise EdgekitError("--time-budget bounds the --optimize search: add --optimize latency (or size)")
    if optimize is not None and (int8 or fp16):
        raise EdgekitError("--optimize tries FP32 and INT8 itself: drop --int8/--fp16")
    if engine is not None:
        from .backends.tensorrt import BuildOptions, require_gpu

        if optimize is not None:
            raise EdgekitError("--optimize chooses among CPU runtimes: drop it with --backend tensorrt")
        BuildOptions(**{"precision": "int8" if int8 else "fp16" if fp16 else "fp32", **engine})
        require_gpu()  # before any work: no TensorRT or no GPU is one line, not a half-done export
    check_out_dir(out, force)
    tolerance = tolerance or Tolerance()
    source = open_model(model, weights, num_classes, trust_checkpoint, overrides, plan)
    notes = list(source.notes)
    if not source.pretrained:
        notes.append("random weights: accuracy not applicable; the file is for size and latency only")
    pruned_plan = _prune_inline(source, prune_ratio, notes) if prune_ratio is not None else None
    images = _images(source, eval_data, max_images, notes)
    with make_progress() as progress:
        x, y = load_array(images, source.preprocess, progress)
        _image_notes(images, notes)
        with staged_dir(out, force) as tmp:
            onnx_path = tmp / "model.onnx"
            shape = list(source.input_shape)
            if source.torch_model is not None:
                task = progress.add_task("exporting to ONNX", total=None)
                exporter = onnx_from_torch(source.torch_model, shape, tmp / "raw.onnx", opset, dynamic_batch)
                raw = _load(tmp / "raw.onnx")
                (tmp / "raw.onnx").unlink()
                progress.remove_task(task)
            else:
                exporter, raw = "none (ONNX input)", _load(source.onnx_path)
                if dynamic_batch:
                    raise EdgekitError("--dynamic-batch applies to torch models; re-export your ONNX file with a "
                                       "dynamic batch axis")
            if pruned_plan is not None:
                _write_pruned(tmp, source, pruned_plan)
            slim = simplify(raw)
            from .export import write_onnx_with_meta

            meta = {"model": source.name, "family": source.family, "weights": source.weights,
                    "weights_sha256": source.weights_sha256, "pretrained": source.pretrained,
                    "num_classes": source.num_classes, "categories": source.categories,
                    "preprocess": source.preprocess.to_dict(), "precision": "fp32"}
            write_onnx_with_meta(slim, onnx_path, meta)

            ref = reference_logits(source, x)
            verification = verify(onnx_path, x, ref, tolerance)
            acc: dict = {}
            if y is not None and source.pretrained:
                from .backends.onnxruntime import OnnxRuntimeRunner

                with OnnxRuntimeRunner(onnx_path) as r:
                    onnx_logits = run_batched(r, x)
                ref_name = "torch" if source.torch_model is not None else "source onnx"
                acc = {ref_name: accuracy(ref, y), "onnxruntime": accuracy(onnx_logits, y)}
            elif y is not None:
                acc = {"onnxruntime": "n/a (random weights)"}
            extra: dict = {}
            if int8:
                extra["int8"] = _int8_stage(source, tmp, onnx_path, x, y, images, quant or QuantConfig(),
                                            calib or CalibOptions(), max_drop, threads,
                                            timing or TimingOptions(warmup=10, repeats=50), notes, progress,
                                            max_float_layers)
            if fp16:
                extra["fp16"] = _fp16_stage(tmp, onnx_path, x, meta, progress)
            if optimize is not None:
                from .optimize_job import optimize_artifact

                extra["optimize"] = optimize_artifact(source, tmp, onnx_path, x, y, optimize, quant or QuantConfig(),
                                                      calib or CalibOptions(), max_drop, threads,
                                                      timing or TimingOptions(warmup=10, repeats=50), notes,
                                                      progress, _calibration_set, time_budget=time_budget)
            if jetson is not None:
                extra["bundle"] = _bundle_stage(tmp, source, onnx_path, extra, x, y, jetson, threads)
            if engine is not None:
                extra["engine"] = _engine_stage(tmp, source, onnx_path, extra, x, y, engine, timing or
                                                TimingOptions(warmup=20, repeats=100), notes, progress)
            photos = None if eval_data is not None else _photos_check(
                [onnx_path] + [tmp / extra[k]["file"] for k in ("int8", "fp16") if k in extra], source, images, x)
            rep = report_mod.new_report(
                "export", model=source.describe(), precision="int8" if int8 else "fp16" if fp16 else "fp32",
                plan=pruned_plan or source.plan, exporter=exporter, opset=opset,
                dynamic_batch=dynamic_batch, input_shape=shape, preprocess=source.preprocess.to_dict(),
                artifact=artifact_facts(onnx_path), verification=verification, accuracy=acc,
                images=images.summary(), out=str(out), environment=report_mod.environment(threads), notes=notes,
                photos_top5=photos, **extra)
            report_mod.write(rep, tmp)
    return rep


def _photos_check(files: list[Path], source: ModelSource, images: ImageSet, x) -> dict | None:
    """On the built-in photos, real ImageNet weights put an accepted class in each top 5 (see photos.py);
    checked for the FP32 file and each reduced-precision file, by file name."""
    if not (source.pretrained and source.num_classes == 1000):
        return None
    from .backends.onnxruntime import OnnxRuntimeRunner
    from .photos import accepted_labels, top5_check

    checks = {}
    for path in files:
        with OnnxRuntimeRunner(path) as r:
            checks[path.name] = top5_check(images.paths, run_batched(r, x), accepted_labels())
    return checks


def _prune_inline(source: ModelSource, ratio: float, notes: list[str]) -> dict:
    from .prune import PruneConfig, prune
    from .zoo import get_card

    if source.torch_model is None:
        raise EdgekitError("--prune needs the torch model, not an ONNX file: pass a zoo name and --weights")
    plan = prune(source.torch_model, get_card(source.name), source.input_shape, PruneConfig(ratio))
    notes.append(f"pruned {ratio:.0%} of channels without fine-tuning: accuracy drops; recover it with "
                 "`edgekit prune --finetune-data`")
    return plan


def _write_pruned(folder: Path, source: ModelSource, plan: dict) -> None:
    import io

    import torch

    from .fsutil import atomic_write_bytes, sha256_file, write_json

    buf = io.BytesIO()
    torch.save(source.torch_model.state_dict(), buf)
    atomic_write_bytes(folder / "pruned_state_dict.pt", buf.getvalue())
    plan["pruned_weights_sha256"] = sha256_file(folder / "pruned_state_dict.pt")
    write_json(folder / "plan.json", plan)


@dataclass
class CalibOptions:
    data: str | None = None  # folder of images, or .npy/.npz of preprocessed tensors
    size: int = 512
    seed: int = 0
    cache: str | None = None  # cache file; default calibration/cache/<model>-<key>.json


def _calibration_set(source: ModelSource, opts: CalibOptions, notes: list[str]):
    from . import calibration

    if opts.size < 1:
        raise EdgekitError(f"--calib-size {opts.size}: need at least 1 image")
    if opts.data is None:
        cal = calibration.from_folder(builtin_photos(), source.preprocess, opts.size, opts.seed, kind="builtin")
        cal.warnings.insert(0, f"calibrated on edgekit's {len(cal.x)} built-in photos, a small fallback: pass "
                               "--calib-data with a few hundred images of your own domain")
    elif str(opts.data).endswith((".npy", ".npz")):
        cal = calibration.from_tensors(opts.data, source.input_shape, opts.size, opts.seed)
    else:
        cal = calibration.from_folder(opts.data, source.preprocess, opts.size, opts.seed)
    notes.extend(cal.warnings)
    for w in cal.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
    return cal


def _int8_stage(source, tmp: Path, fp32_path: Path, x, y, images, cfg: QuantConfig, copts: CalibOptions,
                max_drop, threads, timing: TimingOptions, notes: list[str], progress,
                max_float_layers: int | None = None) -> dict:
    """Calibrate, quantize under the accuracy budget (held-out images), measure, explain: see int8_job."""
    from .int8_job import int8_stage

    return int8_stage(source, tmp, fp32_path, x, y, images, cfg, copts, max_drop, threads, timing, notes, progress,
                      max_float_layers)


def _read_meta(path: Path) -> dict:
    from .onnxinfo import load_checked, read_meta

    return read_meta(load_checked(path))


def _fp16_stage(tmp: Path, fp32_path: Path, x, meta: dict, progress) -> dict:
    from .backends.onnxruntime import OnnxRuntimeRunner
    from .export import write_onnx_with_meta
    from .onnxinfo import load_checked
    from .quantize import fp16_from_onnx
    from .stats import agreement

    fp16_path = tmp / "model_fp16.onnx"
    fp16_from_onnx(fp32_path, fp16_path)
    write_onnx_with_meta(load_checked(fp16_path), fp16_path, {**meta, "precision": "fp16"})
    with OnnxRuntimeRunner(fp32_path) as r:
        ref = run_batched(r, x)
    with OnnxRuntimeRunner(fp16_path) as r:
        got = run_batched(r, x)
    ag = agreement(got, ref)
    if not ag["mean_cosine"] >= 0.999:  # written so that a NaN (inf logits in half precision) fails too
        from .errors import VerificationError

        raise VerificationError(f"the FP16 graph drifts from FP32 (mean cosine {ag['mean_cosine']:.5f} < 0.999): "
                                "the model overflows in half precision; keep FP32 for this model")
    return {"file": fp16_path.name, "artifact": artifact_facts(fp16_path), "agreement_with_fp32": ag,
            "size_ratio_to_fp32": fp16_path.stat().st_size / fp32_path.stat().st_size, "io_types": "float32"}


def _bundle_stage(tmp: Path, source: ModelSource, fp32_path: Path, extra: dict, x, y, build: dict,
                  threads) -> dict:
    from .backends.onnxruntime import OnnxRuntimeRunner
    from .jetson import write_bundle

    build = dict(build)
    budgets = build.pop("budgets", None)  # a recipe's latency budget, for the board to check
    precision = "int8" if "int8" in extra else "fp16" if "fp16" in extra else None
    if precision is None:
        raise EdgekitError("a Jetson bundle carries an INT8 or FP16 model: add --int8 or --fp16")
    if precision == "int8" and extra["int8"]["config"]["target"] != "tensorrt":
        raise EdgekitError("a Jetson bundle needs TensorRT's symmetric Q/DQ: use --target jetson")
    lowp = tmp / extra[precision]["file"]
    xs = x[:256]
    with OnnxRuntimeRunner(fp32_path, threads=threads) as r:
        ref = run_batched(r, xs)
    with OnnxRuntimeRunner(lowp, threads=threads) as r:
        got = run_batched(r, xs)
    labels = y[:256] if (y is not None and source.pretrained) else None
    manifest = write_bundle(tmp / "bundle", source.name, lowp, precision, source.preprocess.to_dict(),
                            source.categories, source.num_classes, xs, labels, ref, got, build, budgets,
                            report_mod.environment(threads))
    return {"folder": "bundle", "expected": manifest["expected"], "trtexec": manifest["trtexec"]}


def _engine_stage(tmp: Path, source: ModelSource, fp32_path: Path, extra: dict, x, y, build: dict,
                  timing: TimingOptions, notes: list[str], progress) -> dict:
    """Build the TensorRT engine from the exported ONNX (the Q/DQ or FP16 one when made), on this GPU, and
    measure it: accuracy or agreement with FP32 onnxruntime, then the side by side with PyTorch on CUDA."""
    from .backends.onnxruntime import OnnxRuntimeRunner
    from .backends.tensorrt import BuildOptions, TensorRTRunner, engine_from_onnx
    from .gpu_compare import engine_gpu_rows, relative_to, torch_cuda_rows
    from .stats import agreement

    precision = "int8" if "int8" in extra else "fp16" if "fp16" in extra else "fp32"
    onnx_path = tmp / extra[precision]["file"] if precision != "fp32" else fp32_path
    opts = BuildOptions(precision=precision, **build)
    engine_path = onnx_path.with_suffix(".engine")
    built = engine_from_onnx(onnx_path, engine_path, opts, cache_dir=Path.home() / ".cache" / "edgekit" / "engines")
    timing_cache = engine_path.with_suffix(".timing.cache")
    with OnnxRuntimeRunner(fp32_path) as r:
        ref = run_batched(r, x)
    with TensorRTRunner(engine_path) as r:
        logits = np.concatenate([r.infer(x[i:i + 1]) for i in range(len(x))])
        rows = engine_gpu_rows(r, x, timing, progress)
        max_batch = r.max_batch
        backend = r.describe()
    rows += torch_cuda_rows(source, onnx_path, x, max_batch, timing, progress, notes)
    quality = {"agreement_with_fp32": agreement(logits, ref)}
    if y is not None and source.pretrained:
        quality["accuracy"] = accuracy(logits, y)
    return {"file": engine_path.name, "timing_cache": timing_cache.name if timing_cache.exists() else None,
            "build": built, "backend": backend, **quality, "gpu_side_by_side": relative_to(rows, "torch fp32")}


def _load(path: Path):
    from .onnxinfo import load_checked

    return load_checked(path)


def default_profile_out(model: str, backend: str, device: str) -> Path:
    if is_onnx(model):
        return Path(model).parent / f"profile-{Path(model).stem}-{backend}-{device}"
    return Path("edgekit-out") / f"profile-{model}-{backend}-{device}"


def profile_model(model: str, out: str | os.PathLike | None = None, backend: str = "onnxruntime",
                  device: str = "cpu", threads: int | None = None, eval_data=None, reference: str | None = None,
                  timing: TimingOptions | None = None, weights: str = "imagenet", num_classes: int | None = None,
                  trust_checkpoint: bool = False, overrides: PreprocessOverrides | None = None,
                  max_images: int | None = None, force: bool = False) -> dict:
    """Size, params, MACs, latency, peak memory and accuracy (or agreement with ``reference``) of ``model``."""
    from .backends import get_spec

    get_spec(backend)
    timing = timing or TimingOptions()
    out = Path(out) if out else default_profile_out(model, backend, device)
    check_out_dir(out, force)
    if backend in ("onnxruntime", "openvino") and not is_onnx(model):
        raise EdgekitError(f"the {backend} backend runs .onnx files, not {model!r}: run `edgekit export "
                           f"{model}` first, or pass --backend torch")
    if backend == "torch" and is_onnx(model):
        raise EdgekitError(f"the torch backend runs zoo models, not {model}: pass a model name, or "
                           "--backend onnxruntime")
    if backend == "tensorrt":
        from .backends.tensorrt import require_gpu

        require_gpu()  # TensorRT and a device count above zero, or the one-line reason
        if not is_onnx(model):
            raise EdgekitError(f"the tensorrt backend builds its engine from an ONNX file, not {model!r}: run "
                               f"`edgekit export {model}` first")
    source = open_model(model, weights, num_classes, trust_checkpoint, overrides)
    notes = list(source.notes)
    images = _images(source, eval_data, max_images, notes)
    ref_src = open_onnx(Path(reference)) if reference else None
    with make_progress() as progress:
        x, y = load_array(images, source.preprocess, progress)
        _image_notes(images, notes)
        runner = _runner(source, backend, device, threads)
        try:
            measured = measure(runner, np.ascontiguousarray(x[:max(1, timing.batch)]), timing, progress)
            if backend == "tensorrt":  # GPU compute time (CUDA events, no copies) beside end-to-end time
                from .gpu_compare import engine_gpu_rows, relative_to, torch_cuda_rows

                rows = engine_gpu_rows(runner, x, timing, progress)
                rows += torch_cuda_rows(source, source.onnx_path, x, runner.max_batch, timing, progress, notes)
                measured["gpu_side_by_side"] = relative_to(rows, "torch fp32")
            ref_logits = None
            if ref_src is not None:
                ref_logits = reference_logits(ref_src, x)
            _, quality = evaluate(runner, x, y if source.pretrained else None, ref_logits, progress)
            backend_facts = runner.describe()
        finally:
            runner.deactivate()
    if y is not None and not source.pretrained:
        quality["accuracy"] = {"model": "n/a (random weights)"}
    elif "accuracy" in quality:
        quality["accuracy"] = {backend: quality["accuracy"]}
    if source.onnx_path is not None:
        artifact = artifact_facts(source.onnx_path)
    else:
        import torch

        artifact = {"file": f"{source.name} (torch, in memory)", "bytes": None, "size_mb": float("nan"),
                    "params": sum(p.numel() for p in source.torch_model.parameters()),
                    "macs": _torch_macs(source)} if isinstance(source.torch_model, torch.nn.Module) else {}
    from .onnxinfo import load_checked, read_meta

    precision = read_meta(load_checked(source.onnx_path)).get("precision", "fp32") if source.onnx_path else "fp32"
    with staged_dir(out, force) as tmp:
        rep = report_mod.new_report(
            "profile", model=source.describe(), precision=precision, backend=backend_facts,
            input_shape=list(source.input_shape), preprocess=source.preprocess.to_dict(), artifact=artifact,
            **measured, **quality, reference=str(reference) if reference else None, images=images.summary(),
            out=str(out), environment=report_mod.environment(threads), notes=notes)
        report_mod.write(rep, tmp)
    return rep


def _runner(source: ModelSource, backend: str, device: str, threads: int | None):
    from .optimize_job import read_runtime

    if backend == "onnxruntime":
        from .backends.onnxruntime import OnnxRuntimeRunner

        tuned = read_runtime(source.onnx_path, backend)
        if tuned and device == "cpu":
            return OnnxRuntimeRunner.tuned(source.onnx_path, threads, tuned)
        return OnnxRuntimeRunner(source.onnx_path, device, threads)
    if backend == "torch":
        from .backends.torch import TorchRunner

        return TorchRunner(source.torch_model, device, threads=threads, input_shape=source.input_shape)
    if backend == "openvino":
        from .backends.openvino import OpenVINORunner

        return OpenVINORunner(source.onnx_path, threads, options=read_runtime(source.onnx_path, backend))
    if backend == "tensorrt":
        from .backends.tensorrt import BuildOptions, TensorRTRunner, engine_from_onnx, graph_facts

        facts = graph_facts(source.onnx_path)
        opts = BuildOptions(precision="int8" if facts.qdq_nodes else facts.precision,
                            dynamic_batch=(1, 8, 32) if facts.input_shape[0] is None else None)
        import tempfile

        # never beside the user's ONNX (that could replace their engine); the engine cache makes reruns instant
        engine = Path(tempfile.mkdtemp(prefix="edgekit-engine-")) / (source.onnx_path.stem + ".engine")
        engine_from_onnx(source.onnx_path, engine, opts, cache_dir=Path.home() / ".cache" / "edgekit" / "engines")
        return TensorRTRunner(engine)
    raise EdgekitError(f"profiling on {backend} is not available from this command yet")


def _torch_macs(source: ModelSource) -> int:
    import tempfile

    from .onnxinfo import count_macs, load_checked

    with tempfile.TemporaryDirectory() as d:
        onnx_from_torch(source.torch_model, source.input_shape, Path(d) / "m.onnx")
        return count_macs(load_checked(Path(d) / "m.onnx"))


__all__ = ["export_model", "profile_model", "console"]

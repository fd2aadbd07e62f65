"""The mobile formats stage of `edgekit export --format`: each format written from the verified model, checked
against torch by its own runtime where that runs here, INT8 guarded on that runtime, all timed in turn, and one
table of every file (``formats`` in report.json).

A format that fails (its converter cannot hold an op, its extra is absent under ``--format all``, it disagrees
with torch) is a row with the reason, never a crash of the others; the command then exits 1 (see cli/export.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import EdgekitError, first_line
from ..formats import registry as formats
from ..measure.batches import check, reference, score
from .mobile_app import open_file as _open
from .mobile_data import calibration_batches, eval_batches, few_images, judge_sets

FOLDER = "mobile"
LIVE = ("checked", "over budget")  # rows whose file runs here, so it is timed


def formats_stage(ctx, r, lowp: dict[str, Path]) -> dict:
    """Write and check every format ``r.export.formats`` names; ``lowp`` maps "int8"/"fp16" to the ONNX files the
    export made in that precision (the ONNX formats convert them; an INT8 ONNX over budget is not converted)."""
    from .mobile_app import write_app_files

    g, q = r.export, r.quantize
    folder = ctx.tmp / FOLDER
    folder.mkdir()
    batches = eval_batches(ctx)
    refs = reference(ctx.source, batches())
    meta = {"labels": ctx.source.categories, "preprocess": ctx.source.preprocess.to_dict()}
    rows = [_onnx_row(ctx, prec, path, batches, refs) for prec, path in [("fp32", ctx.fp32_path), *lowp.items()]]
    guard: dict = {}
    for name in formats.expand(g.formats):
        spec = formats.get(name)
        for prec in dict.fromkeys(("fp32", r.precision)):
            row = {"format": name, "precision": prec, "file": None, "status": "failed", "runtime": spec.backend}
            rows.append(row)
            if prec not in spec.precisions:
                row.update(status="not held", reason=spec.unheld or f"{name} holds {', '.join(spec.precisions)}")
                continue
            path, task = folder / formats.file_name(name, prec), None
            try:
                _missing(spec)
                task = ctx.progress.add_task(f"{name} {prec}: converting and checking", total=None)
                src = formats.ConvertSource(ctx.source.torch_model, _onnx_for(ctx, lowp, prec, name) if
                                            spec.source == "onnx" else None, ctx.source.input_shape,
                                            {**meta, "model": ctx.source.name})
                if prec == "int8" and name in ("tflite", "pte"):
                    row["int8"] = _guarded(ctx, q, name, src, path, guard)
                    path = folder / row["int8"]["file"]
                else:
                    row.update(formats.convert(name, src, path, prec))
                row.update(file=path.name, bytes=_size(path))
                _verify(ctx, row, spec, path, (batches, refs), g)
            except EdgekitError as exc:
                row.update(status="failed", reason=first_line(exc, 300))
                _remove(path)
            finally:
                if task is not None:
                    ctx.progress.remove_task(task)
    app = write_app_files(ctx, folder, rows, few_images(ctx, 16))
    _time(ctx, rows, folder)
    return {"folder": FOLDER, "rows": rows, "app": app,
            "formats": list(formats.expand(g.formats)), "judged_on": f"{refs_n(refs)} evaluation images"}


def refs_n(refs) -> int:
    return int(sum(len(x) for x in refs))


def _missing(spec) -> None:
    from .._optional import require

    for module in spec.requires:
        require(module, f"the {spec.name} format")


def _onnx_for(ctx, lowp: dict, prec: str, name: str):
    """The ONNX file an ONNX format converts: the export's file of that precision (ncnn: always FP32, pnnx stores
    FP16 itself)."""
    if prec == "fp32" or name == "ncnn":
        return ctx.fp32_path
    path = lowp.get(prec)
    if path is None or "over_budget" in path.name:
        raise EdgekitError(f"no {prec.upper()} ONNX file within budget to convert: "
                           + ("the INT8 ONNX missed the accuracy budget" if path else f"export with --{prec}"))
    return path


def _guarded(ctx, q, name, src, path, cache: dict) -> dict:
    """The INT8 guard on the format's runtime; the judge images and calibration set are read once per export."""
    from .calib import calibration_set
    from .int8 import resolve_budget
    from .mobile_int8 import Int8Job, guarded_int8

    if "judge" not in cache:
        cal = calibration_set(ctx.source, q.calib(), [], ctx.progress)  # the INT8 stage noted its warnings
        cache["judge"] = judge_sets(ctx, cal)
        cache["calib"] = calibration_batches(cal)
        cache["budget"] = resolve_budget(q.max_drop, cache["judge"].n_held_out)
    job = Int8Job(name, src, path, cache["judge"], cache["calib"], not q.per_tensor, cache["budget"],
                  q.max_float_layers, ctx.threads)
    return guarded_int8(job, ctx.source, ctx.progress)


def _verify(ctx, row: dict, spec, path: Path, data, g) -> None:
    """Run the file on the evaluation images by its own runtime and compare with torch; FP32 is held to the
    export's tolerance (raises), lower precisions report their agreement and accuracy. Core ML: read back only."""
    if spec.backend is None:
        from ..formats.coreml import read_spec

        row.update(status="written, not run here", reason=spec.not_run_reason, spec=read_spec(path))
        return
    batches, refs = data
    with _open(spec.backend, path, ctx.threads, row["precision"]) as runner:
        facts = score(runner, batches(), refs)
    if row["precision"] == "fp32":
        facts = check(path.name, facts, g.atol, g.rtol)
    row["check"] = facts
    row["status"] = "over budget" if row.get("int8", {}).get("within_budget") is False else "checked"


def _onnx_row(ctx, prec: str, path: Path, batches, refs) -> dict:
    with _open("onnxruntime", path, ctx.threads, prec) as runner:
        facts = score(runner, batches(), refs)
    return {"format": "onnx", "precision": prec, "file": path.name, "bytes": path.stat().st_size,
            "status": "over budget" if "over_budget" in path.name else "checked", "runtime": "onnxruntime",
            "check": facts, "path": str(path)}


def _time(ctx, rows: list[dict], folder: Path) -> None:
    """Every file that runs here, each alone, in turn, three sweeps in a rotated order (the house's timing)."""
    from ..measure.timing import time_in_turn

    live = {f"{r['format']} {r['precision']}": r for r in rows if r["status"] in LIVE}
    x, _ = few_images(ctx, 1)
    paths = {k: Path(r["path"]) if r.get("path") else folder / r["file"] for k, r in live.items()}
    openers = {k: (lambda r=r, p=paths[k]: _open(r["runtime"], p, ctx.threads, r["precision"]))
               for k, r in live.items()}
    for key, lat in time_in_turn(openers, x, ctx.timing, 3, ctx.progress).items():
        live[key]["latency"] = lat
    for r in rows:
        r.pop("path", None)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    extra = path.with_suffix(".bin") if path.suffix == ".param" else None
    return path.stat().st_size + (extra.stat().st_size if extra and extra.exists() else 0)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
    if path.suffix == ".param":
        path.with_suffix(".bin").unlink(missing_ok=True)

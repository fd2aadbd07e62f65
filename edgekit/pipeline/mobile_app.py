"""What an app needs beside each mobile file: ``model.json`` (labels, preprocessing, each file's input and output
types, how to feed an int8 input) and ``samples.npz`` (a few preprocessed images with the logits each file gave
here), so a test on the phone can check that it computes what was checked on this machine, as the Jetson
bundle's manifest does for the board."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..fsutil import sha256_file, write_json

APP_VERSION = 1
SAMPLE_TOLERANCE = {"fp32": {"max_abs_diff": 1e-3, "top1_agreement": 100.0},
                    "lowp": {"top1_agreement": 90.0}}  # another CPU's INT8/FP16 kernels round differently


def write_app_files(ctx, folder: Path, rows: list[dict], samples) -> dict:
    """``folder/model.json`` and ``folder/samples.npz``; returns what model.json says of each file."""
    from ..measure.quality import reference_logits

    x, y = samples
    arrays = {"x": x.astype(np.float32), "torch_logits": reference_logits(ctx.source, x).astype(np.float32)}
    if y is not None and ctx.labelled:
        arrays["labels"] = np.asarray(y, dtype=np.int64)
    files = {}
    for r in rows:
        if r["format"] == "onnx" or r.get("file") is None or r["status"] == "failed":
            continue
        entry = {"format": r["format"], "precision": r["precision"], "runtime": r["runtime"],
                 "checked_here": r["status"] in ("checked", "over budget"), "status": r["status"]}
        path = folder / r["file"]
        if path.is_file():
            entry["sha256"] = sha256_file(path)
        if entry["checked_here"]:
            with open_file(r["runtime"], path, ctx.threads, r["precision"]) as runner:
                key = f"logits_{Path(r['file']).stem}_{r['format']}"
                arrays[key] = np.concatenate([runner.infer(x[i:i + 1]) for i in range(len(x))]).astype(np.float32)
                entry.update(expected=key, **_io(runner))
        files[r["file"]] = entry
    np.savez_compressed(folder / "samples.npz", **arrays)
    doc = {"edgekit_mobile": APP_VERSION, "model": ctx.source.name, "num_classes": ctx.source.num_classes,
           "labels": ctx.source.categories, "preprocess": ctx.source.preprocess.to_dict(),
           "input": {"shape": [1, *ctx.source.input_shape[1:]], "layout": "NCHW", "dtype": "float32",
                     "values": "the image after `preprocess` (resize, centre crop, scale to 0..1, minus mean, "
                               "over std), RGB"},
           "output": "logits (no softmax), one per class in `labels` order",
           "samples": {"file": "samples.npz", "images": int(len(x)), "torch_logits": "torch_logits",
                       "tolerance": SAMPLE_TOLERANCE},
           "files": files}
    write_json(folder / "model.json", doc)
    return {"model_json": "model.json", "samples": "samples.npz", "files": files}


def _io(runner) -> dict:
    """The file's input/output types; for an int8 .tflite, the arithmetic the app must do at both ends."""
    detail = getattr(runner, "input_detail", None)
    if detail is None:
        return {"io": "float32 in, float32 out"}
    out = {}
    for end, d in (("input", detail), ("output", runner.output_detail)):
        dtype = np.dtype(d["dtype"]).name
        if dtype == "float32":
            out[end] = {"dtype": dtype}
        else:
            scale, zero = d["quantization"]
            rule = "q = clip(round(x / scale) + zero_point, -128, 127)" if end == "input" else \
                "logits = (q - zero_point) * scale"
            out[end] = {"dtype": dtype, "scale": float(scale), "zero_point": int(zero), "app_must": rule}
    return out


def open_file(backend: str, path: Path, threads, precision: str):
    """The runner of a written file on its runtime (an FP16 ncnn file runs with ncnn's fp16 arithmetic)."""
    from ..backends import registry
    from ..backends.base import RunnerRequest

    options = {"fp16": True} if backend == "ncnn" and precision == "fp16" else {}
    return registry.open_runner(backend, RunnerRequest(path, threads=threads, options=options))

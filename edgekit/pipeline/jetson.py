"""The Jetson bundle: everything to copy to the board, and `edgekit build` that checks it there.

The host writes the ONNX (symmetric Q/DQ INT8 and/or FP16, checked against TensorRT's parser rules), a manifest
with the preprocessing, labels and the accuracy and agreement it measured, up to 256 preprocessed sample images
spread over the classes with their FP32 and low-precision logits, and the equivalent trtexec lines in a script that
runs the one for the board's TensorRT. The board builds the engine, measures it, and fails when it disagrees
(``board.build_bundle``; the tolerance rule is in ``engine_check``).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EdgekitError

BUNDLE_VERSION = 1
# the TensorRT releases a Jetson runs: 10.3 on JetPack 6.x (Orin), 11.4.1 on JetPack 7.2.2+ (AGX Orin, Thor)
TRT_ON_JETSON = ((10, 3, 0), (11, 4, 1))
# what `edgekit build` and `edgekit doctor` import on the board (checked with torch blocked, tests/test_board.py):
# installed with --no-deps beside these, edgekit leaves JetPack's own PyTorch alone
BOARD_REQUIREMENTS = ("numpy>=1.24", "onnx>=1.16", "onnxruntime>=1.18", "typer>=0.12", "rich>=13")


def bundle_readme(model: str, precision: str, wheel: str) -> str:
    """The bundle's own README: how to install edgekit on the board from the wheel beside it, without touching
    JetPack's torch, and build."""
    reqs = " ".join(f"'{r}'" for r in BOARD_REQUIREMENTS)
    return f"""# {model} ({precision.upper()}) for TensorRT on the board

Built on the host by `edgekit export --target jetson`. On the board (JetPack ships TensorRT):

```bash
# edgekit from its own wheel, the one that made this bundle (the package index's "edgekit" is another
# project); --no-deps: `edgekit build` and `edgekit doctor` need no torch, so JetPack's own build stays
pip install --no-deps ./{wheel}
pip install {reqs}
pip install 'cuda-python>=12,<13'   # JetPack 6.x (CUDA 12.6, TensorRT 10.3); JetPack 7.x: 'cuda-python>=13,<14'
edgekit doctor --backend tensorrt   # versions, GPU, nvpmodel, clocks, and a tiny engine built and checked
sudo jetson_clocks                  # optional: locked clocks make the timings repeatable (doctor reports it)
edgekit build .                     # engine, GPU compute and end-to-end time, agreement with the host
```

`trtexec.sh` holds the same build with trtexec for TensorRT 10.3 (JetPack 6.x) and 11.4.1+ (JetPack 7.2.2+;
TensorRT 11.0-11.3 never ran on Jetson and had no DLA) and runs the line for the board's TensorRT. The Orin Nano
has no DLA.
"""
REQUIRED = {"edgekit_bundle": int, "model": str, "precision": str, "onnx": str, "input_name": str,
            "input_shape": list, "preprocess": dict, "num_classes": int, "files": dict, "samples": str,
            "expected": dict, "tolerance": dict, "build": dict}


def validate_manifest(doc) -> list[str]:
    """Every problem with a manifest (empty when it is sound)."""
    if not isinstance(doc, dict):
        return ["the manifest is not a JSON object"]
    problems = [f"missing {k}" for k in REQUIRED if k not in doc]
    problems += [f"{k} should be a {t.__name__}" for k, t in REQUIRED.items() if k in doc and not isinstance(doc[k], t)]
    if problems:
        return problems
    if doc["edgekit_bundle"] != BUNDLE_VERSION:
        problems.append(f"bundle version {doc['edgekit_bundle']} (this edgekit reads {BUNDLE_VERSION})")
    if doc["precision"] not in ("int8", "fp16"):
        problems.append(f"precision {doc['precision']!r} (a Jetson bundle carries int8 or fp16)")
    if doc["onnx"] not in doc["files"] or doc["samples"] not in doc["files"]:
        problems.append("files must list the ONNX and the samples with their sha256")
    outside = [n for n in [*doc["files"], doc["onnx"], doc["samples"]]
               if Path(n).is_absolute() or ".." in Path(n).parts]
    if outside:
        problems.append(f"{outside[0]} lies outside the bundle folder (a manifest names files inside it only)")
    exp, tol = doc["expected"], doc["tolerance"]
    if "agreement" not in exp or not isinstance(exp.get("agreement"), (int, float)):
        problems.append("expected.agreement (top-1 agreement with FP32, %) is missing")
    if not isinstance(tol.get("agreement_points"), (int, float)) or tol["agreement_points"] < 0:
        problems.append("tolerance.agreement_points must be a number >= 0")
    if exp.get("top1") is not None and not isinstance(tol.get("top1_points"), (int, float)):
        problems.append("tolerance.top1_points is needed with expected.top1")
    if len(doc["input_shape"]) != 4:
        problems.append("input_shape must be N,C,H,W")
    return problems


def read_manifest(bundle: Path) -> dict:
    from ..fsutil import sha256_file

    path = bundle / "manifest.json"
    try:
        doc = json.loads(path.read_text())
    except OSError:
        raise EdgekitError(f"{path} not found: pass a folder written by `edgekit export ... --target jetson`") from None
    except ValueError as exc:
        raise EdgekitError(f"{path} is not valid JSON ({exc}): copy the bundle again") from None
    problems = validate_manifest(doc)
    if problems:
        raise EdgekitError(f"{path} is not a valid bundle manifest: {'; '.join(problems)}")
    for name, digest in doc["files"].items():
        f = bundle / name
        if not f.exists() or sha256_file(f) != digest:
            raise EdgekitError(f"{f} is missing or changed since the bundle was made (sha256 differs): copy the "
                               "bundle again")
    return doc


@dataclass(frozen=True)
class BundleModel:
    """The low-precision file the board builds, and what it needs to read its inputs and outputs."""

    name: str
    onnx_path: Path
    precision: str  # int8 | fp16
    preprocess: dict
    categories: list[str] | None
    num_classes: int


@dataclass(frozen=True)
class BundleSamples:
    """What the board must reproduce: the host's images, labels, and both files' logits on them."""

    x: np.ndarray
    y: np.ndarray | None
    fp32_logits: np.ndarray
    lowp_logits: np.ndarray


def trtexec_script(lines: dict[str, str]) -> str:
    """trtexec.sh: the line for the board's TensorRT major (read from its Python package, else from dpkg, else
    ``TENSORRT_VERSION``); a line that TensorRT cannot build for that major is a refusal with the reason."""
    def run(line: str) -> str:
        if line.startswith("#"):  # a refusal, quoted for sh
            said = line.lstrip("# ").replace('"', "'").replace("`", "'").replace("$", "").replace("\\", "/")
            return f'echo "trtexec.sh: {said}" >&2; exit 2'
        return "exec " + line.replace("trtexec ", '"$TRTEXEC" ', 1)

    return f"""#!/bin/sh
# The engine `edgekit build` makes, built and timed with trtexec instead, for this board's TensorRT:
# 10.x (JetPack 6.x on Orin: 10.3) or 11.x (11.4.1+ on JetPack 7.2.2+: AGX Orin and Thor; 11.0-11.3 never ran on a
# Jetson and had no DLA). Set TENSORRT_VERSION to choose by hand.
set -e
cd "$(dirname "$0")"
TRTEXEC="${{TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}}"
TRT="${{TENSORRT_VERSION:-$(python3 -c 'import tensorrt; print(tensorrt.__version__)' 2>/dev/null || true)}}"
[ -n "$TRT" ] || TRT="$(dpkg-query -W -f='${{Version}}' tensorrt 2>/dev/null || true)"
case "$TRT" in
  10.*) {run(lines["tensorrt10"])} ;;
  11.*) {run(lines["tensorrt11"])} ;;
  *) echo "trtexec.sh: cannot tell this board's TensorRT version (got '$TRT'): set TENSORRT_VERSION=10.3 or 11.4.1" >&2
     exit 2 ;;
esac
"""


def trtexec_lines(onnx_name: str, engine: str, opts, graph) -> dict[str, str]:
    """The trtexec line per Jetson TensorRT; where that TensorRT refuses the build, "# " and the reason."""
    from ..backends.tensorrt.trtexec import trtexec_command
    from ..errors import EdgekitError

    out = {}
    for v in TRT_ON_JETSON:
        try:
            out[f"tensorrt{v[0]}"] = trtexec_command(onnx_name, engine, opts, v, graph)
        except EdgekitError as exc:
            out[f"tensorrt{v[0]}"] = f"# TensorRT {'.'.join(map(str, v))} cannot build it: {exc}"
    return out


def write_bundle(folder: Path, model: BundleModel, samples: BundleSamples, build: dict, budgets: dict | None,
                 host: dict) -> dict:
    """Write the bundle into ``folder`` (which the caller stages and renames); returns the manifest. The ONNX is
    checked against TensorRT's parser rules first: a file the board's parser would refuse is not shipped."""
    model_name, onnx_path, precision = model.name, model.onnx_path, model.precision
    x, y, fp32_logits, lowp_logits = samples.x, samples.y, samples.fp32_logits, samples.lowp_logits
    from ..backends.tensorrt.onnx_rules import check, graph_facts
    from ..backends.tensorrt.options import BuildOptions
    from ..fsutil import atomic_write_text, sha256_file, write_json
    from ..stats import accuracy, agreement
    from .engine_check import tolerance

    check(onnx_path)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, folder / onnx_path.name)
    arrays = {"x": x.astype(np.float32), "fp32_logits": fp32_logits.astype(np.float32),
              "lowp_logits": lowp_logits.astype(np.float32)}
    if y is not None:
        arrays["labels"] = np.asarray(y, dtype=np.int64)
    np.savez_compressed(folder / "samples.npz", **arrays)
    graph = graph_facts(folder / onnx_path.name)
    opts = BuildOptions(**{**build, "precision": precision})
    lines = trtexec_lines(onnx_path.name, onnx_path.stem + ".engine", opts, graph)
    atomic_write_text(folder / "trtexec.sh", trtexec_script(lines))
    (folder / "trtexec.sh").chmod(0o755)
    from .wheel import own_wheel

    wheel = own_wheel(folder).name  # what the board installs: this very edgekit
    atomic_write_text(folder / "README.md", bundle_readme(model_name, precision, wheel))
    ag = agreement(lowp_logits, fp32_logits)
    expected = {"agreement": ag["top1_agreement"], "mean_cosine": ag["mean_cosine"],
                "top1": accuracy(lowp_logits, y)["top1"] if y is not None else None,
                "top1_fp32": accuracy(fp32_logits, y)["top1"] if y is not None else None, "n": int(len(x))}
    manifest = {
        "edgekit_bundle": BUNDLE_VERSION, "model": model_name, "precision": precision, "onnx": onnx_path.name,
        "input_name": graph.input_name, "input_shape": [1, *x.shape[1:]], "preprocess": model.preprocess,
        "categories": model.categories, "num_classes": model.num_classes, "samples": "samples.npz",
        "files": {n: sha256_file(folder / n) for n in (onnx_path.name, "samples.npz", "trtexec.sh", "README.md",
                                                       wheel)},
        "expected": expected, "tolerance": tolerance(len(x)),
        "budgets": budgets or {}, "build": {**build, "precision": precision}, "trtexec": lines, "host": host,
    }
    write_json(folder / "manifest.json", manifest)
    return manifest


def judge(manifest: dict, measured: dict) -> list[str]:
    """Where the board's results fall outside the manifest's tolerance (empty when they agree). With the host's
    low-precision logits in the bundle, the flip count against them decides (``engine_check``); top-1 agreement
    and accuracy are held to the points that count allows."""
    exp, tol = manifest["expected"], manifest["tolerance"]
    out = []
    if measured.get("flips") is not None and tol.get("max_flips") is not None and measured["flips"] > tol["max_flips"]:
        out.append(f"the engine's top-1 differs from the host's {manifest['precision'].upper()} file on "
                   f"{measured['flips']} of {exp['n']} images (at most {tol['max_flips']} for a healthy engine)")
    if measured["agreement"] < exp["agreement"] - tol["agreement_points"]:
        out.append(f"top-1 agreement with FP32 {measured['agreement']:.2f}% < host {exp['agreement']:.2f}% - "
                   f"{tol['agreement_points']:.2f}")
    if exp.get("top1") is not None and measured.get("top1") is not None:
        if measured["top1"] < exp["top1"] - tol["top1_points"]:
            out.append(f"top-1 {measured['top1']:.2f}% < host {exp['top1']:.2f}% - {tol['top1_points']:.2f}")
    limit = (manifest.get("budgets") or {}).get("max_latency_ms")
    if limit is not None and measured.get("latency_ms") is not None and measured["latency_ms"] > limit:
        out.append(f"batch-1 latency {measured['latency_ms']:.3f} ms > the recipe's budget {limit} ms")
    return out

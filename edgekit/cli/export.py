"""`edgekit export MODEL`: a verified ONNX file and its report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import _common as c


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def export(
    model: str = typer.Argument(..., help="Zoo name (see `edgekit models`) or a .onnx file."),
    weights: str = c.WeightsOpt,
    num_classes: Optional[int] = c.NumClassesOpt,
    trust_checkpoint: bool = c.TrustOpt,
    eval_data: Optional[Path] = c.EvalDataOpt,
    out: Optional[Path] = c.OutOpt,
    force: bool = c.ForceOpt,
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="Make the batch axis dynamic."),
    opset: int = typer.Option(18, "--opset", min=17, help="ONNX opset (>= 17)."),
    atol: float = typer.Option(1e-4, "--atol", help="Absolute tolerance of the ONNX vs torch check."),
    rtol: float = typer.Option(1e-3, "--rtol", help="Relative tolerance (x max |logit|) of that check."),
    max_images: Optional[int] = c.MaxImagesOpt,
    input_size: Optional[int] = c.InputSizeOpt,
    resize_size: Optional[int] = c.ResizeOpt,
    interpolation: Optional[str] = c.InterpOpt,
    mean: Optional[str] = c.MeanOpt,
    std: Optional[str] = c.StdOpt,
    int8: bool = typer.Option(False, "--int8", help="Also write model_int8.onnx: QDQ INT8 from real calibration "
                              "images."),
    fp16: bool = typer.Option(False, "--fp16", help="Also write model_fp16.onnx: FP16 weights and compute in the "
                              "graph."),
    target: str = typer.Option("cpu", "--target", help="cpu (INT8 with u8 asymmetric activations), tensorrt (s8 "
                               "symmetric Q/DQ on the inputs of weighted layers and Adds), or jetson (tensorrt + a "
                               "bundle to copy to the board: out/bundle)."),
    backend: str = typer.Option("onnxruntime", "--backend", help="onnxruntime (the ONNX files only), or tensorrt: "
                                "also build and measure a TensorRT engine on this machine's NVIDIA GPU (implies "
                                "--target tensorrt for INT8)."),
    workspace_mb: Optional[int] = typer.Option(None, "--workspace-mb", help="TensorRT builder workspace in MB "
                                               "(engine or jetson bundle; default 1024)."),
    dla_core: Optional[int] = typer.Option(None, "--dla-core", help="Build for this DLA core, GPU fallback allowed "
                                           "(fallen-back layers are listed in the report)."),
    batch_profile: Optional[str] = typer.Option(None, "--batch-profile", help="TensorRT optimization profile "
                                                "min,opt,max batch, e.g. 1,8,32 (implies --dynamic-batch)."),
    sparse_weights: bool = typer.Option(False, "--sparse-weights", help="Let TensorRT use 2:4 sparse kernels "
                                        "(SPARSE_WEIGHTS; prune with --sparsity 2:4 first)."),
    builder_opt_level: Optional[int] = typer.Option(None, "--builder-opt-level", min=0, max=5, help="TensorRT "
                                                    "builder optimization level (default 3)."),
    calib_data: Optional[Path] = typer.Option(None, "--calib-data", help="Calibration images (folder, recursive; "
                                              "labels unused) or an .npy/.npz of preprocessed tensors. Default: "
                                              "edgekit's 7 built-in photos, with a warning."),
    calib_size: int = typer.Option(512, "--calib-size", help="Calibration images to use (fewer if fewer exist)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the calibration image choice."),
    calib_method: str = typer.Option("minmax", "--calib-method", help="minmax, entropy or percentile."),
    percentile: float = typer.Option(99.999, "--percentile", help="Percentile of the percentile method."),
    calib_cache: Optional[Path] = typer.Option(None, "--calib-cache", help="Calibration cache file "
                                               "(default calibration/cache/<model>-<key>.json)."),
    max_drop: Optional[str] = typer.Option(None, "--max-drop", help="INT8 accuracy budget in top-1 points "
                                           "(default 1, judged on held-out images): layers stay float until INT8 "
                                           "fits, else exit 1. `--max-drop off` turns the guard off."),
    max_float_layers: Optional[int] = typer.Option(None, "--max-float-layers", min=0, help="At most this many "
                                                   "layers may return to float under --max-drop."),
    exclude_ops: Optional[str] = typer.Option(None, "--exclude-ops", help="Keep in float (comma-separated): "
                                              "depthwise, se, hardswish, silu, or ONNX op types."),
    int8_ops: Optional[str] = typer.Option(None, "--int8-ops", help="Quantize only these ONNX op types, e.g. "
                                           "Conv,Gemm."),
    per_tensor: bool = typer.Option(False, "--per-tensor", help="Per-tensor weight scales (only for "
                                    "accelerators that need them; ruins depthwise nets)."),
    reduce_range: Optional[bool] = typer.Option(None, "--reduce-range/--full-range", help="INT8 weights in 7 "
                                                "bits, for x86 CPUs without VNNI, whose kernels otherwise "
                                                "saturate (default: chosen for the CPU here)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Threads for the FP32 vs INT8 timing."),
    prune: Optional[float] = typer.Option(None, "--prune", help="Prune this share of channels first (L1, no "
                                          "fine-tuning; `edgekit prune` fine-tunes)."),
    plan: Optional[Path] = typer.Option(None, "--plan", help="Pruning plan from `edgekit prune`; --weights "
                                        "then names its pruned_state_dict.pt."),
    optimize: Optional[str] = typer.Option(None, "--optimize", help="latency or size: try FP32/INT8 variants on "
                                           "onnxruntime (and OpenVINO when installed), measure each here, keep the "
                                           "best within --max-drop (default 1.0) as model_best.onnx."),
    explain: bool = typer.Option(False, "--explain", help="Also print the ten INT8 layers with the largest error "
                                 "against FP32 (report.md always lists them; report.json has every layer)."),
    time_budget: Optional[float] = typer.Option(None, "--time-budget", help="Seconds the --optimize search may "
                                                "take: a step starts only if its estimate fits; FP32 is always "
                                                "measured, and the step under way finishes."),
    finetune_data: Optional[Path] = typer.Option(None, "--finetune-data", help="With --optimize: also prune the "
                                                 "model at each --prune-ratios, fine-tune it on these images "
                                                 "(distilled from the model as given), and measure each pruned "
                                                 "model in FP32 and INT8 like the other candidates."),
    prune_ratios: str = typer.Option("0.25,0.5", "--prune-ratios", help="Shares of channels the pruned candidates "
                                     "remove (with --finetune-data)."),
    finetune_epochs: int = typer.Option(3, "--finetune-epochs", help="Fine-tuning epochs per pruned candidate."),
    augment: str = typer.Option("crop-flip", "--augment", help="Augmentation of the --finetune-data images: "
                                "crop-flip (random-resized crop and flip, torchvision's recipe), flip, or none "
                                "(for images a flip changes, such as digits)."),
    prune_depth: float = typer.Option(0.0, "--prune-depth", help="ShuffleNetV2: the pruned candidates also lose "
                                      "this share of each stage's repeated units (fewer small ops)."),
    drop_rule: str = typer.Option("point", "--drop-rule", help="How --optimize holds a candidate to --max-drop: "
                                  "point (its drop on the selection images) or one-se (its drop plus one paired "
                                  "standard error: safer on few images, sometimes slower)."),
    save_recipe: Optional[Path] = typer.Option(None, "--save-recipe", help="Also write the recipe that repeats "
                                               "this export (run it with `edgekit run`)."),
    formats: Optional[str] = typer.Option(None, "--format", help="Also write phone and small-board formats into "
                                          "OUT/mobile, each checked against torch by its own runtime and timed here "
                                          "(comma-separated, or all): tflite, pte, ort, ncnn, coreml (written, not "
                                          "run: Core ML runs on macOS/iOS). FP32 always, plus --int8/--fp16 where "
                                          "the format holds it; a format that fails is a row with its reason and "
                                          "the command exits 1."),
) -> None:
    """Export MODEL to ONNX (simplified with onnxslim), checked against torch on real images."""
    from ..backends.tensorrt.options import parse_batch_profile
    from ..errors import BudgetExceededError
    from ..models.source import PreprocessOverrides
    from ..pipeline.export import export_model
    from ..pipeline.request import (
        BackendOptions,
        ExportRequest,
        GraphOptions,
        QuantizeOptions,
        parse_max_drop,
        precision_of,
    )

    request = ExportRequest(
        model, c.as_path(out), weights, num_classes, trust_checkpoint, c.as_path(eval_data), force,
        PreprocessOverrides(input_size, resize_size, interpolation, c.triple(mean, "--mean"), c.triple(std, "--std")),
        GraphOptions(opset, dynamic_batch, atol, rtol, max_images, prune, c.as_path(plan), optimize, time_budget,
                     c.as_path(finetune_data), c.floats(prune_ratios, "--prune-ratios"), finetune_epochs,
                     drop_rule, prune_depth, augment, formats=c.names(formats)),
        QuantizeOptions(precision_of(int8, fp16), target, c.as_path(calib_data), calib_size, calib_method,
                        percentile, seed, c.as_path(calib_cache), parse_max_drop(max_drop), max_float_layers,
                        c.names(exclude_ops), c.names(int8_ops) or None, per_tensor, reduce_range),
        BackendOptions(backend, "cuda" if backend == "tensorrt" else "cpu", threads, "host", workspace_mb, dla_core,
                       parse_batch_profile(batch_profile) if batch_profile else None, sparse_weights,
                       builder_opt_level))
    try:
        rep = export_model(request)
    except BudgetExceededError as exc:  # written, with the INT8 file kept aside: show what was made, then exit 1
        if exc.report is not None:
            _show(exc.report, request, explain, save_recipe)
        raise
    _show(rep, request, explain, save_recipe)


def _show(rep: dict, request, explain: bool, save_recipe) -> None:
    """The table, the worst layers on request, the recipe, and the files written."""
    from ..report.table import print_table

    print_table(rep)
    if explain and "int8" in rep:
        from ..quantize.explain import print_worst

        print_worst(rep["int8"])
    if save_recipe is not None:
        from ..recipe.from_args import from_export_request
        from ..recipe.spec import save

        save(from_export_request(request), save_recipe)
        typer.echo(f"wrote {save_recipe}")
    out = request.out_dir
    files = ["model.onnx"] + [rep[k]["file"] for k in ("int8", "fp16") if k in rep] + ["report.json", "report.md"]
    files += ["bundle/"] if "bundle" in rep else []
    files += [rep["engine"]["file"]] if "engine" in rep else []
    files += [rep["optimize"]["choice"]["file"], *rep["optimize"]["shipped_with_choice"]] if "optimize" in rep else []
    files += ["mobile/"] if "formats" in rep else []
    typer.echo(f"wrote {', '.join(f'{out}/{f}' for f in files)}")
    if "formats" in rep:
        from ..report.formats import print_formats

        print_formats(rep["formats"])

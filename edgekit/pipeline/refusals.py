"""Every contradiction in an export request, found when the request is built, before any file is read: a
pair of options that cannot go together, an option without the one it serves, an input a stage cannot take.
Each is one line naming the options and the fix."""

from __future__ import annotations

from pathlib import Path

from ..backends.tensorrt.options import profile_refusal
from ..errors import EdgekitError
from ..models.source import is_onnx

EXPORT_BACKENDS = ("onnxruntime", "tensorrt")  # what `edgekit export --backend` builds for


def refusals(r) -> None:
    """Every contradiction in a request, found before any file is read."""
    q, g, b = r.quantize, r.export, r.backend
    if b.name not in EXPORT_BACKENDS:
        raise EdgekitError(f"--backend {b.name}: export builds onnxruntime files or a tensorrt engine; profile "
                           "other backends with `edgekit profile --backend`")
    if q.max_drop is not None and q.precision != "int8" and g.optimize is None:
        raise EdgekitError("--max-drop guards INT8 accuracy: add --int8 (or --optimize)")
    if g.optimize is not None and q.max_drop == "off":
        raise EdgekitError("--optimize chooses within an accuracy budget: give --max-drop in top-1 points, not off")
    if g.time_budget is not None and g.optimize is None:
        raise EdgekitError("--time-budget bounds the --optimize search: add --optimize latency (or size)")
    if g.drop_rule != "point" and g.optimize is None:
        raise EdgekitError(f"--drop-rule {g.drop_rule} is how --optimize holds candidates to --max-drop: add "
                           "--optimize latency (or size)")
    if g.optimize is not None and q.precision != "fp32":
        raise EdgekitError("--optimize tries FP32 and INT8 itself: drop --int8/--fp16")
    if g.optimize is not None and b.name == "tensorrt":
        raise EdgekitError("--optimize chooses among CPU runtimes: drop it with --backend tensorrt")
    if g.optimize is not None and q.target != "cpu":
        raise EdgekitError("--optimize measures on this CPU: drop --target")
    if is_onnx(r.model) and g.dynamic_batch and b.batch_profile is None:
        raise EdgekitError("--dynamic-batch applies to torch models; re-export your ONNX file with a dynamic "
                           "batch axis")
    if is_onnx(r.model) and g.prune_ratio is not None:
        raise EdgekitError("--prune needs the torch model, not an ONNX file: pass a zoo name and --weights")
    from ..formats import registry as mobile_formats

    mobile_formats.refuse_onnx_input(g.formats, r.model)
    if g.prune_ratio is not None and g.plan is not None:
        raise EdgekitError("--prune with --plan: the plan is already pruned; give one of them")
    if g.finetune_data is not None:
        _finetune_refusals(r)
    elif g.prune_depth or g.finetune_augment != type(g).finetune_augment:
        flag = "--prune-depth" if g.prune_depth else f"--augment {g.finetune_augment}"
        raise EdgekitError(f"{flag} shapes the pruned candidates of --finetune-data: add --finetune-data")
    if b.name == "tensorrt" and b.build_on == "board" and q.precision == "fp32":
        raise EdgekitError("a Jetson bundle carries an INT8 or FP16 model: add --int8 or --fp16")
    if b.name == "tensorrt":
        b.build(q.precision)  # DLA with FP32, a bad profile, an out-of-range level: refused now
        why = profile_refusal(r.model if is_onnx(r.model) else None, g.dynamic_batch, b.batch_profile)
        if why:  # now, not after the calibration, when the engine or the bundle's trtexec lines are made
            raise EdgekitError(why)


def _finetune_refusals(r) -> None:
    g = r.export
    if g.optimize is None:
        raise EdgekitError("--finetune-data feeds the pruned candidates of --optimize: add --optimize latency (or "
                           "size), or prune one ratio with `edgekit prune --finetune-data`")
    if is_onnx(r.model):
        raise EdgekitError(f"--finetune-data prunes and fine-tunes the torch model, not {r.model}: pass a zoo name "
                           "and --weights")
    if g.prune_ratio is not None or g.plan is not None:
        raise EdgekitError("--finetune-data with --prune or --plan: the search prunes the model as given; drop "
                           "--prune/--plan")
    if r.eval_data is not None and Path(r.eval_data).resolve() == Path(g.finetune_data).resolve():
        raise EdgekitError(f"--finetune-data and --eval-data are both {r.eval_data}: the search would judge models "
                           "on the images they were fine-tuned on; give two disjoint folders")
    from ..models.registry import get_card
    from ..prune.plan import check_prunable

    check_prunable(get_card(r.model), g.prune_depth, "--prune-depth")

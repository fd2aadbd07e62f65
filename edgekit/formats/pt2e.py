"""PT2E INT8 shared by the formats made from the torch model (LiteRT, ExecuTorch): export, calibrate, convert, and
the per-layer ranking the accuracy guard reads.

Both runtimes' quantizers (litert-torch's ``PT2EQuantizer`` and ExecuTorch's ``XNNPACKQuantizer``, a fork of one
design) leave a module unannotated, i.e. float, through a module-name filter: the quantizer's own mechanism, which
the guard uses to keep layers in float (``exclude`` for ExecuTorch; LiteRT's, see ``tflite.quantizer``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from .._optional import require

WEIGHTED = ("Conv2d", "Linear")


@dataclass(frozen=True)
class Int8Spec:
    """How to quantize: calibration samples (an array, read ``batch`` at a time, or a function that returns a fresh
    iterable of batches: a streamed calibration set), per-channel weights, and the module names
    (``model.named_modules()``) to keep in float."""

    calib: object
    per_channel: bool = True
    exclude: tuple[str, ...] = ()
    batch: int = 32
    facts: dict = field(default_factory=dict)


def weighted_layers(module) -> list[str]:
    """Names of the convolutions and linear layers, in the model's order: what the guard may keep in float."""
    return [n for n, m in module.named_modules() if type(m).__name__ in WEIGHTED]


def exclude(quantizer, names: Iterable[str]):
    """Leave ``names`` unannotated (float). XNNPACKQuantizer's ``set_module_name`` asserts a config is given ("not
    supported yet"), but its annotation loop skips a module whose config is None, through torchao's module-name
    filter: the same table, set directly (measured: the digits model's first convolution kept float this way takes
    a blank-calibrated INT8 .pte from 12.8 points lost to 0)."""
    for n in names:
        quantizer.module_name_config[n] = None
    return quantizer


def calibrated(module, input_shape, quantizer, spec: Int8Spec, fold: bool = False):
    """The model exported with a dynamic batch (so calibration runs in batches), prepared, calibrated on
    ``spec.calib`` and converted to a Q/DQ graph. ``fold`` False keeps each weight's quantize/dequantize pair (what
    litert-torch reads, and what the guard reverts); ExecuTorch's lowering wants the weights folded to int8."""
    torch = require("torch")
    pt2e = require("torchao.quantization.pt2e.quantize_pt2e", "PT2E INT8 (pip install torchao)")
    from torchao.quantization.pt2e import move_exported_model_to_eval

    example = (torch.zeros((2, *input_shape[1:]), dtype=torch.float32),)
    batch = torch.export.Dim("batch", min=1, max=4096)
    gm = torch.export.export(module.eval(), example, dynamic_shapes=({0: batch},)).module()
    prepared = pt2e.prepare_pt2e(gm, quantizer)
    batches = spec.calib() if callable(spec.calib) else (spec.calib[i:i + spec.batch]
                                                          for i in range(0, len(spec.calib), spec.batch))
    with torch.no_grad():
        for xb in batches:
            prepared(torch.from_numpy(np.ascontiguousarray(xb, dtype=np.float32)))
    converted = pt2e.convert_pt2e(prepared, fold_quantize=fold)
    move_exported_model_to_eval(converted)
    return converted


def _is_dq(node, word: str) -> bool:
    return getattr(node, "op", "") == "call_function" and word in str(getattr(node, "target", ""))


def reverted(converted, layer: str):
    """A copy of the converted graph with ``layer``'s weight and input taken before their quantize/dequantize pair:
    that layer alone back in float, every range as calibrated (NNCF's accuracy control ranks groups the same way)."""
    gm = copy.deepcopy(converted)
    for node in gm.graph.nodes:
        stack = node.meta.get("nn_module_stack") or {}
        if node.op != "call_function" or not stack or list(stack.values())[-1][0] != layer:
            continue
        args = list(node.args)
        for i in (0, 1):
            dq = args[i] if i < len(args) else None
            if _is_dq(dq, "dequantize") and _is_dq(dq.args[0], "quantize"):
                args[i] = dq.args[0].args[0]
        node.args = tuple(args)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return gm


def logits(gm, x: np.ndarray, batch: int = 64) -> np.ndarray:
    torch = require("torch")
    with torch.no_grad():
        return np.concatenate([gm(torch.from_numpy(np.ascontiguousarray(x[i:i + batch]))).numpy()
                               for i in range(0, len(x), batch)])


def rank_layers(converted, layers: list[str], x: np.ndarray, ref: np.ndarray, progress=None) -> list[tuple[str, float]]:
    """Each layer's share of the INT8 error: the mean squared logit error against float left when that layer alone
    returns to float, subtracted from the full INT8 model's; largest first. Run in torch on the Q/DQ graph (cheap);
    the guard's trials are judged by the format's own runtime."""
    from ..progress import track_progress

    base = float(((logits(converted, x) - ref) ** 2).mean())
    out = []
    with track_progress(progress) as prog:
        task = prog.add_task("INT8 sensitivity per layer", total=len(layers))
        for name in layers:
            err = float(((logits(reverted(converted, name), x) - ref) ** 2).mean())
            out.append((name, base - err))
            prog.advance(task)
    return sorted(out, key=lambda t: -t[1])

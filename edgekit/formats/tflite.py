"""LiteRT (.tflite) from the torch model with litert-torch; INT8 through its PT2E quantizer.

litert-torch's INT8 files take and give int8 tensors (their scale and zero point are in the file): the app
quantizes its float input and dequantizes the logits, as ``edgekit.backends.litert`` does and ``model.json`` says.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._optional import require
from ..errors import EdgekitError, first_line
from .pt2e import Int8Spec, calibrated
from .registry import package_version


def quantizer(per_channel: bool = True, float_layers=()):
    """litert-torch's documented static INT8 (symmetric per-channel weights, int8 activations), with
    ``float_layers`` left unannotated.

    litert-torch 0.10's own module-name filter strips "L__self___" from ``nn_module_stack`` keys, a key format
    torch.export no longer writes ("L__self__features.0.0"), and its ``set_module_name`` refuses None: a layer
    could not be kept float through it (the guard measured the same drop with any layer "in float"). This subclass
    runs the quantizer's own static annotators with torchao's module-name filter, which reads torch 2.14's keys."""
    pq = require("litert_torch.quantize.pt2e_quantizer", "LiteRT INT8")
    from torchao.quantization.pt2e.quantizer.utils import get_module_name_filter

    skip = [get_module_name_filter(n) for n in float_layers]

    class LiteRTQuantizer(pq.PT2EQuantizer):
        def _annotate_for_static_quantization_config(self, model):
            self._annotate_all_static_patterns(model, self.global_config,
                                               lambda node: not any(f(node) for f in skip))
            return model

    return LiteRTQuantizer().set_global(pq.get_symmetric_quantization_config(is_per_channel=per_channel))


def tflite_from_torch(module, input_shape, path: Path, int8: Int8Spec | None = None) -> dict:
    """Write ``path``: FP32, or INT8 calibrated on ``int8.calib`` with ``int8.exclude`` kept float. Batch 1."""
    torch = require("torch")
    litert_torch = require("litert_torch", "the tflite format")
    example = (torch.zeros(tuple(input_shape), dtype=torch.float32),)
    model, kwargs = module.eval(), {}
    if int8 is not None:
        from litert_torch.quantize.quant_config import QuantConfig

        q = quantizer(int8.per_channel, int8.exclude)
        model = calibrated(module, input_shape, q, int8)
        kwargs["quant_config"] = QuantConfig(pt2e_quantizer=q)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        litert_torch.convert(model, example, **kwargs).export(str(tmp))
    except Exception as exc:  # an op LiteRT cannot hold: the row says which
        tmp.unlink(missing_ok=True)
        raise EdgekitError(f"litert-torch cannot convert the model to {path.name}: {first_line(exc, 200)}") from None
    os.replace(tmp, path)
    return {"converter": "litert-torch " + package_version("litert-torch"),
            "quantizer": None if int8 is None else "litert-torch PT2EQuantizer (symmetric, "
            f"{'per-channel' if int8.per_channel else 'per-tensor'} weights)"}


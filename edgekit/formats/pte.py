"""ExecuTorch (.pte) from the torch model: ``torch.export``, then the whole graph lowered to the XNNPACK delegate;
INT8 through ExecuTorch's ``XNNPACKQuantizer`` (torchao PT2E). Float input and output in both precisions."""

from __future__ import annotations

from pathlib import Path

from .._optional import require
from ..errors import EdgekitError, first_line
from ..fsutil import atomic_write_bytes
from .pt2e import Int8Spec, calibrated, exclude
from .registry import package_version


def quantizer(per_channel: bool = True, float_layers=()):
    """ExecuTorch's documented XNNPACK INT8: symmetric per-channel weights, int8 activations."""
    xq = require("executorch.backends.xnnpack.quantizer.xnnpack_quantizer", "ExecuTorch INT8")
    q = xq.XNNPACKQuantizer().set_global(xq.get_symmetric_quantization_config(is_per_channel=per_channel))
    return exclude(q, float_layers)


def pte_from_torch(module, input_shape, path: Path, int8: Int8Spec | None = None) -> dict:
    """Write ``path``: FP32, or INT8 calibrated on ``int8.calib`` with ``int8.exclude`` kept float. Batch 1."""
    torch = require("torch")
    exir = require("executorch.exir", "the pte format")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    example = (torch.zeros(tuple(input_shape), dtype=torch.float32),)
    model = module.eval() if int8 is None else calibrated(module, input_shape,
                                                          quantizer(int8.per_channel, int8.exclude), int8, fold=True)
    try:
        program = exir.to_edge_transform_and_lower(torch.export.export(model, example),
                                                   partitioner=[XnnpackPartitioner()]).to_executorch()
    except Exception as exc:  # an op ExecuTorch cannot lower or run: the row says which
        raise EdgekitError(f"ExecuTorch cannot lower the model to {path.name}: {first_line(exc, 200)}") from None
    atomic_write_bytes(path, program.buffer)
    return {"converter": "executorch " + package_version("executorch") + " (XNNPACK delegate)",
            "quantizer": None if int8 is None else "ExecuTorch XNNPACKQuantizer (symmetric, "
            f"{'per-channel' if int8.per_channel else 'per-tensor'} weights)"}


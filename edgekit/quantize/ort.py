"""onnxruntime's static quantizer, driven by a QuantConfig: the one place it is called."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from ..errors import EdgekitError, first_line
from .config import QuantConfig, ort_arguments

# --- running the quantizer ----------------------------------------------------------------------------

def preprocess_for_quantization(fp32_path: Path, out_path: Path) -> None:
    """onnxruntime's recommended pre-pass: shape inference and graph optimisation (BN folding)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with _quiet():
        quant_pre_process(str(fp32_path), str(out_path), skip_symbolic_shape=True)


@contextlib.contextmanager
def _quiet():
    logger = logging.getLogger()
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(old)


def run_quantizer(model_path: Path, out_path: Path, cfg: QuantConfig, ranges_file: Path, reader=None,
                  nodes_to_exclude=(), nodes_to_quantize=None) -> None:
    """quantize_static with ranges from ``ranges_file`` (computed from ``reader`` and saved there if absent).

    ``reader``: any object with ``get_next() -> {input_name: array} | None`` (onnxruntime's
    ``CalibrationDataReader`` shape, see ``edgekit.data.calibration``); read once, only when ranges are computed.
    """
    from onnxruntime.quantization import quantize_static

    kwargs = ort_arguments(cfg)
    try:
        with _quiet():
            quantize_static(str(model_path), str(out_path), calibration_data_reader=reader,
                            nodes_to_exclude=list(nodes_to_exclude) or None, nodes_to_quantize=nodes_to_quantize,
                            calibration_cache_path=str(ranges_file), **kwargs)
    except EdgekitError:
        raise
    except Exception as exc:
        raise EdgekitError(f"onnxruntime's quantizer failed on {model_path.name} ({first_line(exc)}): "
                           "try --calib-method minmax or --exclude-ops for the failing layer") from None

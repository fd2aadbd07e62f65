"""Which layer broke INT8: every weighted layer's error against FP32, from onnxruntime's ``qdq_loss_debug``.

onnxruntime saves every intermediate tensor of both graphs and matches them (``create_activation_matching``,
``create_weight_matching``); edgekit turns that into one row per weighted layer. The rank is by the SQNR a
layer loses between its input and its output (both against FP32), not by its output error alone, which only
grows with depth and would always blame the last layer.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np

WORST = 10


def _sqnr(ref, got) -> float | None:
    from onnxruntime.quantization.qdq_loss_debug import compute_signal_to_quantization_noice_ratio

    if ref is None or got is None:
        return None
    value = compute_signal_to_quantization_noice_ratio(ref, got)
    return None if math.isnan(value) else round(float(value), 3)


def _cosine(ref: list, got: list) -> float:
    a = np.concatenate([np.ravel(t) for t in ref]).astype(np.float64)
    b = np.concatenate([np.ravel(t) for t in got]).astype(np.float64)
    den = np.linalg.norm(a) * np.linalg.norm(b)
    return round(float(a @ b / den), 6) if den else 1.0


def _activations(model_path: Path, x: np.ndarray, tmp: Path) -> dict:
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import collect_activations, modify_model_output_intermediate_tensors

    aug = tmp / f"{model_path.stem}.aug.onnx"
    modify_model_output_intermediate_tensors(str(model_path), str(aug))
    model = onnx.load(str(model_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    name = next(i.name for i in model.graph.input if i.name not in inits)
    return collect_activations(str(aug), [{name: np.ascontiguousarray(x[i:i + 1])} for i in range(len(x))])


def _strip(name: str) -> str:
    """The float tensor behind a Q/DQ output name (onnxruntime's suffixes)."""
    from onnxruntime.quantization.quant_utils import DEQUANT_OUTPUT_SUFFIX

    for suffix in (DEQUANT_OUTPUT_SUFFIX + "_1", DEQUANT_OUTPUT_SUFFIX):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _downstream(model, tensor: str, quantized: set[str]) -> str | None:
    """The first Q/DQ'd tensor at or after ``tensor`` through a chain of one-consumer activations (Relu, Clip)."""
    from .config import WEIGHTED_OPS

    consumers: dict = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for _ in range(8):
        if tensor in quantized:
            return tensor
        nxt = consumers.get(tensor, [])
        if len(nxt) != 1 or nxt[0].op_type in WEIGHTED_OPS or len(nxt[0].output) != 1:
            return None
        tensor = nxt[0].output[0]
    return None


def layer_table(float_path: Path, qdq_path: Path, x: np.ndarray, float_nodes=(),
                sensitivity=()) -> list[dict]:
    """One row per weighted layer of ``float_path`` (the graph the quantizer read), worst first.

    A layer's input and output SQNR compare the dequantized activations of the Q/DQ graph with the float
    graph's (onnxruntime's ``xmodel_err``); what the layer loses is their difference. ``float_nodes`` are the
    nodes kept in float, ``sensitivity`` the guard's (node, error) list, most sensitive first.
    """
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import (
        compute_activation_error,
        compute_weight_error,
        create_activation_matching,
        create_weight_matching,
    )

    from .config import WEIGHTED_OPS

    with tempfile.TemporaryDirectory(prefix="edgekit-explain-") as d:
        fact = _activations(float_path, x, Path(d))
        qact = _activations(qdq_path, x, Path(d))
    match = create_activation_matching(qact, fact)
    match = {k: v for k, v in match.items() if v.get("float")}
    act_err = compute_activation_error(match)
    w_err = compute_weight_error(create_weight_matching(str(float_path), str(qdq_path)))
    fmodel, qmodel = onnx.load(str(float_path)), onnx.load(str(qdq_path))
    qnodes = {n.name: n for n in qmodel.graph.node}
    qproducers = {o: n for n in qmodel.graph.node for o in n.output}
    quantized = set(act_err)
    rank = {name: i + 1 for i, (name, _) in enumerate(sensitivity)}
    kept = set(float_nodes)

    def at(tensor: str | None) -> tuple[float | None, float | None]:
        """(SQNR, cosine) of a float tensor's Q/DQ-graph value against the float graph's."""
        if tensor is None:
            return None, None
        if tensor in act_err:
            return round(act_err[tensor]["xmodel_err"], 3), _cosine(match[tensor]["float"], match[tensor]["post_qdq"])
        if tensor in fact and tensor in qact:
            return _sqnr(fact[tensor], qact[tensor]), _cosine(fact[tensor], qact[tensor])
        return None, None

    rows = []
    for node in fmodel.graph.node:
        if node.op_type not in WEIGHTED_OPS:
            continue
        q = qnodes.get(node.name)
        weights = [w_err[src.input[0][: -len("_quantized")]] for name in (q.input if q is not None else [])
                   if (src := qproducers.get(name)) is not None and src.op_type == "DequantizeLinear"
                   and src.input[0][: -len("_quantized")] in w_err]
        ins = [v for v in (at(node.input[0])[0],) if v is not None]
        out_name = _downstream(fmodel, node.output[0], quantized)
        if out_name is None and qproducers.get(node.output[0]) is q and q is not None:
            out_name = node.output[0]  # not renamed by the quantizer: the layer's own output
        out_sqnr, out_cos = at(out_name)
        rows.append({
            "node": node.name, "op": node.op_type, "kept_float": node.name in kept or not weights,
            "input_sqnr_db": ins[0] if ins else None, "output_sqnr_db": out_sqnr, "output_cosine": out_cos,
            "sqnr_lost_db": round(ins[0] - out_sqnr, 3) if ins and out_sqnr is not None else None,
            "weight_sqnr_db": round(min(weights), 3) if weights else None,
            "sensitivity_rank": rank.get(node.name),
        })
    # worst first: the most SQNR lost across the layer; layers it cannot be measured for last
    rows.sort(key=lambda r: (r["sqnr_lost_db"] is None, -(r["sqnr_lost_db"] or 0.0)))
    return rows


def images_for(images, limit_values: int = 2_000_000) -> np.ndarray:
    """A few images (the first of an array, or of an ``ImageStream``): every intermediate tensor of both graphs is
    held in memory for each of them."""
    shape = images.shape[1:] if isinstance(images, np.ndarray) else images.shape
    per_image = int(np.prod(shape))
    n = max(4, min(32, limit_values // max(per_image, 1) // 8))
    return images[:n] if isinstance(images, np.ndarray) else images.head(n)


def worst_rows(table: list[dict], n: int = WORST) -> list[list[str]]:
    """The worst ``n`` layers as text cells, in HEADERS order."""
    def db(v):
        return "n/a" if v is None else f"{v:.1f} dB"

    return [[r["node"], r["op"], db(r["sqnr_lost_db"]), db(r["input_sqnr_db"]), db(r["output_sqnr_db"]),
             "n/a" if r["output_cosine"] is None else f"{r['output_cosine']:.4f}",
             "-" if r["sensitivity_rank"] is None else str(r["sensitivity_rank"]),
             "yes" if r["kept_float"] else "no"] for r in table[:n]]


HEADERS = ["layer", "op", "SQNR lost", "input SQNR", "output SQNR", "output cosine", "guard rank", "kept float"]


def markdown(q: dict) -> list[str]:
    """The per-layer section of report.md (empty when the report has no table)."""
    table = q.get("layers")
    if not table:
        return []
    lines = ["", f"## INT8 layers, worst {min(WORST, len(table))} of {len(table)} "
                 f"({q.get('layers_judged_on', '')})", "",
             "| " + " | ".join(HEADERS) + " |", "|" + " --- |" * len(HEADERS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in worst_rows(table)]
    return lines


def print_worst(q: dict, console=None) -> None:
    from rich.table import Table

    from ..progress import stdout_console

    console = console or stdout_console()
    table = q.get("layers") or []
    t = Table(title=f"INT8 layers, worst {min(WORST, len(table))} of {len(table)} ({q.get('layers_judged_on', '')})")
    for h in HEADERS:
        t.add_column(h)
    for cells in worst_rows(table):
        t.add_row(*cells)
    console.print(t)

"""Which nodes stay float: depthwise convolutions, SE blocks, activations, by name or kind."""

from __future__ import annotations

from ..errors import EdgekitError
from .config import EXCLUDE_KINDS, WEIGHTED_OPS, QuantConfig

# --- which nodes stay in float: pure functions of the graph ---------------------------------------------

def _consumers(model) -> dict:
    out: dict = {}
    for n in model.graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def depthwise_convs(model) -> list[str]:
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    names = []
    for n in model.graph.node:
        if n.op_type != "Conv":
            continue
        group = next((a.i for a in n.attribute if a.name == "group"), 1)
        w = inits.get(n.input[1])
        if group > 1 and w is not None and w[1] == 1:
            names.append(n.name)
    return names


def se_nodes(model) -> list[str]:
    """Squeeze-and-excitation blocks: from a global pool that feeds a Conv, up to the gating Mul."""
    cons = _consumers(model)
    names: list[str] = []
    for n in model.graph.node:
        if n.op_type not in ("GlobalAveragePool", "ReduceMean"):
            continue
        nxt = cons.get(n.output[0], [])
        if not nxt or any(c.op_type != "Conv" for c in nxt):
            continue  # the classifier head's pool feeds Flatten/Gemm, not a Conv
        block, frontier = [n.name], list(nxt)
        while frontier:
            c = frontier.pop()
            if c.name in block:
                continue
            block.append(c.name)
            if c.op_type != "Mul":
                frontier += cons.get(c.output[0], [])
        names += block
    return names


def activation_nodes(model, kind: str) -> list[str]:
    """hardswish: HardSwish (or HardSigmoid + Mul); silu: Sigmoid + Mul(x, sigmoid(x))."""
    cons = _consumers(model)
    names = []
    for n in model.graph.node:
        if kind == "hardswish" and n.op_type == "HardSwish":
            names.append(n.name)
        gate = {"hardswish": "HardSigmoid", "silu": "Sigmoid"}[kind]
        if n.op_type == gate:
            muls = [c for c in cons.get(n.output[0], []) if c.op_type == "Mul" and n.input[0] in c.input]
            if muls:
                names += [n.name] + [m.name for m in muls]
    return names


def excluded_nodes(model, cfg: QuantConfig) -> list[str]:
    """Names of the nodes ``cfg`` keeps in float, in graph order."""
    chosen: set[str] = set()
    op_types = {n.op_type for n in model.graph.node}
    for kind in cfg.exclude:
        if kind == "depthwise":
            chosen.update(depthwise_convs(model))
        elif kind == "se":
            chosen.update(se_nodes(model))
        elif kind in ("hardswish", "silu"):
            chosen.update(activation_nodes(model, kind))
        elif kind in op_types:
            chosen.update(n.name for n in model.graph.node if n.op_type == kind)
        else:
            raise EdgekitError(f"--exclude-ops {kind}: neither one of {', '.join(EXCLUDE_KINDS)} nor an op type "
                               f"of this model ({', '.join(sorted(op_types))})")
    if cfg.int8_ops is not None:
        unknown = [t for t in cfg.int8_ops if t not in op_types]
        if unknown:
            raise EdgekitError(f"--int8-ops {', '.join(unknown)}: not an op type of this model "
                               f"({', '.join(sorted(op_types))})")
        chosen.update(n.name for n in model.graph.node if n.op_type not in cfg.int8_ops)
    if cfg.target == "tensorrt":
        # TensorRT fuses Q/DQ around the weighted layers and residual Adds; elsewhere QDQ only costs time
        chosen.update(n.name for n in model.graph.node if n.op_type not in (*WEIGHTED_OPS, "Add"))
    return [n.name for n in model.graph.node if n.name in chosen]

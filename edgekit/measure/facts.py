"""What a file is: size, parameters and MACs, read from the graph itself."""

from __future__ import annotations

from pathlib import Path


def artifact_facts(path: Path) -> dict:
    from ..fsutil import sha256_file
    from ..graph.info import count_macs, count_params, load_checked, op_counts

    facts = {"file": path.name, "bytes": path.stat().st_size, "size_mb": path.stat().st_size / 1e6,
             "sha256": sha256_file(path)}
    if path.suffix == ".onnx":
        m = load_checked(path)
        ops = op_counts(m)
        facts.update(params=count_params(m), macs=count_macs(m), nodes=sum(ops.values()),
                     qdq_nodes=ops.get("QuantizeLinear", 0) + ops.get("DequantizeLinear", 0),
                     opset=max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")))
    return facts

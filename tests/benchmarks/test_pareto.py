"""benchmarks/pareto.py's front: the pure part of the Pareto plots (issue #14)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from pareto import engine_rows, pareto_front  # noqa: E402


def test_slower_and_worse_is_off_the_front():
    assert pareto_front([(2.0, 0.5), (1.0, 0.1), (0.5, 0.8)]) == [(0.5, 0.8), (1.0, 0.1)]


def test_front_is_sorted_by_latency_and_keeps_the_trade_offs():
    pts = [(3.0, -0.2), (1.0, 0.4), (2.0, 0.0), (2.5, 0.1), (4.0, -0.2)]
    assert pareto_front(pts) == [(1.0, 0.4), (2.0, 0.0), (3.0, -0.2)]


def test_ties():
    # equal points both stay; same latency with a larger drop, or same drop and slower, is dominated
    assert pareto_front([(1.0, 0.2), (1.0, 0.2)]) == [(1.0, 0.2), (1.0, 0.2)]
    assert pareto_front([(1.0, 0.2), (1.0, 0.3)]) == [(1.0, 0.2)]
    assert pareto_front([(1.0, 0.2), (1.5, 0.2)]) == [(1.0, 0.2)]


def test_negative_drops():
    # a row more accurate than FP32 (negative drop) dominates a slower one at 0
    assert pareto_front([(0.4, -0.1), (0.5, 0.0), (0.3, 0.05)]) == [(0.3, 0.05), (0.4, -0.1)]
    assert pareto_front([(0.4, -0.1), (0.35, -0.25)]) == [(0.35, -0.25)]


def test_records_with_a_key_and_ratio_rows_skipped():
    rows = [{"model": "m", "engine": "ort-fp32", "b1_ms": 0.8, "drop": 0.0, "size_mb": 9.0},
            {"model": "m", "engine": "edgekit@0.5 (x)", "b1_ms": 0.4, "drop": 0.4, "size_mb": 2.6},
            {"model": "m", "engine": "pytorch-fp32", "b1_ms": 30.0, "drop": 0.0, "size_mb": "n/a (in memory)"},
            {"model": "m", "engine": "openvino-int8-nncf", "error": "ImportError: no openvino"},
            {"model": "m", "engine": "= edgekit / best peer @0.5", "b1_ms": 0.5}]
    rows = engine_rows(rows)["m"]
    assert [r["engine"] for r in rows] == ["ort-fp32", "edgekit@0.5 (x)", "pytorch-fp32"]
    front = pareto_front(rows, key=lambda r: (r["b1_ms"], r["drop"]))
    assert [r["engine"] for r in front] == ["edgekit@0.5 (x)", "ort-fp32"]

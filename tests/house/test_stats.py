import numpy as np
import pytest

from edgekit.stats import accuracy, agreement, latency_stats, topk_correct, within_tolerance


def test_latency_stats_exact():
    s = latency_stats([4.0, 1.0, 3.0, 2.0, 100.0], batch_size=2)
    assert s["median_ms"] == 3.0 and s["min_ms"] == 1.0 and s["max_ms"] == 100.0
    assert s["mean_ms"] == 22.0 and s["n"] == 5
    assert s["p90_ms"] == pytest.approx(61.6)  # numpy's linear interpolation between 4 and 100
    assert s["throughput_ips"] == pytest.approx(2 * 1000 / 3.0)
    assert s["std_ms"] == pytest.approx(np.std([4, 1, 3, 2, 100], ddof=1))
    with pytest.raises(ValueError):
        latency_stats([])


def test_topk_and_accuracy():
    logits = np.array([[0.1, 0.9, 0.0, 0, 0, 0], [0.8, 0.1, 0.05, 0.04, 0.01, 0.0], [0.0, 0.1, 0.2, 0.3, 0.4, 1.0]])
    labels = np.array([1, 2, 0])
    assert topk_correct(logits, labels, 1).tolist() == [True, False, False]
    assert topk_correct(logits, labels, 3).tolist() == [True, True, False]
    acc = accuracy(logits, labels)
    assert acc["top1"] == pytest.approx(100 / 3) and acc["top5"] == pytest.approx(200 / 3)


def test_agreement():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    b = np.array([[2.0, 0.0], [1.0, 0.0]])
    ag = agreement(a, b)
    assert ag["top1_agreement"] == 50.0 and ag["mean_cosine"] == pytest.approx(0.5)
    assert ag["max_abs_diff"] == 1.0
    with pytest.raises(ValueError):
        agreement(a, b[:1])


def test_tolerance_rule():
    ref = np.array([10.0, -20.0])
    assert within_tolerance(0.0201, ref, 1e-4, 1e-3)
    assert not within_tolerance(0.0202, ref, 1e-4, 1e-3)

import numpy as np
import pytest

from edgekit.stats import accuracy, agreement, latency_stats, paired_drop, topk_correct, within_tolerance


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


def test_paired_drop_counts_the_changed_answers():
    ref = np.array([True] * 8 + [False] * 2)
    one_lost = ref.copy()
    one_lost[0] = False
    d = paired_drop(one_lost, ref)
    assert (d["n"], d["broken"], d["fixed"]) == (10, 1, 0) and d["drop"] == pytest.approx(10.0)
    # McNemar's paired variance: ((b + f) / n - d^2) / n = (0.1 - 0.01) / 10
    assert d["se"] == pytest.approx(100 * np.sqrt(0.009)) and d["high"] == pytest.approx(10 + 1.96 * d["se"])
    churn = ref.copy()  # the same net drop, made of 2 lost and 1 gained: less sure
    churn[[0, 1]] = False
    churn[8] = True
    c = paired_drop(churn, ref)
    assert (c["broken"], c["fixed"]) == (2, 1) and c["drop"] == pytest.approx(d["drop"]) and c["se"] > d["se"]
    same = paired_drop(ref, ref)
    assert same["drop"] == 0 and same["se"] == 0 and same["low"] == same["high"] == 0
    # the docstring's case: 16 lost, 15 gained on 505 images is 0.2 +- 2.2 points
    big = np.ones(505, bool)
    big[:15] = False
    cand = big.copy()
    cand[:15] = True
    cand[15:31] = False
    b = paired_drop(cand, big)
    assert b["drop"] == pytest.approx(100 / 505) and b["z"] * b["se"] == pytest.approx(2.16, abs=0.01)
    with pytest.raises(ValueError):
        paired_drop(ref[:5], ref)


def test_sweep_order_changes_every_engines_predecessor():
    from edgekit.measure.timing import sweep_order

    assert sweep_order(0, 0) == [] and sweep_order(1, 5) == [0]
    assert sweep_order(2, 0) == [0, 1] and sweep_order(2, 1) == [1, 0]
    from math import gcd

    for n in range(3, 30):
        sweeps = min(3, sum(gcd(s, n) == 1 for s in range(1, n)))  # as many sweeps as strides (n = 4, 6: two)
        orders = [sweep_order(n, k) for k in range(sweeps)]
        assert all(sorted(o) == list(range(n)) for o in orders), n  # each sweep runs every engine once
        assert len({o[0] for o in orders}) == sweeps, n  # a new engine first each sweep
        before = [{o[i]: o[i - 1] for i in range(1, n)} for o in orders]
        for e in range(n):  # no engine runs right after the same one in two sweeps
            prev = [b[e] for b in before if e in b]
            assert len(prev) == len(set(prev)), (n, e, orders)

"""How sure was each edgekit search of its candidates' accuracy drops, and would a margin have chosen better?

Issue #14: on EfficientNet-B0 and on MobileNetV2's pruned search, edgekit's choice fitted the 0.5-point budget on
its 505 selection images and missed it on the 2000 judge images. This script re-scores, image by image, every
candidate file of every search in a `peers.py --trained --work` folder, on the search's own selection half (the
same split `--optimize` makes, so the drop it finds must equal the one the search recorded: checked) and on the
harness's judge images, and compares three rules for the choice, on the latencies the search measured (the sizes,
for a `--optimize size` search):

- `point`: the fastest (smallest) candidate whose selection drop fits the budget (what `--optimize` and NNCF's
  accuracy control do);
- `one_se`: the fastest whose drop plus one paired standard error (`edgekit.stats.paired_drop`) fits;
- `upper95`: the fastest whose 95% paired interval stays within the budget.

For each rule it gives the chosen candidate's drop on the judge images: the rule that keeps the judge drop within
the budget without giving up speed is the one to ship.

    python benchmarks/drop_uncertainty.py --work /work/peers-work --json benchmarks/results/drop-uncertainty.json
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit  # noqa: E402


def outcomes(backend: str, path: Path, options: dict, x: np.ndarray, truth: np.ndarray, threads: int) -> np.ndarray:
    """Per image: is the top-1 right."""
    from edgekit.backends import registry
    from edgekit.backends.base import RunnerRequest
    from edgekit.measure.quality import run_batched
    from edgekit.stats import topk_correct

    with registry.open_runner(backend, RunnerRequest(path, device="cpu", threads=threads, options=options)) as r:
        return topk_correct(run_batched(r, x), truth, 1)


def choose(cands: list[dict], max_drop: float, key: str, objective: str = "latency") -> dict:
    """The fastest (or, for ``--optimize size``, the smallest) candidate whose ``key`` (the point drop, or the
    interval's top) fits the budget."""
    ok = [c for c in cands if c[key] <= max_drop]
    return min(ok, key=lambda c: c["latency_ms"] if objective == "latency" else (c["size_bytes"], c["latency_ms"]))


def search_rows(folder: Path, x_sel, y_sel, x_judge, y_judge, threads: int) -> tuple[list[dict], dict]:
    import json

    from edgekit.stats import paired_drop

    o = json.loads((folder / "report.json").read_text())["optimize"]
    scored: dict[tuple, tuple] = {}  # (file, backend, options) -> (selection, judge) outcomes: variants share them

    def score(backend, path, options):
        k = (str(path), backend, tuple(sorted(options.items())))
        if k not in scored:
            scored[k] = (outcomes(backend, path, options, x_sel, y_sel, threads),
                         outcomes(backend, path, options, x_judge, y_judge, threads))
        return scored[k]

    ref_sel, ref_judge = score("onnxruntime", folder / "model.onnx", {})
    cands = []
    for c in o["candidates"]:
        sel, judge = score(c["backend"], folder / c["file"], dict(c["runtime"]))
        d = paired_drop(sel, ref_sel)
        cands.append({"name": c["name"], "latency_ms": c["latency_ms"], "size_bytes": c["size_bytes"],
                      "search_drop": c["drop"],
                      "reproduced": abs(d["drop"] - c["drop"]) < 1e-9, **{k: d[k] for k in (
                          "drop", "broken", "fixed", "se", "low", "high")}, "one_se": d["drop"] + d["se"],
                      "judge_drop": paired_drop(judge, ref_judge)["drop"]})
    b = o["max_drop"]
    rules = {r: choose(cands, b, key, o["objective"])
             for r, key in (("point", "drop"), ("one_se", "one_se"), ("upper95", "high"))}
    summary = {"search": folder.name, "objective": o["objective"], "max_drop": b, "selection_images": len(y_sel),
               "judge_images": len(y_judge), "all_reproduced": all(c["reproduced"] for c in cands),
               "search_choice": o["choice"]["name"]}
    for rule, c in rules.items():
        summary[rule] = {"choice": c["name"], "latency_ms": c["latency_ms"], "size_bytes": c["size_bytes"],
                         "selection_drop": c["drop"],
                         "interval": [c["low"], c["high"]], "judge_drop": c["judge_drop"],
                         "judge_within_budget": c["judge_drop"] <= b}
    return cands, summary


def main() -> None:
    import argparse

    from peers import TRAINED_PRE

    from edgekit.data.images import load_array, scan
    from edgekit.models.preprocess import Preprocess
    from edgekit.pipeline.candidates import split_selection_judge

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, help="a peers.py --trained --work folder (after its run)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="benchmarks/results/drop-uncertainty.json")
    args = ap.parse_args()
    work = Path(args.work)
    missing = [d for d in ("selection", "judge") if not (work / d).is_dir()]
    if missing:
        raise SystemExit(f"{work} has no {missing[0]}/ folder: pass the --work folder of a finished "
                         "`peers.py --trained` run")
    pre = Preprocess(*TRAINED_PRE)
    x, y = load_array(scan(work / "selection", num_classes=10), pre)
    sel, _ = split_selection_judge(len(x), y)  # --optimize's split of its --eval-data (peers.py passes no limit)
    xj, yj = load_array(scan(work / "judge", num_classes=10), pre)
    rows, details = [], {}
    for folder in sorted(p for p in work.glob("*-edgekit*-*") if (p / "report.json").exists()):
        cands, s = search_rows(folder, x[sel], y[sel], xj, yj, args.threads)
        details[folder.name] = cands
        rows.append({"search": s["search"], "budget": s["max_drop"], "reproduced": s["all_reproduced"],
                     "point": s["point"]["choice"], "point_ms": s["point"]["latency_ms"],
                     "point_sel": s["point"]["selection_drop"], "point_high": s["point"]["interval"][1],
                     "point_judge": s["point"]["judge_drop"], "one_se": s["one_se"]["choice"],
                     "one_se_ms": s["one_se"]["latency_ms"], "one_se_judge": s["one_se"]["judge_drop"],
                     "upper95": s["upper95"]["choice"],
                     "upper95_ms": s["upper95"]["latency_ms"], "upper95_judge": s["upper95"]["judge_drop"],
                     "summary": s})
        print(f"{folder.name}: " + "; ".join(f"{k} {s[k]['choice']} {s[k]['latency_ms']:.3f} ms judge "
                                             f"{s[k]['judge_drop']:.2f}" for k in ("point", "one_se", "upper95")),
              flush=True)
    meta = {"work": str(work), "selection": f"--optimize's selection half of {len(x)} images ({len(sel)})",
            "judge": f"{len(yj)} judge images; drops against edgekit's FP32 model.onnx of each search",
            "latency": "as the search measured it (report.json)", "interval": "95% paired (McNemar) normal interval",
            "candidates": details}
    emit("edgekit's choice by the point drop, one SE above it, its 95% upper bound: judged on the judge images", rows,
         [("search", "search"), ("budget", "budget"), ("point", "point rule"), ("point_ms", "ms"),
          ("point_sel", "sel drop"), ("point_high", "upper 95"), ("point_judge", "judge drop"),
          ("one_se", "one-SE rule"), ("one_se_ms", "ms"), ("one_se_judge", "judge drop"),
          ("upper95", "upper-95 rule"), ("upper95_ms", "ms"), ("upper95_judge", "judge drop"),
          ("reproduced", "drops reproduced")], args.json, meta)


if __name__ == "__main__":
    main()

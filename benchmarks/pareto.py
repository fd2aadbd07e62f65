"""A Pareto plot per model family from a `peers.py` JSON (issue #14): speed against accuracy, every engine row.

x: batch-1 median latency in ms, with a bar from the fastest to the slowest sweep (log scale where latencies span
more than 10x); y: top-1 drop in points against onnxruntime FP32 on the judge images (lower is better). Marker
area is proportional to the file size (a small fixed marker where a row holds no file, e.g. PyTorch eager);
edgekit's rows are red diamonds. The step line is the Pareto front: the rows that no other row beats on both
axes (as fast or faster with a drop as small or smaller, and better on one). Dashed lines: the drop budgets of the
run (`meta.max_drop`). One PNG per model, and a table and JSON of each family's front.

    python benchmarks/pareto.py benchmarks/results/peers-trained.json --out-dir benchmarks/results/pareto
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit  # noqa: E402

EDGEKIT = ("edgekit@", "edgekit+prune@")
SHORT = [("openvino-", "ov-"), ("pytorch-", "pt-"), ("+denormal_as_zero=True", "+daz"), ("-default", "")]


def pareto_front(points: list, key=lambda p: p) -> list:
    """The points no other point dominates, sorted by (latency, drop); key(p) gives (latency, drop).

    q dominates p when q is no slower and has no larger drop, and is strictly better on one of the two. Equal
    points do not dominate each other: both stay on the front."""
    keyed = [(tuple(key(p)), p) for p in points]
    front = [(k, p) for k, p in keyed
             if not any(q[0] <= k[0] and q[1] <= k[1] and q != k for q, _ in keyed)]
    return [p for _, p in sorted(front, key=lambda kp: kp[0])]


def is_edgekit(row: dict) -> bool:
    return row["engine"].startswith(EDGEKIT)


def short_name(engine: str) -> str:
    """"edgekit@0.5 (onnxruntime-int8-mixed-2)" -> "edgekit@0.5"; "openvino-fp32" -> "ov-fp32"."""
    if engine.startswith(EDGEKIT):
        return engine.split(" (")[0]
    for a, b in SHORT:
        engine = engine.replace(a, b)
    return engine


def engine_rows(rows: list[dict]) -> dict[str, list[dict]]:
    """Plottable rows per model: engine rows (no "= ..." ratio row) with a latency and a drop."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("engine", "").startswith("= ") or "error" in r:
            continue
        if isinstance(r.get("b1_ms"), (int, float)) and isinstance(r.get("drop"), (int, float)):
            out.setdefault(r["model"], []).append(r)
    return out


def xy(row: dict) -> tuple[float, float]:
    """(latency, drop), the drop rounded to 1e-6 so that float noise (-0.0999..4 vs -0.1000..1) makes no rank."""
    return row["b1_ms"], round(row["drop"], 6)


def place_labels(ax, items: list[tuple], markers: list[tuple[float, float, float]]) -> None:
    """Greedy labels (x, y, marker area, text, style), in the order given: each takes the nearest spot around its
    point, inside the axes, whose box overlaps no marker (x, y, area in points^2) and no label placed before it
    (else the spot with the fewest overlaps). Labels of points that coincide on screen are joined."""
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    renderer, px, screen = ax.figure.canvas.get_renderer(), ax.figure.dpi / 72, ax.transData.transform
    placed = []
    for x, y, area in markers:
        (cx, cy), r = screen((x, y)), area ** 0.5 / 2 * px
        placed.append(Bbox.from_extents(cx - r, cy - r, cx + r, cy + r))
    groups: list[list] = []
    for x, y, area, text, style in items:
        same = [g for g in groups if g[4] == style and abs(screen((x, y)) - screen((g[0], g[1]))).max() < 4]
        if same:
            same[0][3].append(text)
            same[0][2] = max(same[0][2], area)
        else:
            groups.append([x, y, area, [text], style])
    frame = ax.get_window_extent(renderer)
    for x, y, area, texts, style in groups:
        r, best = area ** 0.5 / 2, None
        for d in (r + 3, r + 14, r + 28, r + 46, r + 70):
            for ux, uy in ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1)):
                t = ax.annotate(", ".join(texts), (x, y), xytext=(ux * d, uy * d), textcoords="offset points",
                                fontsize=7, ha={1: "left", -1: "right", 0: "center"}[ux],
                                va={1: "bottom", -1: "top", 0: "center"}[uy], **style,
                                arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "0.5"} if d > r + 10 else None)
                t.update_positions(renderer)
                box = Text.get_window_extent(t, renderer)  # the text alone, not its leader line
                out = not (frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1)
                score = (out, sum(box.overlaps(b) for b in placed))
                if best is None or score < best[0]:
                    if best is not None:
                        best[1].remove()
                    best = (score, t, box)
                else:
                    t.remove()
                if best[0] == (False, 0):
                    break
            if best[0] == (False, 0):
                break
        placed.append(best[2])


def plot(model: str, rows: list[dict], meta: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=120)
    lat = [r["b1_ms"] for r in rows]
    if max(lat) > 10 * min(lat):
        ax.set_xscale("log")
    for b in meta.get("max_drop") or []:
        ax.axhline(b, ls="--", lw=0.8, color="tab:gray")
        ax.annotate(f"budget {b:g}", (1, b), xycoords=("axes fraction", "data"), xytext=(-4, 2),
                    textcoords="offset points", ha="right", fontsize=7, color="tab:gray")
    front = pareto_front(rows, key=xy)
    fx, fy = [r["b1_ms"] for r in front], [r["drop"] for r in front]
    ax.step(fx + [max(lat)], fy + fy[-1:], where="post", color="tab:green", lw=1.2, alpha=0.7,
            label="Pareto front", zorder=1)  # on to the slowest row: the best drop within each latency
    labels, markers = [], []
    for r in rows:
        mine, sweeps = is_edgekit(r), r.get("b1_sweeps_ms") or [r["b1_ms"]]
        size = r.get("size_mb")
        area = 40 * size if isinstance(size, float) else 12
        err = [[max(0.0, r["b1_ms"] - min(sweeps))], [max(0.0, max(sweeps) - r["b1_ms"])]]
        colour = "tab:red" if mine else "tab:blue"
        ax.errorbar(r["b1_ms"], r["drop"], xerr=err, fmt="none", ecolor=colour, elinewidth=0.7, alpha=0.5, zorder=2)
        ax.scatter(r["b1_ms"], r["drop"], s=area, marker="D" if mine else "o", color=colour, alpha=0.75,
                   edgecolors="black" if r in front else "none", linewidths=0.8, zorder=3)
        markers.append((r["b1_ms"], r["drop"], area))
        labels.append((r["b1_ms"], r["drop"], area, short_name(r["engine"]),
                       {"color": "tab:red", "fontweight": "bold"} if mine else {"color": "0.2"}))
    ax.scatter([], [], s=40 * 1.0, color="tab:blue", alpha=0.75, label="peer (area: 1 MB)")
    ax.scatter([], [], s=40 * 1.0, marker="D", color="tab:red", alpha=0.75, label="edgekit (area: 1 MB)")
    ax.scatter([], [], s=12, color="0.5", label="no file (in memory): fixed")
    ax.scatter([], [], s=40, facecolors="none", edgecolors="black", label="on the front")
    ax.margins(x=0.08, y=0.12)
    fig.canvas.draw()  # the scales are final: label boxes can be measured
    place_labels(ax, sorted(labels, key=lambda t: not t[4].get("fontweight")), markers)  # edgekit's first
    chosen = [f"{short_name(r['engine'])}: {r['engine'].split(' (', 1)[1].removesuffix(')')}"
              for r in rows if is_edgekit(r) and " (" in r["engine"]]
    if chosen:
        fig.text(0.01, 0.01, "edgekit's choice: " + "; ".join(chosen), fontsize=7, color="tab:red")
    threads = meta.get("threads") or meta.get("environment", {}).get("threads", "?")
    ax.set_title(f"{model}: batch-1 latency vs top-1 drop ({threads} threads, median of {meta.get('sweeps', '?')} "
                 f"sweeps, bars: min..max)")
    ax.set_xlabel("batch-1 latency, ms (median over sweeps)")
    ax.set_ylabel("top-1 drop vs onnxruntime FP32, points (lower is better)")
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    ax.legend(loc="upper left", fontsize=7, markerscale=0.8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input", help="a JSON written by benchmarks/peers.py")
    ap.add_argument("--out-dir", default="benchmarks/results/pareto")
    ap.add_argument("--json", help="the fronts as JSON (default: <out-dir>/pareto.json)")
    args = ap.parse_args()
    raw = Path(args.input).read_bytes()
    data = json.loads(raw)
    meta = data.get("meta", {})
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    families = engine_rows(data["rows"])
    if not families:
        raise SystemExit(f"{args.input}: no engine row with b1_ms and drop (older peers.py files hold no drop)")
    fronts = []
    for model, rows in families.items():
        plot(model, rows, meta, out / f"{model}.png")
        fronts += [{k: r.get(k) for k in ("model", "engine", "b1_ms", "drop", "size_mb")}
                   for r in pareto_front(rows, key=xy)]
    emit("Pareto front per family (batch-1 latency, top-1 drop)", fronts,
         [("model", "model"), ("engine", "engine"), ("b1_ms", "b1 ms"), ("drop", "drop"), ("size_mb", "MB")],
         args.json or out / "pareto.json",
         {"input": args.input, "input_sha256": hashlib.sha256(raw).hexdigest(), "max_drop": meta.get("max_drop"),
          "front": "rows no other row dominates: as fast or faster and a drop as small or smaller, better on one"})


if __name__ == "__main__":
    main()

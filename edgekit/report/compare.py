"""Side-by-side variants and the latency/accuracy Pareto chart (marker area proportional to size)."""

from __future__ import annotations

from pathlib import Path

from ..errors import EdgekitError
from .check import metrics


def variant_rows(reports: dict[str, dict]) -> list[dict]:
    rows = []
    for label, rep in reports.items():
        m = metrics(rep)
        rows.append({"variant": label, "model": rep.get("model", {}).get("name"), "precision": m["precision"],
                     "size_mb": m["size_mb"], "latency_ms": m["latency_ms"], "accuracy": m["accuracy"],
                     "eval_set": m["eval_set"] if m["accuracy"] is not None else None})
    return rows


def mixed_image_sets(rows: list[dict]) -> str | None:
    """A warning when the accuracies in ``rows`` were measured on different image sets; None when comparable."""
    sets = {r["eval_set"] for r in rows if r["accuracy"] is not None}
    unknown = [r["variant"] for r in rows if r["accuracy"] is not None and r["eval_set"] is None]
    if len(sets - {None}) > 1:
        groups = "; ".join(f"{fp[:8]}: " + ", ".join(r["variant"] for r in rows if r["eval_set"] == fp)
                           for fp in sorted(sets - {None}))
        return (f"top-1 figures come from {len(sets - {None})} different image sets ({groups}): they are not "
                "comparable; evaluate every variant on the same --eval-data")
    if unknown and sets - {None}:
        return (f"{', '.join(unknown)} carry no image-set fingerprint (older reports): their top-1 may come from "
                "other images; re-run them to compare")
    return None


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both latency (lower) and accuracy (higher),
    sorted by latency."""
    front = []
    for i, (lat, acc) in enumerate(points):
        dominated = any((l2 <= lat and a2 >= acc) and (l2 < lat or a2 > acc) for j, (l2, a2) in enumerate(points)
                        if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def marker_label(row: dict) -> str:
    """A point's label on the chart: the variant and its size, or that the report has no size (never 0 MB)."""
    size = "size n/a" if row["size_mb"] is None else f"{row['size_mb']:.2f} MB"
    return f"{row['variant']}\n{size}"


def plot(rows: list[dict], path: Path, warning: str | None = None) -> list[dict]:
    """Write the chart; returns the points drawn (variants without latency or accuracy are left out)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from .._optional import extra_hint

        raise EdgekitError(f"the plot needs matplotlib: {extra_hint('plot')}") from None
    pts = [r for r in rows if r["latency_ms"] is not None and r["accuracy"] is not None]
    if not pts:
        raise EdgekitError("no report has both latency and accuracy to plot: profile with --eval-data")
    xy = [(r["latency_ms"], r["accuracy"]) for r in pts]
    front = pareto_front(xy)
    sizes = [r["size_mb"] for r in pts]
    biggest = max([s for s in sizes if s is not None], default=0.0) or 1.0
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    colors = {"fp32": "tab:blue", "int8": "tab:orange", "fp16": "tab:green"}
    for r, s in zip(pts, sizes):
        color = colors.get(r["precision"], "tab:gray")
        if s is None:  # no size in the report (a torch model profiled in memory): a hollow marker, said in its label
            ax.scatter(r["latency_ms"], r["accuracy"], s=200, facecolors="none", edgecolors=color, linewidth=1.2,
                       linestyle="--")
        else:
            ax.scatter(r["latency_ms"], r["accuracy"], s=60 + 1400 * s / biggest, alpha=0.55, color=color,
                       edgecolor="black", linewidth=0.6)
        ax.annotate(marker_label(r), (r["latency_ms"], r["accuracy"]), fontsize=8, xytext=(6, 6),
                    textcoords="offset points")
    fx = [xy[i][0] for i in front]
    fy = [xy[i][1] for i in front]
    ax.step(fx, fy, where="post", color="crimson", linewidth=1.5, label="Pareto front")
    for prec, col in colors.items():
        if any(r["precision"] == prec for r in pts):
            ax.scatter([], [], color=col, alpha=0.55, s=80, label=prec.upper())
    ax.set_xlabel("latency, batch 1 (ms, median)  →  lower is better")
    ax.set_ylabel("top-1 accuracy (%)  →  higher is better")
    ax.set_title("edgekit: accuracy vs latency (marker area ∝ model size)" +
                 ("\nWARNING: top-1 measured on different image sets, not comparable" if warning else ""))
    ax.grid(True, alpha=0.3)
    lo, hi = min(p[0] for p in xy), max(p[0] for p in xy)
    pad = (hi - lo) * 0.15 or hi * 0.2
    ax.set_xlim(max(0, lo - pad), hi + pad * 2)
    alo, ahi = min(p[1] for p in xy), max(p[1] for p in xy)
    apad = (ahi - alo) * 0.15 or 1.0
    ax.set_ylim(alo - apad, ahi + apad)
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return [{**r, "pareto": i in front} for i, r in enumerate(pts)]

"""The built-in photos as a sanity check of real ImageNet weights: is an accepted class in each top 5?

Seven photos cannot measure accuracy, but a model with working ImageNet weights and the right preprocessing
puts an accepted class in its top 5 for each labelled one, and a wrong mean/std or broken export does not.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np


def accepted_labels() -> dict[str, list[int]]:
    text = resources.files("edgekit").joinpath("assets/photos_labels.json").read_text()
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def top5_check(paths: list[Path], logits: np.ndarray, accepted: dict[str, list[int]]) -> dict:
    """Per labelled photo, whether its top 5 holds an accepted class; photos without any are controls."""
    top5 = np.argsort(-logits, axis=1)[:, :5]
    rows = {}
    for path, row in zip(paths, top5):
        want = accepted.get(Path(path).name)
        if want:
            rows[Path(path).name] = {"top5": row.tolist(), "hit": bool(set(row.tolist()) & set(want))}
    hits = sum(r["hit"] for r in rows.values())
    return {"labelled": len(rows), "hits": hits, "photos": rows}

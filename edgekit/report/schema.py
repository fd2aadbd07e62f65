"""The report's versioned contract: the headline, the figures of the file a job ships.

A report holds many sections (int8, optimize, stages, ...), each its stage's own. What a CI gate or a
comparison needs is one thing: the shipped file's size, latency, accuracy and where they were measured. Since
schema 2 every report carries it as ``headline``, computed once when the report is made, so ``check`` and
``compare`` read one typed section and never another module's keys. Reports of schema 1 (no headline) are read
by deriving it the same way.

The accuracy a decision is read from is the held-out one: an INT8 file's (or an ``--optimize`` choice's) figure
on the images its layers or candidates were not chosen on. The figure on the selection images, which the choice
was fitted to, stands beside it, labelled. Schema 3 made it so for ``--optimize``, whose schema-2 headline held the
selection figure; such reports are read by deriving their headline again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

SCHEMA = 3  # 1: no headline; 2: "headline" (this module's Headline) in every report; 3: held-out figures in it


@dataclass(frozen=True)
class Headline:
    artifact: str | None  # the file the job ships (model_int8.onnx, model_best.*, model.onnx)
    precision: str | None
    size_mb: float | None
    latency_ms: float | None  # batch 1 median, where the job timed the shipped file
    accuracy: float | None  # top-1 on labelled images
    accuracy_drop: float | None  # against the job's FP32 (or unpruned) baseline, same images
    eval_set: str | None  # fingerprint of the evaluation images (accuracy compares only on the same set)
    device: dict | None  # where latency was measured: cpu, gpu, backend, device, threads
    accuracy_images: int | None = None  # how many held-out images ``accuracy`` and ``accuracy_drop`` come from
    selection_accuracy: float | None = None  # the same figures on the images the choice was fitted to (beside, not
    selection_drop: float | None = None  # instead of, the held-out ones; None when nothing was chosen on images)

    @classmethod
    def read(cls, rep: dict) -> "Headline":
        """The headline a report carries (schema 3), or derived from its sections (schemas 1 and 2)."""
        if rep.get("schema", 1) >= 3 and isinstance(rep.get("headline"), dict):
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in rep["headline"].items() if k in known})
        return cls.of(rep)

    @classmethod
    def of(cls, rep: dict) -> "Headline":
        """Derive the headline from a report's sections: for an ``export --optimize`` report the figures are the
        shipped ``model_best.*``'s, for ``--int8`` the INT8 file's, for ``prune`` the last stage's."""
        m = {"size_mb": None, "latency_ms": None, "accuracy": None, "accuracy_drop": None, "device": None,
             "artifact": None, "precision": rep.get("precision"),
             "eval_set": (rep.get("images") or {}).get("fingerprint"), "accuracy_images": None,
             "selection_accuracy": None, "selection_drop": None}
        env = rep.get("environment", {})
        q = rep.get("int8")
        art = (q or {}).get("artifact") or rep.get("artifact") or {}
        m["size_mb"], m["artifact"] = art.get("size_mb"), art.get("file")
        if rep.get("latency"):
            m["latency_ms"] = (rep["latency"].get("batch1") or next(iter(rep["latency"].values())))["median_ms"]
        elif q:
            m["latency_ms"] = q["latency"]["int8"]["median_ms"]
        elif rep.get("latency_compare"):
            m["latency_ms"] = rep["latency_compare"]["pruned"]["median_ms"]
        acc = rep.get("accuracy") or {}
        if q and q.get("metric") is not None and q.get("judged_by", "").startswith("top-1 on"):
            m["accuracy"], m["accuracy_drop"] = q["metric"], q["drop"]  # the held-out half's (int8.py)
            sel = q.get("selection") or {}
            m["accuracy_images"] = (q.get("held_out") or {}).get("images")
            m["selection_accuracy"], m["selection_drop"] = sel.get("metric"), sel.get("drop")
        elif not q:
            for v in acc.values():
                if isinstance(v, dict) and "top1" in v:
                    m["accuracy"], m["accuracy_images"] = v["top1"], v.get("n")
        stages = rep.get("stages") or {}
        if "unpruned" in stages and stages["unpruned"].get("quality", {}).get("basis") == "labels":
            last = list(stages.values())[-1]["quality"]["top1"]
            m["accuracy"], m["accuracy_drop"] = last, stages["unpruned"]["quality"]["top1"] - last
        backend = rep.get("backend") or {}
        threads = backend.get("threads", env.get("threads"))
        m["device"] = {"cpu": env.get("cpu"), "gpu": backend.get("gpu"),
                       "backend": backend.get("backend", "onnxruntime"),
                       "device": backend.get("device", "cpu"), "threads": threads}
        opt = rep.get("optimize")
        if opt:  # the shipped file is model_best.*: judge it, not the FP32 model.onnx beside it
            ch = opt["choice"]
            m.update(size_mb=ch["size_bytes"] / 1e6, latency_ms=ch["latency_ms"], artifact=ch["file"],
                     precision=ch.get("precision", m["precision"]), accuracy=None, accuracy_drop=None,
                     selection_accuracy=None, selection_drop=None, accuracy_images=None)
            if opt.get("judged_by") == "top-1":  # the held-out judge half's figures; the selection half's beside
                m.update(accuracy=ch["judge_metric"], accuracy_drop=ch["judge_drop"], selection_accuracy=ch["metric"],
                         selection_drop=ch["drop"], accuracy_images=opt.get("judge_images"))
            m["device"] = {**m["device"], "backend": ch.get("backend", m["device"]["backend"]),
                           "threads": opt.get("threads", threads)}
        return cls(**m)

    def to_dict(self) -> dict:
        return asdict(self)

"""The report's versioned contract: the headline, the figures of the file a job ships.

A report holds many sections (int8, optimize, stages, ...), each its stage's own. What a CI gate or a
comparison needs is one thing: the shipped file's size, latency, accuracy and where they were measured. Since
schema 2 every report carries it as ``headline``, computed once when the report is made, so ``check`` and
``compare`` read one typed section and never another module's keys. Reports of schema 1 (no headline) are read
by deriving it the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

SCHEMA = 2  # 1: no headline; 2: "headline" (this module's Headline) in every report


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

    @classmethod
    def read(cls, rep: dict) -> "Headline":
        """The headline a report carries (schema 2), or derived from its sections (schema 1)."""
        if rep.get("schema", 1) >= 2 and isinstance(rep.get("headline"), dict):
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in rep["headline"].items() if k in known})
        return cls.of(rep)

    @classmethod
    def of(cls, rep: dict) -> "Headline":
        """Derive the headline from a report's sections: for an ``export --optimize`` report the figures are the
        shipped ``model_best.*``'s, for ``--int8`` the INT8 file's, for ``prune`` the last stage's."""
        m = {"size_mb": None, "latency_ms": None, "accuracy": None, "accuracy_drop": None, "device": None,
             "artifact": None, "precision": rep.get("precision"),
             "eval_set": (rep.get("images") or {}).get("fingerprint")}
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
            m["accuracy"], m["accuracy_drop"] = q["metric"], q["drop"]
        elif not q:
            for v in acc.values():
                if isinstance(v, dict) and "top1" in v:
                    m["accuracy"] = v["top1"]
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
                     precision=ch.get("precision", m["precision"]), accuracy=None, accuracy_drop=None)
            if opt.get("judged_by") == "top-1":
                m["accuracy"], m["accuracy_drop"] = ch["metric"], ch["drop"]
            m["device"] = {**m["device"], "backend": ch.get("backend", m["device"]["backend"]),
                           "threads": opt.get("threads", threads)}
        return cls(**m)

    def to_dict(self) -> dict:
        return asdict(self)

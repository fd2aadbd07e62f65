"""The GPU lines of the on-screen table: the engine, its check against its ONNX file, and the side by side with
PyTorch on CUDA (end to end and GPU compute, and how compute was timed), for export, profile and build reports."""

from __future__ import annotations


def _short(method: str | None) -> str:
    if not method:
        return ""
    return "graph" if method.startswith("CUDA graph") else "back to back"


def side_by_side(rows: list[dict]) -> list[tuple[str, str]]:
    out = []
    for r in rows or []:
        speed = next((v for k, v in r.items() if k.startswith("speedup_vs_") and v is not None), None)
        compute = ("" if r.get("compute_median_ms") is None else
                   f", GPU compute {r['compute_median_ms']:.3f} ms ({_short(r.get('compute_method'))})")
        e2e = ("" if r.get("e2e_median_ms") is None else
               f"end to end {r['e2e_median_ms']:.3f} ms (p99 {r['e2e_p99_ms']:.3f})")
        ips = "" if r.get("images_per_s") is None else f", {r['images_per_s']:.0f} img/s"
        vs = "" if speed is None else f", {speed:.2f}x torch fp32"
        out.append((f"{r['runtime']} b{r['batch']}", f"{e2e}{compute}{ips}{vs}"))
    return out


def engine_rows(rep: dict) -> list[tuple[str, str]]:
    """Rows for ``rep["engine"]`` (export), ``rep["gpu_side_by_side"]`` (profile) and a build report's check."""
    rows: list[tuple[str, str]] = []
    e = rep.get("engine")
    if e:
        b = e["build"]
        rows.append(("engine", f"{e['file']} for {b.get('gpu')} (TensorRT {b.get('tensorrt')}), cache "
                               f"{b.get('cache')}, built in {b.get('build_s', 0.0):.1f} s"))
        tol = e.get("tolerance") or {}
        rows.append(("engine check", f"{e.get('flips_vs_onnx')} of {tol.get('n')} images flip against its ONNX file "
                                     f"(at most {tol.get('max_flips')}); top-1 agreement with FP32 "
                                     f"{e['agreement_with_fp32']['top1_agreement']:.1f}%"))
        rows += side_by_side(e.get("gpu_side_by_side"))
    rows += side_by_side(rep.get("gpu_side_by_side"))
    if rep.get("command") == "build" and "measured" in rep:
        m, tol = rep["measured"], rep.get("tolerance") or {}
        for key, gc in (rep.get("gpu_compute") or {}).items():
            rows.append((f"GPU compute b{key.removeprefix('batch')}", f"median {gc['median_ms']:.3f} ms  p99 "
                                                                     f"{gc['p99_ms']:.3f} ({gc.get('method', 'n/a')})"))
        flips = "" if m.get("flips") is None else (f"{m['flips']} of {m['n']} images flip against the host's file "
                                                   f"(at most {tol.get('max_flips')}); ")
        rows.append(("check", f"{rep.get('verdict', 'n/a').upper()}: {flips}top-1 agreement with FP32 "
                              f"{m['agreement']:.2f}% (host {rep['expected']['agreement']:.2f}%)"))
        rows += [("failure", f) for f in rep.get("failures", [])]
        rows += side_by_side(rep.get("throughput"))
    return rows

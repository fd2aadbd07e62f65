"""The report as a table: on screen (rich) and in report.md."""

from __future__ import annotations

from .counts import COUNTS_BELOW, share


def _int8_quality(q: dict) -> str:
    """The INT8 file's figure on the held-out images, the selection images' beside it; counts on few images."""
    held, sel = q.get("held_out") or {}, q.get("selection") or {}
    n, labelled = held.get("images"), q["judged_by"].startswith("top-1 on")
    b = q.get("budget") or {"max_drop": q["max_drop"], "source": "--max-drop"}
    budget = "no budget" if b["max_drop"] is None else f"budget {b['max_drop']:g} " + (
        "met" if q["within_budget"] else "MISSED")
    if n is not None and n < COUNTS_BELOW:
        if labelled:
            return (f"{share(q['metric'], n)} held-out images right (FP32: {share(q['baseline'], n)}): too few to "
                    "judge INT8; pass --eval-data with 200+ labelled images")
        return f"{share(q['metric'], n)} held-out images agree with FP32: too few to judge INT8; pass --eval-data"
    beside = "" if sel.get("drop") is None else f"; {sel['drop']:.2f} on the {sel['images']} selection images"
    return (f"{q['metric']:.2f}% vs FP32 {q['baseline']:.2f}%, drop {q['drop']:.2f} on {n} held-out images"
            f"{beside} ({budget}); {q['judged_by']}")


def _fmt(v, unit: str = "", digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}{unit}"
    return f"{v}{unit}"


def summary_rows(rep: dict) -> list[tuple[str, str]]:
    """The figures a person looks at first, in a fixed order."""
    rows: list[tuple[str, str]] = []
    m = rep.get("model", {})
    rows.append(("model", f"{m.get('name')} ({m.get('weights')})"))
    if "precision" in rep:
        rows.append(("precision", rep["precision"]))
    if "backend" in rep:
        b = rep["backend"]
        rows.append(("backend", f"{b.get('backend')} on {b.get('device')}, threads {b.get('threads')}"))
    art = rep.get("artifact")
    if art:
        size = "" if art.get("size_mb") is None else f"  {art['size_mb']:.3f} MB"  # a torch model has no file
        rows.append(("file", f"{art['file']}{size}"))
        if "params" in art:
            rows.append(("params", f"{art['params'] / 1e6:.3f} M"))
            rows.append(("MACs", f"{art['macs'] / 1e9:.3f} G" if art.get("macs") is not None else
                         "unknown (shapes not inferable: export with static spatial dims)"))
    v = rep.get("verification")
    if v:
        agree = (f"{share(v['top1_agreement'], v['n'])} images agree at top-1" if v["n"] < COUNTS_BELOW else
                 f"top-1 agreement {v['top1_agreement']:.1f}% on {v['n']} images")
        rows.append(("max |onnx - torch|", f"{v['max_abs_diff']:.2e}  ({agree})"))
    q = rep.get("int8")
    if q:
        cal = q["calibration"]
        rows.append(("int8 file", f"{q['file']}  {q['artifact']['size_mb']:.3f} MB "
                                  f"({q['size_ratio_to_fp32']:.2f}x FP32),"
                                  f" {q['qdq_nodes']} Q/DQ nodes, target {q['config']['target']}"))
        rows.append(("calibration", f"{q['config']['method']} on {cal['size']} {cal['kind']} from {cal['source']}"
                                    f" (cache {'hit' if q['cache'].get('hit') else 'written'})"))
        if q.get("baseline") is not None:
            rows.append(("int8 quality", _int8_quality(q)))
            rows.append(("int8 budget", f"{(q.get('budget') or {'source': '--max-drop'})['source']}"))
        if q["float_nodes"]:
            rows.append(("kept in float", f"{len(q['float_nodes'])} node(s): " + ", ".join(q["float_nodes"][:6])
                         + (" ..." if len(q["float_nodes"]) > 6 else "")))
        lf, li = q["latency"]["fp32"]["median_ms"], q["latency"]["int8"]["median_ms"]
        rows.append(("int8 vs fp32 latency", f"{li:.3f} ms vs {lf:.3f} ms: {q['speedup_vs_fp32']:.2f}x"
                                             + ("" if q["speedup_vs_fp32"] >= 1 else "  (INT8 slower here)")))
    o = rep.get("optimize")
    if o:
        n_sel = o.get("selection_images")
        for cnd in o["candidates"]:
            sure = cnd.get("drop_uncertainty")  # reports before it have none
            pm = f" +- {sure['z'] * sure['se']:.2f}" if sure else ""
            fig = (f"{share(cnd['metric'], n_sel)} selection images" if n_sel and n_sel < COUNTS_BELOW else
                   f"{cnd['metric']:.2f}% (drop {cnd['drop']:.2f}{pm})")
            rows.append((f"candidate {cnd['name']}", f"{cnd['latency_ms']:.3f} ms, {cnd['size_bytes'] / 1e6:.3f} MB, "
                                                     f"{fig}"))
        for ratio, pm in ((o.get("pruned") or {}).get("models") or {}).items():
            rows.append((f"pruned {ratio}", f"{pm['layers_pruned']} layers, channels rounded to {pm['round_to']}, "
                                            f"best epoch {pm['best_epoch']}, " + ("fine-tuned model from the cache"
                                            if pm["cache"]["hit"] else f"fine-tuned in {pm['finetune_s']:.0f} s")))
        ch = o["choice"]
        n_judge = o.get("judge_images")
        held = (f"{share(ch['judge_metric'], n_judge)} held-out images" if n_judge and n_judge < COUNTS_BELOW else
                f"held-out drop {ch['judge_drop']:.2f} on {n_judge} images, selection drop {ch['drop']:.2f} on "
                f"{n_sel}") if "judge_drop" in ch else f"drop {ch['drop']:.2f}"
        rows.append(("chosen", f"{ch['name']} on {ch['backend']} -> {ch['file']} (fastest within drop {o['max_drop']}; "
                     f"{held})" if o["objective"] == "latency" else f"{ch['name']} -> {ch['file']} (smallest within "
                     f"drop {o['max_drop']}; {held})"))
    h = rep.get("fp16")
    if h:
        ag = h["agreement_with_fp32"]
        rows.append(("fp16 file", f"{h['file']}  {h['artifact']['size_mb']:.3f} MB ({h['size_ratio_to_fp32']:.2f}x"
                                  f" FP32), top-1 agreement {share(ag['top1_agreement'], ag.get('n'), 1)}"))
    f = rep.get("finetune")
    if f:
        reads = f.get("reads") or {}
        per = reads.get("per_epoch") or []
        shards = "" if f["world_size"] == 1 or not per else (
            f"; per epoch each of {f['world_size']} processes read its own shard ({', '.join(map(str, per[-1]))} "
            "images" + (", none read twice)" if reads.get("disjoint") else ", SOME READ TWICE)"))
        rows.append(("fine-tuning", f"{len(f['history'])} epochs on {f['device']}, best epoch {f['best_epoch']}; "
                                    f"augmentation: {f.get('augmentation', 'n/a')}{shards}"))
    for stage, st in (rep.get("stages") or {}).items():
        qual = st.get("quality")
        qtxt = "" if not qual else f", top-1 {qual['top1']:.2f}% ({qual['basis']})"
        rows.append((stage, f"params {st['params'] / 1e6:.3f} M, MACs {st['macs'] / 1e9:.4f} G, "
                            f"gzip {st['state_dict_gzip_bytes'] / 1e6:.3f} MB{qtxt}"))
    lc = rep.get("latency_compare")
    if lc:
        rows.append(("latency", "  ".join(f"{k} {v['median_ms']:.3f} ms" for k, v in lc.items())))
    for name, lat in rep.get("latency", {}).items():
        rows.append((f"latency {name}", f"median {lat['median_ms']:.3f} ms  p90 {lat['p90_ms']:.3f}  "
                                        f"p99 {lat['p99_ms']:.3f}  ({lat['throughput_ips']:.1f} img/s)"))
    mem = rep.get("memory")
    if mem and mem.get("peak_rss_mb") is not None:
        rows.append(("peak RSS", f"{mem['peak_rss_mb']:.0f} MB (+{mem['peak_over_before_mb']:.0f} MB)"))
    for who, acc in rep.get("accuracy", {}).items():
        if isinstance(acc, dict):
            n = acc["n"]
            rows.append((f"accuracy {who}", f"top-1 {share(acc['top1'], n)}  top-5 {share(acc['top5'], n)}  (n={n})"))
        else:
            rows.append((f"accuracy {who}", str(acc)))
    for file, ph in (rep.get("photos_top5") or {}).items():
        rows.append(("built-in photos", f"{file}: an accepted ImageNet class in the top 5 of {ph['hits']} of "
                                        f"{ph['labelled']} labelled photos"))
    from .gpu_rows import engine_rows

    rows += engine_rows(rep)
    ag = rep.get("agreement")
    if ag:
        rows.append(("agreement", f"top-1 {share(ag['top1_agreement'], ag.get('n'), 1)}  cosine "
                                  f"{ag['mean_cosine']:.5f}"))
    for r in (rep.get("formats") or {}).get("rows", []):
        from .formats import cells

        c = cells(r)
        rows.append((f"format {c[0]} {c[1]}", f"{c[2]}: {c[3]}, {c[4]} MB, agree {c[6]}, top-1 {c[7]}, {c[8]} ms"
                     + (f" ({c[9]})" if c[9] else "")))
    for note in rep.get("notes", []):
        rows.append(("note", note))
    return rows


def _cell(text: str) -> str:
    """A markdown table cell: a pipe in the text (``max |onnx - torch|``) escaped, not read as a column edge."""
    return text.replace("|", "\\|")


def to_markdown(rep: dict) -> str:
    lines = [f"# edgekit {rep['command']}: {rep.get('model', {}).get('name', '')}", "",
             "| metric | value |", "| --- | --- |"]
    lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in summary_rows(rep)]
    if rep.get("int8"):
        from ..quantize.explain import markdown

        lines += markdown(rep["int8"])
    if rep.get("formats"):
        from .formats import markdown as formats_markdown

        lines += formats_markdown(rep["formats"])
    env = rep.get("environment", {})
    if env:
        lines += ["", f"CPU: {env.get('cpu')} ({', '.join(env.get('isa', []))}), {env.get('cores')} cores; "
                      + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items()),
                  f"Written {rep['timestamp']}; all figures in report.json."]
    return "\n".join(lines) + "\n"


def print_table(rep: dict, console=None) -> None:
    from rich.table import Table

    from ..progress import stdout_console

    console = console or stdout_console()
    t = Table(title=f"edgekit {rep['command']}", show_header=True, header_style="bold")
    t.add_column("metric", style="cyan", no_wrap=True)
    t.add_column("value")
    for k, v in summary_rows(rep):
        t.add_row(k, v)
    console.print(t)

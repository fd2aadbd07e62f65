"""Memory and time of `edgekit profile --eval-data` and `edgekit export --int8 --eval-data` as the image count grows.

Each size is a folder of ImageNet class folders (wnids) holding symbolic links to edgekit's six labelled photos,
each resized once to 256 pixels on the short side (so a read costs what a 224x224 ImageNet validation image
costs), EfficientNet-Lite0 with its real ImageNet weights, and the real commands, one process each: the peak
resident memory of the main process (getrusage of the waited-for child) and of the whole process tree (polled every
0.2 s as the sum of proportional set sizes, PSS, of the main process and its decoding workers: forked workers
share most of their pages with it, which a sum of RSS would count once per worker), the wall time and images per
second. The export runs with
`--max-drop off`: the guard's decision does not change how the images are read (every trial reads the selection
half the same way), and on six repeated photos a one-photo flip is 17 points.

`--before DIR` runs the same commands with the edgekit of another checkout (a commit before streaming) for the
sizes up to `--before-max`, to show what streaming changed. `--finetune` instead fine-tunes a pruned MobileNetV2,
trained here on Fashion-MNIST (benchmarks/train_models.py, cached), on the full 60,000-image training set as PNG
class folders through the streaming loader, one epoch.

    python benchmarks/scale.py --sizes 500 5000 50000 --before /tmp/base --json benchmarks/results/scale.json
    python benchmarks/scale.py --finetune --json benchmarks/results/scale-finetune.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import emit

REPO = Path(__file__).resolve().parents[1]
LABELS = {"chelsea.jpg": 281, "china.jpg": 698, "coffee.jpg": 967, "flower.jpg": 985, "grace_hopper.jpg": 652,
          "rocket.jpg": 657}


def run_measured(cmd: list[str], env: dict, cwd: Path) -> dict:
    """Run ``cmd``; its wall time, exit code, the main process's peak RSS and the process tree's polled peak."""
    import psutil

    wrapper = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
               "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
               "sys.exit(rc)")
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", wrapper, *cmd], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    tree_peak = 0
    parent = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            procs = [parent] + parent.children(recursive=True)
            tree_peak = max(tree_peak, sum(p.memory_full_info().pss for p in procs if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.2)
    out, err = proc.communicate()
    wall = time.monotonic() - t0
    peak = next((int(ln.split()[1]) for ln in err.splitlines() if ln.startswith("PEAK_KB")), None)
    return {"rc": proc.returncode, "wall_s": wall, "peak_rss_mb": None if peak is None else peak / 1024,
            "peak_tree_pss_mb": tree_peak / 2**20, "stderr_tail": err[-600:] if proc.returncode else ""}


def photos(work: Path) -> Path:
    """The six labelled photos at 256 pixels on the short side, once."""
    from PIL import Image

    from edgekit.data.images import builtin_photos

    out = work / "photos256"
    out.mkdir(parents=True, exist_ok=True)
    for name in LABELS:
        target = out / name
        if not target.exists():
            with Image.open(builtin_photos() / name) as im:
                im = im.convert("RGB")
                s = 256 / min(im.size)
                im.resize((round(im.size[0] * s), round(im.size[1] * s)), Image.BILINEAR).save(target, quality=90)
    return out


def image_folder(work: Path, n: int) -> Path:
    """``n`` links to the photos in their ImageNet class folders, dealt in turn."""
    from edgekit.data.images import imagenet_wnids

    folder = work / f"images-{n}"
    if folder.exists() and sum(1 for _ in folder.rglob("*.jpg")) == n:
        return folder
    src = photos(work)
    wnid = {v: k for k, v in imagenet_wnids().items()}
    names = sorted(LABELS)
    for i in range(n):
        name = names[i % len(names)]
        d = folder / wnid[LABELS[name]]
        d.mkdir(parents=True, exist_ok=True)
        link = d / f"{i:06d}.jpg"
        if not link.exists():
            link.symlink_to(src / name)
    return folder


def scale(args) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    fp32 = work / "lite0" / "model.onnx"
    if not fp32.exists():
        r = run_measured(["edgekit", "export", "efficientnet_lite0", "--out", str(fp32.parent), "--force"], env, work)
        assert r["rc"] == 0, r["stderr_tail"]
    rows = []
    builds = [("this commit", env)]
    if args.before:
        builds.append(("before streaming", {**os.environ, "PYTHONPATH": str(Path(args.before).resolve())}))
    for n in args.sizes:
        folder = image_folder(work, n)
        for build, e in builds:
            if build != "this commit" and n > args.before_max:
                continue
            jobs = {"profile": ["edgekit", "profile", str(fp32), "--eval-data", str(folder), "--threads",
                                str(args.threads), "--repeats", "20", "--warmup", "5", "--force", "--out",
                                str(work / "out-profile")],
                    "export --int8": ["edgekit", "export", args.model, *_weights(args.model), "--int8",
                                      "--eval-data", str(folder), "--max-drop", "off", "--threads",
                                      str(args.threads), "--force", "--out", str(work / "out-export")]}
            for job in args.jobs:
                print(f"{build}: {job} on {n} images ...", flush=True)
                r = run_measured(jobs[job], e, work)
                rows.append({"build": build, "job": job, "images": n, "model": _model(job, args), **r,
                             "images_per_s": n / r["wall_s"] if r["rc"] == 0 else None})
                print(json.dumps(rows[-1]), flush=True)
    if args.append and Path(args.json).exists():  # rows of an earlier run (other sizes) stay, this run's replace theirs
        kept = [r for r in json.loads(Path(args.json).read_text())["rows"]
                if _key(r) not in {_key(x) for x in rows}]
        rows = sorted(kept + rows, key=lambda r: (r["build"] != "this commit", r["job"], _key(r)[2], r["images"]))
    for r in rows:
        r.setdefault("model", _key(r)[2])
    smallest = min(r["images"] for r in rows)
    base = {_key(r)[:3]: r["peak_rss_mb"] for r in rows if r["images"] == smallest}
    for r in rows:
        r["peak_over_smallest_mb"] = r["peak_rss_mb"] - base[_key(r)[:3]] \
            if r["peak_rss_mb"] is not None and base.get(_key(r)[:3]) is not None else None
    meta = _meta(args)
    if args.append and Path(args.json).exists():  # the conditions of the earlier runs whose rows stay
        old = json.loads(Path(args.json).read_text())["meta"]
        meta["earlier_runs"] = old.pop("earlier_runs", []) + [old]
    if args.note:
        meta["note"] = args.note
    emit("edgekit at scale: peak memory and time", rows,
         [("build", "build"), ("job", "job"), ("model", "model"), ("images", "images"), ("rc", "exit"),
          ("peak_rss_mb", "peak MB"),
          ("peak_over_smallest_mb", "over smallest MB"), ("peak_tree_pss_mb", "tree PSS peak MB"),
          ("wall_s", "wall s"), ("images_per_s", "images/s")], args.json, meta)


def finetune(args) -> None:
    """Prune MobileNetV2 (trained here on Fashion-MNIST) by 0.5 and fine-tune one epoch on all 60,000 training
    images, streamed; judged on the judge split."""
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    trained = work / "trained.json"
    r = run_measured([sys.executable, str(REPO / "benchmarks" / "train_models.py"), "--models", "mobilenet_v2",
                      "--epochs", "4", "--train-images", "20000", "--threads", str(args.threads), "--json",
                      str(trained), "--write-images", str(work / "fm")], env, work)
    assert r["rc"] == 0, r["stderr_tail"]
    weights = json.loads(trained.read_text())["rows"][0]["weights"]
    train60k = work / "fm-train60k"
    if not train60k.exists():
        _write_train(train60k)
    cmd = ["edgekit", "prune", "mobilenet_v2", "--weights", weights, "--ratio", "0.5", "--finetune-data",
           str(train60k), "--eval-data", str(work / "fm" / "judge"), "--epochs", "1", "--augment", "flip",
           "--input-size", "64", "--resize-size", "64", "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5",
           "--threads", str(args.threads), "--force", "--out", str(work / "out-prune")]
    r = run_measured(cmd, env, work)
    rep = json.loads((work / "out-prune" / "report.json").read_text()) if r["rc"] == 0 else {}
    st = rep.get("stages", {})
    row = {"job": "prune 0.5 + fine-tune 1 epoch", "finetune_images": 60000, **r,
           "images_per_s": 60000 / r["wall_s"] if r["rc"] == 0 else None,
           **{f"top1_{k}": st[k]["quality"]["top1"] for k in ("unpruned", "pruned", "finetuned") if k in st},
           "augmentation": rep.get("finetune", {}).get("augmentation"),
           "reads": rep.get("finetune", {}).get("reads")}
    emit("fine-tuning on the full Fashion-MNIST training set, streamed", [row],
         [("job", "job"), ("finetune_images", "images"), ("rc", "exit"), ("peak_rss_mb", "peak MB"),
          ("peak_tree_pss_mb", "tree PSS peak MB"), ("wall_s", "wall s"), ("images_per_s", "images/s"),
          ("top1_unpruned", "unpruned %"), ("top1_pruned", "pruned %"), ("top1_finetuned", "fine-tuned %")],
         args.json, _meta(args))


def _write_train(folder: Path) -> None:
    from PIL import Image
    from train_models import DATA, read_idx

    x, y = read_idx(DATA, "train")
    for i, (img, label) in enumerate(zip(x, y)):
        d = folder / str(int(label))
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, mode="L").save(d / f"{i:05d}.png")


def _model(job: str, args) -> str:
    return "efficientnet_lite0 (its ImageNet weights, model.onnx)" if job == "profile" else \
        f"{args.model} ({_weights(args.model)[1] if _weights(args.model) else 'its ImageNet weights'})"


def _weights(model: str) -> list[str]:
    """Lite0 has real weights; another zoo model runs with random ones (memory and time only, no accuracy)."""
    return [] if model == "efficientnet_lite0" else ["--weights", "random"]


def _key(r: dict) -> tuple:
    """A row's identity: (build, job, model, images); rows written before the model column are Lite0's."""
    return (r["build"], r["job"], r.get("model", _LITE0[r["job"]]), r["images"])


_LITE0 = {"profile": "efficientnet_lite0 (its ImageNet weights, model.onnx)",
          "export --int8": "efficientnet_lite0 (its ImageNet weights)"}


def _meta(args) -> dict:
    import platform

    import torch

    from edgekit.cpuinfo import cpu_info

    return {"argv": sys.argv[1:], "cpu": cpu_info()[0], "cores": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version(), "when": time.strftime("%Y-%m-%d %H:%M:%S")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 5000, 50000])
    ap.add_argument("--jobs", nargs="+", default=["profile", "export --int8"])
    ap.add_argument("--before", help="a checkout of edgekit before streaming, run on the sizes up to --before-max")
    ap.add_argument("--before-max", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="efficientnet_lite0", help="the zoo model of the export job")
    ap.add_argument("--work", default="/tmp/edgekit-scale")
    ap.add_argument("--finetune", action="store_true")
    ap.add_argument("--append", action="store_true", help="keep the rows of --json for the sizes not run now")
    ap.add_argument("--note", help="the conditions of this run, kept in the JSON's meta")
    ap.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "scale.json"))
    args = ap.parse_args()
    finetune(args) if args.finetune else scale(args)


if __name__ == "__main__":
    main()

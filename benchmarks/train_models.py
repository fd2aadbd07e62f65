"""Train the five benchmark families on Fashion-MNIST, once, so the benchmarks can judge INT8, pruning and mixed
precision on trained weights (on random stand-ins INT8 loses 36-79 points of top-1 agreement on the depthwise
families, peers.json).

One resolution for every family: 64x64 RGB (the 28x28 grey images upscaled by edgekit's own preprocessing,
bilinear, mean = std = 0.5), which is what the trained weights expect from `edgekit ... --input-size 64
--resize-size 64 --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5`. Splits, disjoint and the same for every tool:

- train:     Fashion-MNIST train images 0-49999 (what this script trains on)
- finetune:  train images 50000-59999 (pruning fine-tuning; never trained on here)
- selection: test images 0-4999 (what a tool may choose its artifact on)
- judge:     test images 5000-9999 (what every tool is judged on; the accuracy reported here)

`--train-images N` trains on the first N images of the train split only (a smaller CPU budget) while both
evaluation splits stay whole; `--subset N` (smoke runs) cuts every split, judge included.

Weights are cached outside the repository (default ~/.cache/edgekit-bench) under a hash of everything they depend
on (family, resolution, epochs, seed, train images, data files, this script's recipe), so the cost is paid once and
never in CI. Training is seeded and single-process, but float results depend on the CPU, the thread count and the
torch version: another machine may train different weights under the same hash, which is why each row records the
weights file's sha256 (and a sidecar JSON next to the weights keeps the original train time and digest).
`--write-images DIR` also writes the three evaluation splits as PNG class folders for edgekit's commands.

    python benchmarks/train_models.py --epochs 4 --train-images 20000 --threads 1 \
        --json benchmarks/results/trained.json          # ~23 min of one core here (benchmarks/results/trained.json)
    python benchmarks/train_models.py --models squeezenet1_1 --epochs 1 --subset 512   # smoke run
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import time
from pathlib import Path

import numpy as np

MODELS = ["squeezenet1_1", "mobilenet_v2", "mobilenet_v3_small", "shufflenet_v2_x1_0", "efficientnet_b0"]
RESOLUTION = 64
SPLITS = {"train": ("train", 0, 50000), "finetune": ("train", 50000, 60000), "selection": ("t10k", 0, 5000),
          "judge": ("t10k", 5000, 10000)}
RECIPE = {"optimizer": "AdamW", "lr": 2e-3, "weight_decay": 5e-4, "schedule": "OneCycle", "batch": 128,
          "augment": "random horizontal flip", "mean": 0.5, "std": 0.5, "version": 1}


def _default_data() -> Path:
    """The team's ../shared/data/fashion-mnist, looked for above the script (a git worktree sits one level deeper
    than the main checkout); $EDGEKIT_SHARED overrides, as in the other benchmarks."""
    import os

    if os.environ.get("EDGEKIT_SHARED"):
        return Path(os.environ["EDGEKIT_SHARED"]) / "data" / "fashion-mnist"
    here = Path(__file__).resolve()
    for parent in here.parents[1:]:
        if (parent / "shared" / "data" / "fashion-mnist").is_dir():
            return parent / "shared" / "data" / "fashion-mnist"
    return here.parents[2] / "shared" / "data" / "fashion-mnist"


DATA = _default_data()


def read_idx(folder: Path, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels int64) of ``kind`` ("train" or "t10k") from the IDX files."""
    img = folder / f"{kind}-images-idx3-ubyte.gz"
    lab = folder / f"{kind}-labels-idx1-ubyte.gz"
    for f in (img, lab):
        if not f.exists():
            raise SystemExit(f"{f} not found: pass --data with the Fashion-MNIST IDX folder "
                             "(apt-get install dataset-fashion-mnist puts it in /usr/share/datasets/fashion-mnist)")
    x = np.frombuffer(gzip.open(img).read(), np.uint8, offset=16).reshape(-1, 28, 28)
    y = np.frombuffer(gzip.open(lab).read(), np.uint8, offset=8).astype(np.int64)
    return x, y


def split(folder: Path, name: str, subset: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    kind, a, b = SPLITS[name]
    x, y = read_idx(folder, kind)
    b = b if subset is None else min(b, a + subset)
    return x[a:b], y[a:b]


def prepared_split(folder: Path, name: str, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images of a split, preprocessed as edgekit does, and their labels."""
    x, y = split(folder, name, n)
    return prepared(x), y


def preprocess():
    from edgekit.models.preprocess import Preprocess

    return Preprocess(RESOLUTION, RESOLUTION, "bilinear", (0.5,) * 3, (0.5,) * 3)


def prepared(images: np.ndarray) -> np.ndarray:
    """edgekit's own preprocessing of each image (so training sees what edgekit will feed)."""
    from PIL import Image

    pre = preprocess()
    return np.stack([pre(Image.fromarray(im).convert("RGB")) for im in images])


def weights_key(name: str, epochs: int, seed: int, subset: int | None, folder: Path,
                train_images: int | None = None) -> str:
    data = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.glob("*-ubyte.gz"))}
    fields = {"model": name, "resolution": RESOLUTION, "epochs": epochs, "seed": seed, "subset": subset,
              "train_images": train_images, "splits": SPLITS, "recipe": RECIPE, "data": data}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def train(name: str, x: np.ndarray, y: np.ndarray, epochs: int, seed: int):
    import torch

    from edgekit.models.registry import get_card

    torch.manual_seed(seed)
    model = get_card(name).build(10)
    opt = torch.optim.AdamW(model.parameters(), lr=RECIPE["lr"], weight_decay=RECIPE["weight_decay"])
    bs = RECIPE["batch"]
    steps = epochs * ((len(x) + bs - 1) // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=RECIPE["lr"], total_steps=steps)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), bs):
            b = perm[i:i + bs]
            xb = xt[b]
            flip = torch.rand(len(b)) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            loss = torch.nn.functional.cross_entropy(model(xb), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def top1(model, x: np.ndarray, y: np.ndarray) -> float:
    import torch

    with torch.no_grad():
        pred = torch.cat([model(torch.from_numpy(x[i:i + 256])).argmax(1) for i in range(0, len(x), 256)])
    return float((pred.numpy() == y).mean() * 100.0)


def write_images(folder: Path, data: Path) -> None:
    """The finetune, selection and judge splits as PNG class folders (edgekit's --eval-data / --finetune-data)."""
    from PIL import Image

    for name in ("finetune", "selection", "judge"):
        x, y = split(data, name)
        offset = SPLITS[name][1]
        for i, (im, label) in enumerate(zip(x, y)):
            d = folder / name / str(label)
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(im).save(d / f"{SPLITS[name][0]}-{offset + i:05d}.png")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=MODELS)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--subset", type=int, default=None, help="train and judge on only this many images (smoke runs)")
    ap.add_argument("--train-images", type=int, default=None,
                    help="train on the first N train images only; selection and judge stay whole (5000 each)")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "edgekit-bench")
    ap.add_argument("--write-images", type=Path, default=None)
    ap.add_argument("--json", default="trained.json")
    args = ap.parse_args()

    import platform

    import torch

    if args.subset is not None and args.train_images is not None:
        ap.error("--subset (smoke runs) and --train-images do not combine")
    torch.set_num_threads(args.threads)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    xtr, ytr = split(args.data, "train", args.subset if args.train_images is None else args.train_images)
    xs, ys = split(args.data, "selection", args.subset)
    xj, yj = split(args.data, "judge", args.subset)
    xtr, xs, xj = prepared(xtr), prepared(xs), prepared(xj)
    rows = []
    for name in args.models:
        key = weights_key(name, args.epochs, args.seed, args.subset, args.data, args.train_images)
        path = args.cache_dir / f"{name}-{key}.pt"
        meta = path.with_suffix(".json")
        from edgekit.models.registry import get_card

        if path.exists():
            model = get_card(name).build(10)
            model.load_state_dict(torch.load(path, weights_only=True))
            model.eval()
            cached = True
            recorded = json.loads(meta.read_text()) if meta.exists() else {}
            train_s, train_cpu_s = recorded.get("train_s"), recorded.get("train_cpu_s")
        else:
            t0, c0 = time.time(), time.process_time()
            model = train(name, xtr, ytr, args.epochs, args.seed)
            train_s, train_cpu_s = round(time.time() - t0, 1), round(time.process_time() - c0, 1)
            tmp = path.with_suffix(".tmp")
            torch.save(model.state_dict(), tmp)
            tmp.rename(path)  # never a half-written cache entry
            cached = False
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if not cached:
            meta.write_text(json.dumps({"model": name, "key": key, "sha256": digest, "train_s": train_s,
                                        "train_cpu_s": train_cpu_s, "threads": args.threads,
                                        "torch": torch.__version__}, indent=2) + "\n")
        rows.append({"model": name, "weights": str(path), "key": key, "sha256": digest,
                     "size_bytes": path.stat().st_size, "cached": cached, "train_s": train_s,
                     "train_cpu_s": train_cpu_s,
                     "train_images": len(ytr), "epochs": args.epochs,
                     "judge_top1": round(top1(model, xj, yj), 2), "judge_images": len(yj),
                     "selection_top1": round(top1(model, xs, ys), 2), "selection_images": len(ys)})
        print(json.dumps(rows[-1]), flush=True)
    if args.write_images:
        write_images(args.write_images, args.data)
    env = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
           "cpu": _cpu_name(), "threads": args.threads}
    Path(args.json).write_text(json.dumps({"resolution": RESOLUTION, "splits": SPLITS, "recipe": RECIPE,
                                           "epochs": args.epochs, "seed": args.seed, "subset": args.subset,
                                           "train_images": args.train_images, "environment": env,
                                           "edgekit_flags": ["--input-size", str(RESOLUTION), "--resize-size",
                                                             str(RESOLUTION), "--mean", "0.5,0.5,0.5", "--std",
                                                             "0.5,0.5,0.5"], "rows": rows}, indent=2) + "\n")
    print(f"{'model':<20}{'train imgs':>11}{'epochs':>7}{'judge':>8}{'select':>8}{'train s':>9}  sha256")
    for r in rows:
        print(f"{r['model']:<20}{r['train_images']:>11}{r['epochs']:>7}{r['judge_top1']:>8.2f}"
              f"{r['selection_top1']:>8.2f}{r['train_s'] if r['train_s'] is not None else '-':>9}  {r['sha256'][:12]}")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

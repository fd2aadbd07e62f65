"""How much accuracy a pruned model gets back from edgekit's fine-tuning, epoch by epoch (issue #14).

The trained benchmark models of `train_models.py` (Fashion-MNIST, 64x64), pruned as `--optimize --finetune-data`
prunes them (L1, channels rounded to 16), fine-tuned by `edgekit.prune.finetune` (distillation from the unpruned
model) on the fine-tuning split (train images 50300-, or with --finetune-start 20000 the train images the teacher
never saw), scored after each epoch on the SELECTION images (test
0-999), never on the judge images. One row per (model, ratio, lr, epochs): the unpruned model's top-1, the pruned
model's before fine-tuning, and after each epoch.

    python benchmarks/finetune_recipe.py --models squeezenet1_1 --ratios 0.2 0.35 0.5 --lrs 0.001 0.003 \
        --epochs 8 --finetune-images 9000 --threads 1 --json benchmarks/results/finetune-recipe.json
"""

from __future__ import annotations

import copy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit, parser  # noqa: E402
from peers import SPLITS, TRAINED_PRE, fmnist_dir, trained_weights  # noqa: E402


def split_arrays(pre, kind: str, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    import gzip

    from PIL import Image

    folder = fmnist_dir()
    x = np.frombuffer(gzip.open(folder / f"{kind}-images-idx3-ubyte.gz").read(), np.uint8, offset=16)
    y = np.frombuffer(gzip.open(folder / f"{kind}-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    x = x.reshape(-1, 28, 28)[a:b]
    return np.stack([pre(Image.fromarray(i).convert("RGB")) for i in x]).astype(np.float32), y[a:b].astype(np.int64)


def top1(model, x: np.ndarray, y: np.ndarray) -> float:
    import torch

    with torch.no_grad():
        pred = np.concatenate([model(torch.from_numpy(x[i:i + 256])).argmax(1).numpy() for i in range(0, len(x), 256)])
    return 100.0 * float((pred == y).mean())


def main() -> None:
    ap = parser(__doc__, ["squeezenet1_1"], "finetune-recipe.json")
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.35])
    ap.add_argument("--lrs", type=float, nargs="+", default=[1e-3])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--importance", default="l1", help="l1 (what --optimize prunes with) or taylor (gradients of 64 "
                    "fine-tuning images)")
    ap.add_argument("--finetune-images", type=int, default=9000)
    ap.add_argument("--finetune-start", type=int, default=50300, help="first train image of the fine-tuning set: "
                    "50300 (the finetune split, after the 300 calibration images) or 20000 (train images "
                    "train_models.py left unused: it trained on 0-19999)")
    ap.add_argument("--select-images", type=int, default=1000)
    ap.add_argument("--weights-dir", default=str(Path.home() / ".cache" / "edgekit-bench"))
    args = ap.parse_args()

    import torch

    from edgekit.models.registry import get_card
    from edgekit.models.source import PreprocessOverrides, open_model
    from edgekit.prune.finetune import FinetuneConfig, finetune
    from edgekit.prune.plan import PruneConfig, prune
    from edgekit.report.document import environment

    torch.set_num_threads(args.threads)
    kind = SPLITS["finetune"][0]
    rows, used = [], {}
    for name in args.models:
        weights = trained_weights(name, Path(args.weights_dir))
        src = open_model(name, str(weights), 10, overrides=PreprocessOverrides(*TRAINED_PRE))
        xt, yt = split_arrays(src.preprocess, kind, args.finetune_start, args.finetune_start + args.finetune_images)
        xs, ys = split_arrays(src.preprocess, "t10k", 0, args.select_images)
        teacher = src.torch_model.eval()
        base = top1(teacher, xs, ys)
        used[name] = weights.name
        for ratio in args.ratios:
            for lr in args.lrs:
                student = copy.deepcopy(teacher)
                taylor = [(xt[i:i + 16], yt[i:i + 16]) for i in range(0, 64, 16)]
                prune(student, get_card(name), src.input_shape,
                      PruneConfig(ratio, importance=args.importance, round_to=16), taylor)
                before = top1(student.eval(), xs, ys)
                t0 = time.monotonic()
                with tempfile.TemporaryDirectory() as tmp:
                    h = finetune(student, teacher, xt, yt, FinetuneConfig(epochs=args.epochs, lr=lr), (xs, ys),
                                 Path(tmp) / "state.pt")
                curve = [round(e["held_out"], 2) for e in h["history"]]
                rows.append({"model": name, "ratio": ratio, "importance": args.importance, "lr": lr,
                             "epochs": args.epochs,
                             "finetune_images": f"train {args.finetune_start}-"
                                                f"{args.finetune_start + args.finetune_images - 1}", "unpruned": base,
                             "pruned": before, "best_epoch": h["best_epoch"], "after_best": curve[h["best_epoch"] - 1],
                             "drop": base - curve[h["best_epoch"] - 1], "per_epoch": curve,
                             "seconds": round(time.monotonic() - t0, 1)})
                print(rows[-1], flush=True)
    meta = {"environment": environment(args.threads), "weights": used, "images": (
        f"fine-tuning: Fashion-MNIST {kind} images {args.finetune_start}-"
        f"{args.finetune_start + args.finetune_images - 1}; scored on t10k "
        f"images 0-{args.select_images - 1} (the selection split; 1 image = {100 / args.select_images:g} point)"),
        "best_epoch": "chosen by edgekit's fine-tuning on every 10th fine-tuning image, as in --optimize"}
    emit("pruned + fine-tuned top-1 on the selection images", rows,
         [("model", "model"), ("ratio", "ratio"), ("importance", "importance"), ("lr", "lr"),
          ("unpruned", "unpruned %"), ("pruned", "pruned %"),
          ("after_best", "fine-tuned %"), ("drop", "drop"), ("best_epoch", "best epoch"), ("seconds", "s")],
         args.json, meta)


if __name__ == "__main__":
    main()

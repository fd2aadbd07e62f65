"""Real data for the tests: scikit-learn's handwritten digits as an image folder, and a model trained on it."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DIGITS_PRE = dict(crop_size=32, resize_size=32, interpolation="bilinear", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
DIGITS_FLAGS = ["--input-size", "32", "--resize-size", "32", "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5"]


def write_digits(root: Path, test_fraction: float = 0.2, seed: int = 0) -> tuple[Path, Path]:
    """Digits (8x8, grey, 0..16) as PNG files in class folders 0..9: a train and a held-out test split."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(d.target))
    n_test = int(len(order) * test_fraction)
    for split, idx in (("test", order[:n_test]), ("train", order[n_test:])):
        for i in idx:
            folder = root / split / str(d.target[i])
            folder.mkdir(parents=True, exist_ok=True)
            img = (d.images[i] * (255.0 / 16.0)).round().astype(np.uint8)
            Image.fromarray(img, mode="L").save(folder / f"{i:04d}.png")
    return root / "train", root / "test"


def train_digits_model(train_dir: Path, epochs: int = 12, seed: int = 0):
    """torchvision MobileNetV2 with 10 classes, trained on the digits folder through edgekit's own reader.

    Deterministic on one machine (seeded, one thread, deterministic kernels); across CPUs the float kernels
    differ, so the tests load the committed result (tests/assets/digits_mnv2.pt), not a fresh training."""
    import torch
    import torchvision

    from edgekit.data.images import load_array, scan
    from edgekit.models.preprocess import Preprocess

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(seed)
        x, y = load_array(scan(train_dir, num_classes=10), Preprocess(**DIGITS_PRE))
        x, y = torch.from_numpy(x), torch.from_numpy(y).long()
        model = torchvision.models.mobilenet_v2(num_classes=10)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
        steps = epochs * ((len(x) + 63) // 64)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
        order = torch.Generator().manual_seed(seed)
        t0 = time.time()
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(len(x), generator=order)
            for i in range(0, len(x), 64):
                b = perm[i:i + 64]
                loss = torch.nn.functional.cross_entropy(model(x[b]), y[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        return model.eval(), time.time() - t0
    finally:
        torch.use_deterministic_algorithms(False)
        torch.set_num_threads(threads)


def tiny_onnx_classifier(path: Path):
    """A conv, a depthwise conv and a Gemm over 8x8 inputs: every kind of node the quantizer treats apart."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "dw"),
             numpy_helper.from_array(rng.standard_normal((5, 4)).astype(np.float32), "fc"),
             numpy_helper.from_array(np.zeros(5, np.float32), "fcb")]
    nodes = [helper.make_node("Conv", ["input", "w1"], ["a"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["b"], name="relu"),
             helper.make_node("Conv", ["b", "dw"], ["c"], name="dwconv", group=4, pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["d"], name="gap"),
             helper.make_node("Flatten", ["d"], ["e"], name="flat"),
             helper.make_node("Gemm", ["e", "fc", "fcb"], ["logits"], name="fc", transB=1)]
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))


class FakeClock:
    """A monotonic clock a test moves by hand (``clock.t += 4``), for the --time-budget logic."""

    def __init__(self, t: float = 0.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def check_latency_choice(report: dict, max_drop: float) -> dict:
    """What `--optimize latency` may ship, read off its report: the fastest candidate within the budget (among the
    runoff's candidates, on their head-to-head figures, when there was a runoff), or a smaller file whose
    head-to-head rounds could not tell it from that one (a speed tie, said in a note). Returns the choice."""
    o, notes = report["optimize"], report["notes"]
    runoff = o["runoff"]
    ok = [c for c in o["candidates"] if c["budget_drop"] <= max_drop
          and (not runoff or c["name"] in runoff["candidates"])]
    fastest, ch = min(ok, key=lambda c: c["latency_ms"]), o["choice"]
    assert ch["budget_drop"] <= max_drop and (not runoff or runoff["fastest"] == fastest["name"])
    ties = runoff.get("speed_ties", {}) if runoff else {}
    if ch["name"] == fastest["name"]:
        assert all(c["size_bytes"] >= ch["size_bytes"] for c in ok if c["name"] in ties)
    else:  # a tie in speed, by the runoff's sign test, with a smaller file: named in the notes
        tie = ties[ch["name"]]
        assert ch["size_bytes"] < fastest["size_bytes"] and tie["p"] >= 0.05 and tie["ratio"] <= 1.05
        assert any(n.startswith(f"runoff: {ch['name']} ties it in speed") for n in notes), notes
    return ch


def near_black_images(folder: Path) -> Path:
    """Three near-black 8x8 images in ``folder`` (made here): INT8 ranges calibrated on them are far too narrow for
    real digits, so plain INT8 loses many points and the accuracy guard has work to do."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        Image.fromarray(np.full((8, 8), i * 20, np.uint8), "L").save(folder / f"b{i}.png")
    return folder

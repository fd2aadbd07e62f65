"""Rebuild tests/assets/digits_mnv2.pt, the trained model the tests load (`digits_model` fixture).

    PYTHONPATH=. python tests/assets/make_digits_model.py [--epochs 12]

Training is seeded, single-threaded and uses deterministic kernels, so one machine rebuilds the same
file; another CPU (other oneDNN/MKL kernels) may not, which is why the result is committed and checked
by its sha256 in tests/conftest.py. After a rebuild, put the printed sha256 into DIGITS_MODEL_SHA256
there and re-check the accuracy thresholds the tests assert (they are written against this file).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from helpers import DIGITS_PRE, train_digits_model, write_digits  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--out", type=Path, default=HERE / "digits_mnv2.pt")
    args = ap.parse_args()
    import numpy as np
    import torch

    from edgekit.data.images import load_array, scan
    from edgekit.models.preprocess import Preprocess

    with tempfile.TemporaryDirectory() as tmp:
        train, test = write_digits(Path(tmp))
        model, seconds = train_digits_model(train, epochs=args.epochs)
        x, y = load_array(scan(test, num_classes=10), Preprocess(**DIGITS_PRE))
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(1).numpy()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    args.out.write_bytes(buf.getvalue())
    digest = hashlib.sha256(buf.getvalue()).hexdigest()
    print(f"trained {args.epochs} epochs in {seconds:.0f} s; test top-1 {100 * np.mean(pred == y):.2f}% "
          f"({int(np.sum(pred == y))}/{len(y)}); wrote {args.out} ({len(buf.getvalue())} bytes)\nsha256 {digest}")


if __name__ == "__main__":
    main()

"""The mobile formats on the committed digits MobileNetV2 (tests/assets/digits_mnv2.pt; scikit-learn's digits,
359 labelled test images, calibration from the train split): every format's agreement with torch, accuracy and
latency here, and LiteRT/ExecuTorch INT8 with and without the accuracy guard judged by their own runtimes.

    python benchmarks/mobile.py --threads 2 --json benchmarks/results/mobile-digits.json

Three exports: `--format all --int8` calibrated on 256 train images (the normal case), and `--format tflite,pte
--int8` calibrated on three near-black images (ranges far too narrow: full INT8 loses many points) with the default
1-point budget and with `--max-drop off`. Each export's formats section is kept whole."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from helpers import DIGITS_FLAGS, write_digits  # noqa: E402


def run(args: list[str]) -> dict:
    from edgekit.cli import main

    sys.argv = ["edgekit", *map(str, args)]
    t0 = time.monotonic()
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = Path(args[args.index("--out") + 1])
    rep = json.loads((out / "report.json").read_text())
    return {"args": [str(a) for a in args], "exit": code, "seconds": round(time.monotonic() - t0, 1),
            "formats": rep["formats"], "onnx_int8": {k: rep.get("int8", {}).get(k) for k in ("drop", "within_budget")},
            "environment": rep["environment"]}


def main() -> None:
    import argparse

    from PIL import Image

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="benchmarks/results/mobile-digits.json")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edgekit-mobile-"))
    train, test = write_digits(work / "digits")
    blank = work / "blank"
    blank.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), i * 20, np.uint8), "L").save(blank / f"b{i}.png")
    base = ["export", "mobilenet_v2", "--weights", ROOT / "tests/assets/digits_mnv2.pt", "--eval-data", test,
            "--int8", "--threads", a.threads, *DIGITS_FLAGS]
    runs = {
        "all-formats-int8": run(base + ["--format", "all", "--calib-data", train, "--calib-size", "256",
                                        "--calib-cache", work / "c1.json", "--out", work / "all"]),
        "guard-default-budget": run(base + ["--format", "tflite,pte", "--calib-data", blank, "--calib-cache",
                                            work / "c2.json", "--out", work / "on"]),
        "guard-off": run(base + ["--format", "tflite,pte", "--calib-data", blank, "--max-drop", "off",
                                 "--calib-cache", work / "c3.json", "--out", work / "off"]),
    }
    Path(a.json).write_text(json.dumps({"meta": {"model": "digits MobileNetV2 (tests/assets/digits_mnv2.pt)",
                                                 "eval": "359 labelled digits test images", "doc": __doc__},
                                        "runs": runs}, indent=2, default=str) + "\n")
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()

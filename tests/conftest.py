from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import DIGITS_PRE, write_digits  # noqa: E402

DIGITS_MODEL = Path(__file__).parent / "assets" / "digits_mnv2.pt"  # made by tests/assets/make_digits_model.py
DIGITS_MODEL_SHA256 = "96e66d0f45f07395c45f811e461a76d0706bd1cc88231116f12adc25c914c381"


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """(train_dir, test_dir): scikit-learn's 1797 real handwritten digits as PNG class folders."""
    return write_digits(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="session")
def digits_model():
    """The committed MobileNetV2 trained on the digits train split: (state-dict path, module).

    A file, not a training run per session: training repeats bit for bit only on one kind of CPU, and the
    accuracy thresholds in the tests are written against these exact weights (97.21% top-1, 349 of 359)."""
    import torch
    import torchvision

    digest = hashlib.sha256(DIGITS_MODEL.read_bytes()).hexdigest() if DIGITS_MODEL.exists() else "missing"
    if digest != DIGITS_MODEL_SHA256:
        pytest.fail(f"{DIGITS_MODEL} has sha256 {digest}, not {DIGITS_MODEL_SHA256}: restore it from git "
                    "(git checkout / git lfs pull), or rebuild it with tests/assets/make_digits_model.py and "
                    "update DIGITS_MODEL_SHA256 in tests/conftest.py", pytrace=False)
    model = torchvision.models.mobilenet_v2(num_classes=10)
    model.load_state_dict(torch.load(DIGITS_MODEL, weights_only=True))
    return DIGITS_MODEL, model.eval()


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run the edgekit command in-process: returns (exit code, stdout, stderr)."""
    from edgekit.cli import main

    def run(*args):
        monkeypatch.setattr(sys, "argv", ["edgekit", *map(str, args)])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def digits_pre():
    from edgekit.models.preprocess import Preprocess

    return Preprocess(**DIGITS_PRE)

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import DIGITS_PRE, train_digits_model, write_digits  # noqa: E402


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """(train_dir, test_dir): scikit-learn's 1797 real handwritten digits as PNG class folders."""
    return write_digits(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="session")
def digits_model(digits, tmp_path_factory):
    """A MobileNetV2 trained on the digits train split once per session: (state-dict path, module)."""
    import torch

    model, _ = train_digits_model(digits[0], epochs=10)
    path = tmp_path_factory.mktemp("ckpt") / "digits_mnv2.pth"
    torch.save(model.state_dict(), path)
    return path, model


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
    from edgekit.preprocess import Preprocess

    return Preprocess(**DIGITS_PRE)

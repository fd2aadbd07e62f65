"""What a user sees when something is wrong: one line, a non-zero exit, nothing half-written."""

from __future__ import annotations

import json


def _error_line(err):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_unknown_model(cli, tmp_path):
    code, _, err = cli("export", "squeezenet2", "--weights", "random", "--out", tmp_path / "o")
    assert code == 2 and "Did you mean squeezenet" in _error_line(err)


def test_out_exists_needs_force(cli, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = cli("export", "squeezenet1_1", "--weights", "random", "--out", out)
    assert code == 2 and "--force" in _error_line(err)
    assert (out / "keep.txt").read_text() == "mine"
    code, _, err = cli("export", "squeezenet1_1", "--weights", "random", "--out", out, "--force")
    assert code == 0, err
    assert not (out / "keep.txt").exists() and (out / "model.onnx").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["o"]  # no temporary folder left beside it


def test_failed_run_leaves_nothing(cli, tmp_path, monkeypatch):
    import edgekit.pipeline.export

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(edgekit.pipeline.export, "check_tolerance", boom)  # verification, mid-run, staging in place
    code, _, err = cli("export", "squeezenet1_1", "--weights", "random", "--out", tmp_path / "o")
    assert code == 130 and "interrupted" in err
    assert list(tmp_path.iterdir()) == []


def test_corrupt_onnx(cli, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    code, _, err = cli("profile", bad, "--out", tmp_path / "p")
    assert code == 2 and "bad.onnx is not a valid ONNX model" in _error_line(err)
    code, _, err = cli("profile", tmp_path / "none.onnx")
    assert code == 2 and "not found" in _error_line(err)


def test_empty_eval_folder(cli, tmp_path):
    (tmp_path / "val").mkdir()
    code, _, err = cli("export", "squeezenet1_1", "--weights", "random", "--eval-data", tmp_path / "val",
                       "--out", tmp_path / "o")
    assert code == 2 and "holds no images" in _error_line(err) and not (tmp_path / "o").exists()


def test_backend_mismatch_and_missing_tensorrt(cli, tmp_path):
    code, _, err = cli("profile", "squeezenet1_1", "--weights", "random")
    assert code == 2 and "edgekit export squeezenet1_1" in _error_line(err)
    code, _, err = cli("profile", "x.onnx", "--backend", "torch")
    assert code == 2 and "torch backend runs zoo models" in _error_line(err)
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        code, _, err = cli("profile", "x.onnx", "--backend", "tensorrt", "--out", tmp_path / "t")
        assert code == 2 and "TensorRT is not installed: pip install 'tensorrt-cu12>=10'" in _error_line(err)


def test_user_onnx_without_metadata(cli, tmp_path):
    """A foreign ONNX file: accepted, simplified, verified against itself, assumptions stated."""
    import torch
    import torchvision

    m = torchvision.models.squeezenet1_1(num_classes=3).eval()
    torch.onnx.export(m, (torch.zeros(1, 3, 96, 96),), str(tmp_path / "mine.onnx"), dynamo=False,
                      input_names=["data"])
    code, out, err = cli("export", tmp_path / "mine.onnx", "--out", tmp_path / "o")
    assert code == 0, err
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    assert rep["model"]["num_classes"] == 3 and rep["input_shape"] == [1, 3, 96, 96]
    assert rep["verification"]["max_abs_diff"] < 1e-4
    assert any("assumed ImageNet preprocessing" in n for n in rep["notes"])
    code, _, err = cli("profile", tmp_path / "mine.onnx", "--input-size", "128", "--out", tmp_path / "p")
    assert code == 2 and "takes 96x96 images" in _error_line(err)


def test_bad_option_values(cli, tmp_path):
    code, _, err = cli("export", "squeezenet1_1", "--weights", "random", "--mean", "1,2", "--out", tmp_path / "o")
    assert code == 2 and "three comma-separated" in err
    code, _, err = cli("export", "squeezenet1_1", "--weights", "random", "--interpolation", "lanczos",
                       "--out", tmp_path / "o")
    assert code == 2 and "interpolation must be one of" in _error_line(err)

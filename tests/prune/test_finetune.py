"""The fine-tuner chooses its epoch on images it keeps apart, and reports the caller's images separately."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import edgekit.prune.finetune as ft


def test_selection_split():
    train, pick = ft.selection_split(1437)
    assert len(pick) == 144 and pick[:3] == [0, 10, 20] and not set(train) & set(pick)
    assert sorted(train + pick) == list(range(1437))
    assert ft.selection_split(99) == (list(range(99)), [])  # under 100 images: none to spare


def _tiny():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=4), torch.nn.Flatten(), torch.nn.Linear(4 * 64, 10))


def test_best_epoch_comes_from_the_selection_images(tmp_path, monkeypatch):
    """Selection scores peak at epoch 2, the reported held-out scores at epoch 3: epoch 2 is kept, and the
    held-out figures are reported as measured."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((200, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, 200)
    held_out = (x[:50], y[:50])
    scripted = {"selection": itertools.cycle([60.0, 90.0, 70.0]), "held_out": itertools.cycle([95.0, 50.0, 99.0])}
    sizes = []

    def fake_score(student, teacher, data, device):
        sizes.append(len(data[0]))
        return next(scripted["held_out" if data is held_out else "selection"])

    monkeypatch.setattr(ft, "_score", fake_score)
    teacher = _tiny().eval()
    student = _tiny()
    res = ft.finetune(student, teacher, x, y, ft.FinetuneConfig(epochs=3, batch_size=64), held_out,
                      tmp_path / "state.pt")
    assert sizes == [20, 50] * 3  # every 10th of the 200 fine-tuning images, then the caller's 50
    assert res["best_epoch"] == 2 and res["best_score"] == 90.0
    assert [h["held_out"] for h in res["history"]] == [95.0, 50.0, 99.0]
    assert res["selection"]["images"] == 20 and "not the evaluation images" in res["selection"]["rule"]


def test_too_few_images_keep_the_last_epoch(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, 40)
    teacher = _tiny().eval()
    res = ft.finetune(_tiny(), teacher, x, y, ft.FinetuneConfig(epochs=2, batch_size=16), (x[:8], y[:8]),
                      tmp_path / "state.pt")
    assert res["best_epoch"] == 2 and res["best_score"] is None and res["selection"]["images"] == 0
    assert [h["selection"] for h in res["history"]] == [None, None]
    with pytest.raises(ft.EdgekitError, match="--epochs 0"):
        ft.FinetuneConfig(epochs=0)


def test_a_last_batch_of_one_image_is_left_out(tmp_path):
    """BatchNorm cannot train on one image: 111 fine-tuning images (99 trained on) at 14 a step take 7 steps."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((111, 3, 8, 8)).astype(np.float32), rng.integers(0, 10, 111)

    def bn_net():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                                   torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.Linear(4, 10))

    res = ft.finetune(bn_net(), bn_net().eval(), x, y, ft.FinetuneConfig(epochs=1, batch_size=14), None,
                      tmp_path / "state.pt")
    assert res["world_size"] == 1 and res["selection"]["images"] == 12
    assert torch.load(tmp_path / "state.pt", weights_only=True)["scheduler"]["last_epoch"] == 7

"""The fine-tuner chooses its epoch on images it keeps apart, and reports the caller's images separately."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import edgekit.prune.finetune as ft
from edgekit.data.train import ArrayImages


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
    held_out = ArrayImages(x[:50], y[:50])
    scripted = {"selection": itertools.cycle([60.0, 90.0, 70.0]), "held_out": itertools.cycle([95.0, 50.0, 99.0])}
    sizes = []

    def fake_score(student, teacher, data, device, rank, world):
        sizes.append(len(data))
        return next(scripted["held_out" if data is held_out else "selection"]), 100.0

    monkeypatch.setattr(ft, "_score", fake_score)
    teacher = _tiny().eval()
    student = _tiny()
    res = ft.finetune(student, teacher, ArrayImages(x, y), ft.FinetuneConfig(epochs=3, batch_size=64), held_out,
                      tmp_path / "state.pt")
    assert sizes == [20, 50] * 3  # every 10th of the 200 fine-tuning images, then the caller's 50
    assert res["best_epoch"] == 2 and res["best_score"] == 90.0
    assert [h["held_out"] for h in res["history"]] == [95.0, 50.0, 99.0]
    assert res["selection"]["images"] == 20 and "not the evaluation images" in res["selection"]["rule"]


def test_too_few_images_keep_the_last_epoch(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, 40)
    teacher = _tiny().eval()
    res = ft.finetune(_tiny(), teacher, ArrayImages(x, y), ft.FinetuneConfig(epochs=2, batch_size=16),
                      ArrayImages(x[:8], y[:8]),
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

    res = ft.finetune(bn_net(), bn_net().eval(), ArrayImages(x, y), ft.FinetuneConfig(epochs=1, batch_size=14), None,
                      tmp_path / "state.pt")
    assert res["world_size"] == 1 and res["selection"]["images"] == 12
    assert torch.load(tmp_path / "state.pt", weights_only=True)["scheduler"]["last_epoch"] == 7


def _digits_train(digits, digits_pre, n=100, augment="crop-flip"):
    from edgekit.data.images import scan
    from edgekit.data.stream import ImageStream
    from edgekit.data.train import Augment, TrainImages

    images = scan(digits[0], num_classes=10)
    return TrainImages(ImageStream(images, digits_pre).subset(range(0, 7 * n, 7)), Augment(augment))


def test_augmentation_is_seeded_per_image_not_per_worker(digits, digits_pre, monkeypatch):
    """The crop and flip of an image depend on (seed, epoch, image) only: decoding workers give the batches of
    decoding here, another epoch gives other crops, and `none` gives the evaluation preprocessing."""
    train = _digits_train(digits, digits_pre, 80)
    order = list(range(80))[::-1]

    def read(epoch, workers, data=train):
        monkeypatch.setenv("EDGEKIT_WORKERS", str(workers))
        return torch.cat([x for x, _ in data.train_batches(order, 16, (0, epoch))])

    here, workers = read(0, 0), read(0, 2)
    assert torch.equal(here, workers) and here.shape == (80, 3, 32, 32)
    assert not torch.equal(here, read(1, 0))
    plain = read(0, 0, _digits_train(digits, digits_pre, 80, "none"))
    np.testing.assert_array_equal(plain.numpy(), train.stream.subset(order).array()[0])
    assert not torch.equal(here, plain)
    labels = torch.cat([y for _, y in train.train_batches(order, 16, (0, 0))])
    np.testing.assert_array_equal(labels.numpy(), train.stream.labels[order])


def test_a_fine_tuning_stopped_mid_epoch_resumes_to_the_same_weights(digits, digits_model, digits_pre, tmp_path,
                                                                     monkeypatch):
    """State saved every step (CHECKPOINT_S = 0), a stop in the middle of the first epoch, a second call: the
    weights, the history and the images read are those of a run that was never stopped (the sampler's order, the
    augmentation, the learning-rate schedule and the random state all pick up where they were)."""
    def net():  # BatchNorm's running statistics and dropout's random masks are state to resume too
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                   torch.nn.Dropout(0.2), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
                                   torch.nn.Linear(32, 10))

    teacher = digits_model[1]
    cfg = ft.FinetuneConfig(epochs=2, batch_size=20, lr=3e-3)
    monkeypatch.setattr(ft, "CHECKPOINT_S", 0.0)
    train = _digits_train(digits, digits_pre)
    whole = net()
    once = ft.finetune(whole, teacher, train, cfg, None, tmp_path / "once.pt")
    real_save, saves = ft._save_state, []

    def stop_after_four(path, state):
        real_save(path, state)
        saves.append((state["epoch"], state["step"]))
        if len(saves) == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(ft, "_save_state", stop_after_four)
    with pytest.raises(KeyboardInterrupt):
        ft.finetune(net(), teacher, train, cfg, None, tmp_path / "state.pt")
    assert saves[-1] == (0, 4)  # in the first epoch, after its fourth of 5 steps
    monkeypatch.setattr(ft, "_save_state", real_save)
    resumed = net()
    again = ft.finetune(resumed, teacher, train, cfg, None, tmp_path / "state.pt")
    assert again["history"] == once["history"] and again["best_epoch"] == once["best_epoch"]
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name

"""Every checkpoint form a user hands over, and every way it can be wrong."""

from __future__ import annotations

import pytest
import torch
import torchvision

from edgekit.errors import EdgekitError
from edgekit.models.registry import get_card
from edgekit.models.weights import load

CARD = get_card("squeezenet1_1")


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(1)
    m = torchvision.models.squeezenet1_1(num_classes=7).eval()
    return m, torch.randn(2, 3, 64, 64)


def _same(loaded, ref, x):
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), ref(x))


def test_state_dict_infers_classes(trained, tmp_path):
    m, x = trained
    torch.save(m.state_dict(), tmp_path / "sd.pth")
    got = load(CARD, str(tmp_path / "sd.pth"))
    assert got.num_classes == 7 and got.categories is None and len(got.sha256) == 64
    _same(got, m, x)


def test_checkpoint_dict_with_ddp_prefix_and_classes(trained, tmp_path):
    m, x = trained
    sd = {f"module.{k}": v for k, v in m.state_dict().items()}
    names = [f"c{i}" for i in range(7)]
    torch.save({"epoch": 3, "model_state_dict": sd, "classes": names}, tmp_path / "ck.pt")
    got = load(CARD, str(tmp_path / "ck.pt"))
    assert got.categories == names
    _same(got, m, x)


def test_torchscript(trained, tmp_path):
    m, x = trained
    torch.jit.script(m).save(str(tmp_path / "m.ts"))
    got = load(CARD, str(tmp_path / "m.ts"))
    assert got.num_classes == 7
    _same(got, m, x)


def test_pickled_model_needs_trust(trained, tmp_path):
    m, x = trained
    torch.save(m, tmp_path / "whole.pt")
    with pytest.raises(EdgekitError, match="unpickling runs code.*--trust-checkpoint"):
        load(CARD, str(tmp_path / "whole.pt"))
    got = load(CARD, str(tmp_path / "whole.pt"), trust_checkpoint=True)
    _same(got, m, x)


def test_num_classes_override_must_agree(trained, tmp_path):
    m, _ = trained
    torch.save(m.state_dict(), tmp_path / "sd.pth")
    assert load(CARD, str(tmp_path / "sd.pth"), num_classes=7).num_classes == 7
    with pytest.raises(EdgekitError, match="--num-classes 10 contradicts .*7 outputs"):
        load(CARD, str(tmp_path / "sd.pth"), num_classes=10)


def test_random_weights_and_classes():
    got = load(CARD, "random", num_classes=5)
    assert got.num_classes == 5 and not got.pretrained and got.categories is None
    assert load(CARD, "random").categories[0] == "tench"


@pytest.mark.parametrize("content,match", [
    (b"not a checkpoint", "not a readable checkpoint"),
    (b"", "is truncated or corrupt.*copy it again"),
])
def test_corrupt_files(tmp_path, content, match):
    (tmp_path / "bad.pth").write_bytes(content)
    with pytest.raises(EdgekitError, match=match):
        load(CARD, str(tmp_path / "bad.pth"))


def test_missing_and_mismatched(tmp_path):
    with pytest.raises(EdgekitError, match="not found.*--weights random"):
        load(CARD, str(tmp_path / "nope.pth"))
    torch.save(torchvision.models.mobilenet_v2(num_classes=4).state_dict(), tmp_path / "mnv2.pth")
    with pytest.raises(EdgekitError, match=r"does not fit squeezenet1_1: \d+ tensors missing.*another model"):
        load(CARD, str(tmp_path / "mnv2.pth"))
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    with pytest.raises(EdgekitError, match="no classifier.1.weight tensor"):
        load(CARD, str(tmp_path / "r18.pth"))
    torch.save({"optimizer": {"lr": 1}}, tmp_path / "opt.pth")
    with pytest.raises(EdgekitError, match="dict without a state dict"):
        load(CARD, str(tmp_path / "opt.pth"))


def test_imagenet_offline_names_cache_and_alternatives(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    import socket

    def no_network(*a, **k):
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    code, _, err = cli("export", "squeezenet", "--out", tmp_path / "o")
    assert code == 2
    line = [ln for ln in err.splitlines() if ln.startswith("error:")][0]
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "squeezenet1_1-b8a52dc0.pth") in err
    assert "--weights PATH" in line and "--weights random" in line
    assert not (tmp_path / "o").exists()

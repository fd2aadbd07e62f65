"""Cards checked against the real models, as torchvision's test_schema_meta_validation does."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.data.images import builtin_photos, load_image
from edgekit.errors import EdgekitError
from edgekit.models.registry import ALIASES, get_card, list_models, resolve_name


@pytest.mark.parametrize("name", list_models())
def test_card_matches_real_model(name):
    card = get_card(name)
    model = card.build(1000)
    sd = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == card.reference["params"]
    assert card.classifier in sd and sd[card.classifier].shape[0] == 1000
    # the classifier is the last layer with 1000 outputs
    last = [k for k, v in sd.items() if k.endswith("weight") and v.shape[0] == 1000][-1]
    assert last == card.classifier
    assert len(card.categories) == 1000 and card.categories[0] == "tench"
    acc5 = card.reference["acc5"]  # None where the authors publish none (EfficientNet-Lite)
    assert 0 < card.reference["acc1"] < (acc5 if acc5 is not None else 100) <= 100


@pytest.mark.parametrize("name", ["squeezenet1_1", "mobilenet_v2", "efficientnet_b0", "efficientnet_b3"])
def test_preprocess_equals_torchvision_preset(name):
    card = get_card(name)
    img = load_image(builtin_photos() / "chelsea.jpg")
    ours = card.preprocess(img)
    theirs = card.weights.transforms()(img).numpy()
    assert ours.shape == theirs.shape == (3, card.preprocess.crop_size, card.preprocess.crop_size)
    np.testing.assert_array_equal(ours, theirs)


def test_cards_carry_distinct_preprocessing():
    assert get_card("efficientnet_b0").preprocess.interpolation == "bicubic"
    assert get_card("efficientnet_b3").preprocess.crop_size == 300
    assert get_card("mobilenet_v2").preprocess.resize_size == 232


@pytest.mark.parametrize("alias,target", sorted(ALIASES.items()))
def test_aliases_resolve(alias, target):
    assert resolve_name(alias) == target and target in list_models()


def test_unknown_model_lists_close_names():
    with pytest.raises(EdgekitError, match=r"unknown model 'mobilnet_v2'.*Did you mean mobilenet_v2"):
        resolve_name("mobilnet_v2")
    with pytest.raises(EdgekitError, match="edgekit models"):
        resolve_name("yolo")


def test_models_command_lists_edge_models(cli):
    import json

    code, out, _ = cli("models", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and "vgg16" not in rows and rows["squeezenet1_1"]["aliases"] == ["squeezenet"]
    assert rows["mobilenet_v2"]["acc1"] == get_card("mobilenet_v2").reference["acc1"]
    code, out, _ = cli("models", "--all")
    assert code == 0 and "vgg16" in out and "squeezenet1_1" in out


def _has_se(model) -> bool:
    """torchvision's SqueezeExcitation, or the squeeze conv of lukemelas-style blocks (the EfficientNet-Lite
    package's code, whose Lite variants build none)."""
    return any(type(m).__name__ == "SqueezeExcitation" or hasattr(m, "_se_reduce") for m in model.modules())


@pytest.mark.parametrize("name", list_models())
def test_capabilities_match_real_model(name):
    """What the card says prune and --optimize may rely on, checked against the built network."""
    import torch
    import torchvision

    card = get_card(name)
    caps, model = card.capabilities, card.build(1000)
    mods = list(model.modules())
    assert caps.has_se == _has_se(model)
    depthwise = any(isinstance(m, torch.nn.Conv2d) and m.groups > 1 and m.in_channels == m.groups for m in mods)
    assert ("depthwise" in caps.int8_sensitive) == depthwise
    assert ("hardswish" in caps.int8_sensitive) == any(isinstance(m, torch.nn.Hardswish) for m in mods)
    silu = any(isinstance(m, torch.nn.SiLU) or "Swish" in type(m).__name__ for m in mods)
    assert ("silu" in caps.int8_sensitive) == silu
    # only ShuffleNetV2's channel shuffle needs the branch-by-branch pruner
    assert (caps.prune == "shufflenet") == isinstance(model, torchvision.models.ShuffleNetV2)
    if not caps.prunable:
        from edgekit.prune.plan import PruneConfig, prune

        with pytest.raises(EdgekitError, match=f"cannot be pruned safely: {caps.prune_refusal}"):
            prune(model, card, [1, 3, 64, 64], PruneConfig(0.3))

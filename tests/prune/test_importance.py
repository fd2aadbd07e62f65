"""Pruning importance: registered names (one line adds one) and Torch-Pruning Importance objects."""

from __future__ import annotations

import functools
import json

import pytest
import torch
import torch_pruning as tp

from edgekit.errors import EdgekitError
from edgekit.models.registry import get_card
from edgekit.prune import importance as importance_mod
from edgekit.prune.plan import PruneConfig, prune

SHAPE = [1, 3, 64, 64]


class InvertedL1(tp.importance.GroupMagnitudeImportance):
    """L1 upside down: the smallest channels score highest, so pruning keeps exactly what l1 removes."""

    def __call__(self, group):
        return -super().__call__(group)


@functools.lru_cache(maxsize=None)
def _kept_classifier_inputs(importance) -> frozenset[int]:
    """Which of the last conv's 1280 channels survive, read off the classifier's remaining weight columns."""
    card = get_card("mobilenet_v2")
    torch.manual_seed(0)
    model = card.build(10).eval()
    before = model.classifier[1].weight.detach().clone()
    plan = prune(model, card, SHAPE, PruneConfig(0.5, importance=importance))
    json.dumps(plan)  # the plan stays plain JSON whatever the importance is
    after = model.classifier[1].weight.detach()
    cols = {tuple(before[:, i].tolist()): i for i in range(before.shape[1])}
    kept = {cols[tuple(after[:, j].tolist())] for j in range(after.shape[1])}
    assert len(kept) == after.shape[1] == 640
    return frozenset(kept)


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setattr(importance_mod, "_IMPORTANCES", dict(importance_mod._IMPORTANCES))


def test_registered_importance_is_used(registry):
    importance_mod.register_importance("inverted-l1", lambda: InvertedL1(p=1))  # the one line
    assert "inverted-l1" in importance_mod.importance_names()
    l1, inverted = _kept_classifier_inputs("l1"), _kept_classifier_inputs("inverted-l1")
    assert not l1 & inverted  # at ratio 0.5 the inverted ranking keeps the other half
    with pytest.raises(ValueError, match="registered twice"):
        importance_mod.register_importance("inverted-l1", lambda: InvertedL1(p=1))


def test_torch_pruning_importance_object_works():
    obj = tp.importance.GroupMagnitudeImportance(p=1)
    assert _kept_classifier_inputs(obj) == _kept_classifier_inputs("l1")
    assert _kept_classifier_inputs(InvertedL1(p=1)) != _kept_classifier_inputs("l1")
    assert importance_mod.importance_label(obj).endswith("GroupMagnitudeImportance")
    assert importance_mod.needs_gradients(tp.importance.GroupTaylorImportance()) and not \
        importance_mod.needs_gradients(obj)
    with pytest.raises(EdgekitError, match="neither a registered name"):
        PruneConfig(0.3, importance=object())

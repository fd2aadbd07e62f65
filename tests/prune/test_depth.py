"""ShuffleNetV2 depth pruning: a stage's last repeated units removed, their shuffles folded into the next layer."""

from __future__ import annotations

import copy
import json

import numpy as np
import onnx
import pytest
import torch

from edgekit.errors import EdgekitError
from edgekit.models.registry import get_card
from edgekit.prune.plan import PruneConfig, prune, rebuild
from edgekit.prune.shufflenet import drop_units, shuffle_permutation, units_dropped

SHAPE = [1, 3, 64, 64]


def _model(name="shufflenet_v2_x1_0"):
    torch.manual_seed(0)
    model = get_card(name).build(10).eval()
    for mod in model.modules():  # non-trivial BN statistics, so a misplaced channel changes the output
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.5, 0.5)
    return model


def test_shuffle_permutation_is_channel_shuffle_applied_n_times():
    from torchvision.models.shufflenetv2 import channel_shuffle

    x = torch.randn(1, 24, 2, 2)
    y = x
    for times in range(4):
        torch.testing.assert_close(y, x[:, shuffle_permutation(24, times)], rtol=0, atol=0)
        y = channel_shuffle(y, 2)
    assert [units_dropped(n, 0.5) for n in (4, 8, 4)] == [2, 4, 2]  # half of 3, 7, 3 repeats, rounded half up
    assert [units_dropped(n, 0.25) for n in (4, 8, 4)] == [1, 2, 1] and units_dropped(4, 0.0) == 0


def test_dropped_units_become_their_identity_branch_exactly():
    """The cut model computes what the original does with the removed units' branch2 replaced by an identity:
    each removed unit leaves only its channel shuffle, and the shuffles live on in the next layer's weights."""
    model = _model()
    reference = copy.deepcopy(model)
    units = drop_units(model, 0.5)
    assert units == {"stage2": {"kept": 2, "of": 4}, "stage3": {"kept": 4, "of": 8}, "stage4": {"kept": 2, "of": 4}}
    for stage, spec in units.items():
        assert len(getattr(model, stage)) == spec["kept"]
        for unit in list(getattr(reference, stage))[spec["kept"]:]:
            unit.branch2 = torch.nn.Identity()
    x = torch.randn(2, *SHAPE[1:])
    with torch.no_grad():
        want, got, before = reference(x), model(x), _model()(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert (got - before).abs().max() > 1e-2  # and the cut does change the function: the test can tell


def test_depth_plan_exports_fewer_ops_and_rebuilds_bit_identically(tmp_path):
    import onnxruntime as ort

    from edgekit.graph.export import onnx_from_torch

    card = get_card("shufflenet_v2_x1_0")
    model = _model()
    onnx_from_torch(model, SHAPE, tmp_path / "base.onnx")
    plan = prune(model, card, SHAPE, PruneConfig(0.25, round_to=16, depth=0.5))
    assert plan["units"]["stage3"] == {"kept": 4, "of": 8} and plan["config"]["depth"] == 0.5
    assert plan["macs"]["after"] < 0.7 * plan["macs"]["before"]
    assert all(v["kept"] % 16 == 0 for v in plan["layers"].values())
    assert not any(n.startswith(("stage2.2", "stage3.4", "stage4.2")) for n in plan["layers"])
    onnx_from_torch(model, SHAPE, tmp_path / "deep.onnx")
    nodes = [len(onnx.load(str(tmp_path / f)).graph.node) for f in ("base.onnx", "deep.onnx")]
    assert nodes[1] < 0.6 * nodes[0], nodes  # 8 of 16 units: the small ops go with them
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x))
    sess = ort.InferenceSession(str(tmp_path / "deep.onnx"))
    np.testing.assert_allclose(sess.run(None, {sess.get_inputs()[0].name: x})[0], ref.numpy(), atol=1e-4, rtol=1e-3)
    rebuilt = rebuild(card.build(10).eval(), json.loads(json.dumps(plan)), card)
    rebuilt.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(torch.from_numpy(x)), ref, rtol=0, atol=0)


def test_depth_refusals(cli, tmp_path):
    card = get_card("mobilenet_v2")
    with pytest.raises(EdgekitError, match="--depth 0.5: removing units is built for ShuffleNetV2 only, not "
                                           "mobilenet_v2"):
        prune(card.build(10), card, SHAPE, PruneConfig(0.3, depth=0.5))
    with pytest.raises(EdgekitError, match=r"--depth 1 must lie in \[0, 1\)"):
        PruneConfig(0.3, depth=1.0)
    shuffle = get_card("shufflenet_v2_x1_0")
    plan = prune(shuffle.build(10), shuffle, SHAPE, PruneConfig(0.3, depth=0.5))
    with pytest.raises(EdgekitError, match="the plan removes units, which mobilenet_v2 cannot"):
        rebuild(card.build(10), {**plan, "base_model": "mobilenet_v2"}, card)
    wrong = {**plan, "units": {**plan["units"], "stage3": {"kept": 4, "of": 6}}}
    with pytest.raises(EdgekitError, match="the plan removes units of stage3 \\(6 units\\), which this model"):
        rebuild(shuffle.build(10), wrong, shuffle)
    code, _, err = cli("prune", "shufflenet_v2_x1_0", "--weights", "random", "--depth", "0.5", "--out",
                       tmp_path / "o")
    assert code == 2 and "--depth 0.5 removes units alongside --ratio's channels: pass --ratio too" in err
    assert not (tmp_path / "o").exists()
    code, _, err = cli("prune", "mobilenet_v2", "--weights", "random", "--ratio", "0.3", "--depth", "0.5", "--out",
                       tmp_path / "o")
    assert code == 2 and "--depth 0.5: removing units is built for ShuffleNetV2 only" in err
    assert not (tmp_path / "o").exists()

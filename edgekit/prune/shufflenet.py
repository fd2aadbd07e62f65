"""ShuffleNetV2 pruning: each block's branch2 inner width, so the channel split and shuffle stay as they are.

Torch-Pruning's dependency graph cannot follow the channel shuffle (a reshape-transpose-reshape interleaving the
two branches: ZeroDivisionError at ratio 0.5, round_to 8). Inside a block, though, branch2 is a plain chain:
1x1 conv -> BN -> ReLU -> 3x3 depthwise -> BN -> 1x1 conv -> BN -> ReLU. Its inner width (the first conv's outputs,
the depthwise channels, the last conv's inputs) touches nothing outside the branch, so each branch is pruned on
its own dependency graph while the branch outputs, and with them the split, the concat and the shuffle, keep
their widths. Plan entries name the branch's first conv and its depthwise conv, like the other families.
"""

from __future__ import annotations

from ..errors import EdgekitError


def _head(model):
    """The last 1x1 conv, the global mean and the classifier as one module: the conv's outputs reach only the
    classifier's inputs, so they prune like a branch's inner width (the classifier's outputs stay)."""
    import torch

    class Head(torch.nn.Sequential):
        def forward(self, x):
            return self[1](self[0](x).mean([2, 3]))

    return Head(model.conv5, model.fc)


def _branches(model) -> list[tuple[str, object, object]]:
    """(name of the first conv, chain, that conv) of every block's branch2 and of the head: the widths that move."""
    from torchvision.models.shufflenetv2 import InvertedResidual

    return ([(f"{n}.branch2.0", m.branch2, m.branch2[0]) for n, m in model.named_modules()
             if isinstance(m, InvertedResidual)] + [("conv5.0", _head(model), model.conv5[0])])


def _graph(chain, conv):
    import torch
    import torch_pruning as tp

    return tp.DependencyGraph().build_dependency(chain, torch.zeros(1, conv.in_channels, 8, 8))


def _keep(n: int, ratio: float, round_to: int | None) -> int:
    """Channels kept of ``n`` after removing ``ratio``, a multiple of ``round_to`` (at least one multiple)."""
    keep = n * (1.0 - ratio)
    if not round_to or round_to <= 1:
        return max(1, int(round(keep)))
    return min(n, max(round_to, int(round(keep / round_to)) * round_to))


def prune_branches(model, cfg, importance) -> None:
    """Remove the least important ``cfg.ratio`` of every branch2's inner channels (``importance``: a Torch-Pruning
    ``Importance`` scoring the group's channels)."""
    import torch
    import torch_pruning as tp

    if cfg.global_pruning:
        raise EdgekitError("--global does not apply to ShuffleNetV2: its branches are pruned block by block "
                           "to keep the channel split; drop --global")
    ratios = dict(cfg.layer_ratios)
    names = {n for n, _, _ in _branches(model)}
    unknown = [n for n in ratios if n not in names]
    if unknown:
        raise EdgekitError(f"--layer-ratio {unknown[0]}: ShuffleNetV2 prunes only each block's branch2.0 and "
                           f"conv5.0 (e.g. {sorted(names)[0]})")
    for name, chain, conv in _branches(model):
        n = conv.out_channels
        keep = _keep(n, ratios.get(name, cfg.ratio), cfg.round_to)
        if keep >= n:
            continue
        dg = _graph(chain, conv)
        group = dg.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=list(range(n)))
        with torch.no_grad():
            scores = importance(group)
        drop = sorted(torch.argsort(scores)[: n - keep].tolist())
        dg.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=drop).prune()


def rebuild_branches(model, layers: dict) -> None:
    """Cut every branch2 to the plan's inner width (its state dict fills the channels next)."""
    import torch_pruning as tp

    for name, chain, conv in _branches(model):
        spec = layers.get(name)
        if spec is None:
            continue
        n = conv.out_channels
        if n != spec["of"]:
            raise EdgekitError(f"layer {name} has {n} channels, the plan expects {spec['of']}: the plan is for "
                               "another variant of the model")
        if spec["kept"] < n:
            _graph(chain, conv).get_pruning_group(conv, tp.prune_conv_out_channels,
                                            idxs=list(range(spec["kept"], n))).prune()


# --- depth: fewer repeated units per stage ------------------------------------------------------------------
# At small inputs ShuffleNetV2's time goes to its many small ops (split, concat, the shuffle's reshape-transpose-
# reshape), which thinner branches do not remove. Dropping a stage's last repeated units does, and leaves
# torchvision's own architecture with smaller ``stages_repeats`` (depth scaling, as EfficientNet's repeats).

STAGES = ("stage2", "stage3", "stage4")


def _consumer(model, stage: str):
    """The module that reads a stage's output: the next stage's stride-2 unit, or conv5."""
    i = STAGES.index(stage)
    return getattr(model, STAGES[i + 1])[0] if i + 1 < len(STAGES) else model.conv5


def units_dropped(n_units: int, depth: float) -> int:
    """Repeated (stride-1) units removed from a stage of ``n_units``: ``depth`` of them, rounded half up; the
    stride-2 unit that changes the width always stays."""
    return int((n_units - 1) * depth + 0.5)


def shuffle_permutation(channels: int, times: int):
    """Indices ``q`` with ``channel_shuffle`` applied ``times`` times equal to ``x[:, q]``."""
    import torch

    half = channels // 2
    p = torch.arange(channels).view(2, half).t().reshape(-1)  # out[2c + g] = in[g * half + c]
    q = torch.arange(channels)
    for _ in range(times):
        q = q[p]
    return q


def _take_permuted_input(module, q) -> None:
    """Make ``module`` read ``x`` as it read ``x[:, q]`` before: permute the input channels of its first layers."""
    import torch

    def scatter(t, dim):
        out = torch.empty_like(t)
        index = [slice(None)] * t.dim()
        index[dim] = q
        out[tuple(index)] = t
        return out

    with torch.no_grad():
        if isinstance(module, torch.nn.Sequential):  # conv5: a 1x1 conv over all channels
            module[0].weight.copy_(scatter(module[0].weight, 1))
            return
        module.branch2[0].weight.copy_(scatter(module.branch2[0].weight, 1))
        dw, bn, pw = module.branch1[0], module.branch1[1], module.branch1[2]  # depthwise: channels move whole
        dw.weight.copy_(scatter(dw.weight, 0))
        for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
            t.copy_(scatter(t, 0))
        pw.weight.copy_(scatter(pw.weight, 1))


def drop_units(model, depth: float) -> dict[str, dict]:
    """Remove ``depth`` of every stage's repeated units, the last ones. Each removed unit is replaced by what it
    is with an identity branch, its channel shuffle, folded into the next layer's input weights: the thinner model
    starts as close to the original as a cut can, at no run-time cost. Returns {stage: {"kept", "of"}}."""
    units = {}
    for stage in STAGES:
        seq = getattr(model, stage)
        drop = units_dropped(len(seq), depth)
        units[stage] = {"kept": len(seq) - drop, "of": len(seq)}
        if not drop:
            continue
        channels = seq[0].branch2[-3].out_channels * 2  # the stage's width: both branches' outputs
        _take_permuted_input(_consumer(model, stage), shuffle_permutation(channels, drop))
        setattr(model, stage, seq[: len(seq) - drop])
    return units


def rebuild_units(model, units: dict) -> None:
    """Cut every stage to the plan's unit count (the state dict loaded next holds the folded weights)."""
    for stage, spec in units.items():
        seq = getattr(model, stage, None)
        if stage not in STAGES or seq is None or len(seq) != spec["of"]:
            raise EdgekitError(f"the plan removes units of {stage} ({spec['of']} units), which this model does not "
                               "have: the plan is for another variant of the model")
        setattr(model, stage, seq[: spec["kept"]])

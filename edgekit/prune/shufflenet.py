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

"""What a model family can do, on its card: how it prunes (or why not), and what INT8 must handle with care.

``edgekit prune`` and ``export --optimize`` read these instead of tables of their own, so adding a model is
one card; tests/test_zoo.py checks each card's capabilities against the real model.
"""

from __future__ import annotations

from dataclasses import dataclass

PRUNE_METHODS = ("channels", "shufflenet")
INT8_SENSITIVE_KINDS = ("depthwise", "hardswish", "silu")  # op kinds --exclude-ops can keep in float (with "se")


@dataclass(frozen=True)
class Capabilities:
    # "channels": Torch-Pruning's dependency graph; "shufflenet": branch by branch, keeping the channel split
    # (prune/shufflenet.py); None: not prunable, for ``prune_refusal``'s reason
    prune: str | None = "channels"
    prune_refusal: str = ""
    has_se: bool = False  # squeeze-and-excitation blocks (a pool, two 1x1 convs and a gating Mul)
    int8_sensitive: tuple[str, ...] = ()  # op kinds whose INT8 forms cost accuracy or CPU time

    def __post_init__(self) -> None:
        if self.prune is not None and self.prune not in PRUNE_METHODS:
            raise ValueError(f"prune must be one of {PRUNE_METHODS} or None, not {self.prune!r}")
        if self.prune is None and not self.prune_refusal:
            raise ValueError("a model that cannot be pruned says why (prune_refusal)")
        unknown = [k for k in self.int8_sensitive if k not in INT8_SENSITIVE_KINDS]
        if unknown:
            raise ValueError(f"unknown INT8-sensitive kinds {unknown}: choose from {INT8_SENSITIVE_KINDS}")

    @property
    def prunable(self) -> bool:
        return self.prune is not None

    @property
    def slow_int8_blocks(self) -> bool:
        """SE blocks or SiLU/hard-swish gates: their quantized forms are slow on CPU, so --optimize tries them
        in float."""
        return self.has_se or bool({"hardswish", "silu"} & set(self.int8_sensitive))

    def to_dict(self) -> dict:
        return {"prune": self.prune, "prune_refusal": self.prune_refusal or None, "has_se": self.has_se,
                "int8_sensitive": list(self.int8_sensitive)}


PLAIN = Capabilities()
DEPTHWISE = Capabilities(int8_sensitive=("depthwise",))

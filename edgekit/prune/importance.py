"""Channel importance for pruning: a registry of names, each a factory of a Torch-Pruning ``Importance``.

Adding one is one line, ``register_importance("mine", lambda: MyImportance())``; ``--importance mine`` then picks
it. ``PruneConfig(importance=...)`` also takes a Torch-Pruning ``Importance`` object directly (from Python).
Factories import Torch-Pruning when called, so registering costs nothing at ``import edgekit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import EdgekitError


@dataclass(frozen=True)
class ImportanceEntry:
    factory: Callable[[], object]  # () -> a Torch-Pruning Importance (called with a pruning group)
    needs_gradients: bool = False  # True: pruning first back-propagates real images (Taylor)


_IMPORTANCES: dict[str, ImportanceEntry] = {}


def register_importance(name: str, factory: Callable[[], object], needs_gradients: bool = False) -> None:
    """Make ``name`` an importance ``PruneConfig`` accepts; ``factory()`` returns a Torch-Pruning Importance."""
    if name in _IMPORTANCES:
        raise ValueError(f"importance {name} registered twice")
    _IMPORTANCES[name] = ImportanceEntry(factory, needs_gradients)


def importance_names() -> tuple[str, ...]:
    return tuple(_IMPORTANCES)


def _tp():
    import torch_pruning as tp

    return tp


register_importance("l1", lambda: _tp().importance.GroupMagnitudeImportance(p=1))
register_importance("l2", lambda: _tp().importance.GroupMagnitudeImportance(p=2))
register_importance("bn", lambda: _tp().importance.BNScaleImportance())
register_importance("taylor", lambda: _tp().importance.GroupTaylorImportance(), needs_gradients=True)


def check_importance(importance) -> None:
    """A registered name, or a Torch-Pruning ``Importance`` object; anything else is refused."""
    if isinstance(importance, str):
        if importance not in _IMPORTANCES:
            raise EdgekitError(f"unknown importance {importance!r}: choose one of {', '.join(_IMPORTANCES)} "
                               "(or register one with edgekit.prune.importance.register_importance)")
        return
    if not isinstance(importance, _tp().importance.Importance):
        raise EdgekitError(f"importance {importance!r} is neither a registered name ({', '.join(_IMPORTANCES)}) "
                           "nor a torch_pruning.importance.Importance")


def make_importance(importance):
    """The Torch-Pruning ``Importance`` to score channels with (a fresh one for a name; the object itself)."""
    check_importance(importance)
    return _IMPORTANCES[importance].factory() if isinstance(importance, str) else importance


def needs_gradients(importance) -> bool:
    """Whether scoring reads gradients, so the model must first see real images (a name's entry says; for an
    object, Torch-Pruning's Taylor importances do)."""
    if isinstance(importance, str):
        return _IMPORTANCES[importance].needs_gradients
    tp = _tp()
    return isinstance(importance, tp.importance.GroupTaylorImportance)


def importance_label(importance) -> str:
    """How the plan records it: the name, or the object's class for an Importance given directly."""
    return importance if isinstance(importance, str) else f"{type(importance).__module__}.{type(importance).__name__}"

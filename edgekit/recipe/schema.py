"""Strict YAML into typed dataclasses: an unknown key or a wrong type is an error naming file, line and key."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path

from ..errors import EdgekitError


def _node_to_python(node):
    import yaml

    return yaml.safe_load(yaml.serialize(node)) if node is not None else None


def load_yaml(path: str | Path, cls, text: str | None = None):
    """Parse ``path`` into an instance of dataclass ``cls``, checking every key and type."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text() if text is None else text
        node = yaml.compose(text)
    except OSError as exc:
        raise EdgekitError(f"cannot read {path} ({exc.strerror}): pass an existing YAML file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise EdgekitError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if node is None:
        raise EdgekitError(f"{path}: empty file; see recipes/ for examples")
    return _build(cls, node, path, "")


def _err(path: Path, node, key: str, msg: str) -> EdgekitError:
    line = node.start_mark.line + 1 if node is not None else 1
    return EdgekitError(f"{path}:{line}: {key or 'top level'}: {msg}")


def _build(cls, node, path: Path, prefix: str):
    import yaml

    if not isinstance(node, yaml.MappingNode):
        raise _err(path, node, prefix, f"expected a mapping of {cls.__name__} fields")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for knode, vnode in node.value:
        key = knode.value
        full = f"{prefix}.{key}" if prefix else key
        if key not in fields:
            import difflib

            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" (did you mean {close[0]}?)" if close else f" (known: {', '.join(fields)})"
            raise _err(path, knode, full, f"unknown key{hint}")
        values[key] = _convert(hints[key], vnode, path, full)
    missing = [n for n, f in fields.items() if n not in values and f.init and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise _err(path, node, prefix, f"missing required key {missing[0]}: add it (see recipes/ for examples)")
    try:
        return cls(**values)
    except EdgekitError as exc:
        raise _err(path, node, prefix, str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise _err(path, node, prefix, str(exc)) from None


def _convert(tp, node, path: Path, key: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        value = _node_to_python(node)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        last = None
        for a in inner:
            try:
                return _convert(a, node, path, key)
            except EdgekitError as exc:
                last = exc
        raise last
    if dataclasses.is_dataclass(tp):
        return _build(tp, node, path, key)
    value = _node_to_python(node)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise _err(path, node, key, f"expected a list, got {value!r}")
        return tuple(value) if origin is tuple else value
    if origin is dict:
        if not isinstance(value, dict):
            raise _err(path, node, key, f"expected a mapping, got {value!r}")
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            unit = re.fullmatch(r"\s*([-+]?\d+(?:\.\d+)?)\s*([A-Za-z%]+)\s*", value) if (
                tp in (int, float) and isinstance(value, str)) else None
            hint = f" (write {unit.group(1)}: the unit is in the key's name)" if unit else ""
            raise _err(path, node, key, f"expected {tp.__name__}, got {value!r}{hint}")
        return value
    return value


def to_plain(obj) -> dict:
    """A dataclass as nested plain data, None fields left out (for writing YAML)."""
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            v = to_plain(v)
            if not v:
                continue
        elif isinstance(v, tuple):
            v = list(v)
        if v is not None:
            out[f.name] = v
    return out

"""The one JSON codec of the data model: dataclasses to plain dictionaries and back.

Results, baselines and outcomes travel as JSON (results files, baseline files, xdist reports,
confirmation children). Every class of the data model is a dataclass; this module turns one
into plain values and back by its fields and type hints, so no class writes its own serializer.

A field may carry metadata: ``key`` (its name in the JSON, when the attribute is named
differently) and ``absent`` (its value when the JSON lacks the key, when that differs from the
field's default: data written before the field existed).
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from typing import Any, Dict, Mapping, Type, TypeVar

T = TypeVar("T")


def key_of(field: "dataclasses.Field[Any]") -> str:
    """The field's name in the JSON."""
    return str(field.metadata.get("key", field.name))


def to_dict(obj: Any) -> Dict[str, Any]:
    """A dataclass instance as a JSON-ready dictionary (tuples become lists)."""
    return {key_of(f): _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def from_dict(cls: Type[T], data: Mapping[str, Any]) -> T:
    """The inverse of :func:`to_dict`. Keys this version does not know are ignored; a missing
    required key raises TypeError, a value of the wrong shape TypeError or ValueError."""
    hints = typing.get_type_hints(cls)
    kwargs: Dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = key_of(f)
        if key in data:
            kwargs[f.name] = _build(hints[f.name], data[key])
        elif "absent" in f.metadata:
            kwargs[f.name] = copy.copy(f.metadata["absent"])
    return cls(**kwargs)


def _build(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:  # Optional[X]
        inner = [a for a in args if a is not type(None)]
        return _build(inner[0], value) if len(inner) == 1 else value
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise TypeError(f"expected an object for {hint.__name__}, got {type(value).__name__}")
        return from_dict(hint, value)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        item = args[0] if args else Any
        items = [_build(item, v) for v in value]
        if origin is tuple:
            return tuple(int(v) for v in items) if item is int else tuple(items)
        return items
    if origin is dict:
        return dict(value)
    return value

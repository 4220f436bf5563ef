"""Dataclass configs from what configs arrive as: the dataclass itself, a mapping (YAML, checkpoint
hyper-parameters), or None for the defaults. Unknown fields are named, with the valid ones."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def coerce_config(cls: type[T], value: Any, name: str, **defaults: Any) -> T:
    if value is None:
        return cls(**defaults)
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - fields)
        if unknown:
            raise ValueError(f"{name}: unknown setting(s) {unknown}; valid: {sorted(fields)}")
        return cls(**value)
    raise ValueError(f"{name}={value!r}; need a {cls.__name__} or a mapping of its fields")

"""Typed configuration records built from defaults and command-line overrides.

Run configs (:class:`poolvae.train.TrainConfig`) and evaluation settings
(:class:`poolvae.evaluate.EvalSettings`) are dataclasses whose every field has a typed default. Values
given as strings (``--set lr=1e-3``) are converted to the field's type; an unknown key or a value of
the wrong type is an error that names the valid keys, so a typo never silently does nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def _convert(key: str, value: Any, typ: type, what: str) -> Any:
    """One value converted to ``typ`` (from a string where needed), or a ValueError naming the key."""
    if isinstance(value, str) and typ is not str:
        if typ is bool:
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"{what} {key!r} expects a bool (true/false); got {value!r}")
            return value.lower() in ("true", "1")
        try:
            return typ(value)
        except ValueError:
            raise ValueError(f"{what} {key!r} expects {typ.__name__}; got {value!r}") from None
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ValueError(f"{what} {key!r} expects {typ.__name__}; got {type(value).__name__} {value!r}")
    return value


def typed(cls: type[T], values: dict[str, Any], what: str = "config key") -> T:
    """Build the dataclass ``cls`` from ``values``, type-checked against its defaults' types."""
    defaults = cls()
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown {what}(s) {unknown}; valid keys: {', '.join(known)}")
    return cls(**{k: _convert(k, v, type(getattr(defaults, k)), what) for k, v in values.items()})

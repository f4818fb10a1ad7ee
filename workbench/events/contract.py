"""The event contract: one frozen dataclass per payload, encoded to the JSON the audit log stores.

Why a contract: the audit log is read by the report, the TUI panes, `workbench audit export` and any
reviewer's own tooling, long after the code that wrote an entry changed. A payload declared once, here,
is the same for every producer and every reader, and a producer that drifts (a renamed field, a kind
nobody declared) fails the tests instead of leaving a record that no reader understands.

* `encode()` gives exactly the dict producers published before the contract existed (same field names,
  same values), so the canonical JSON and the hash of a new entry are what they always were. A field
  marked `omit` is left out while it holds its default, as producers left it out before.
* `decode()` never raises: it reads whatever a log holds (an older shape, a tampered entry, a plug-in's
  extra field), coerces each declared field to its type or falls back to its default, and ignores fields
  it does not declare. A payload whose shape changed has a `VERSION`; each field says `since` which
  version it exists, and `version_of(data)` tells which shape an entry was written in.

Which class belongs to which kind, and what the bus checks on every publish, is `workbench.events.declared`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar


# --- coercion: a log's value -> the field's type, or None when it cannot be read ---------------------
def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and "$bytes" in value:  # canonical JSON's form of bytes
        try:
            return base64.b64decode(str(value["$bytes"]), validate=False).decode("utf-8", "backslashreplace")
        except (binascii.Error, ValueError):
            return str(value["$bytes"])
    return str(value)


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _mapping(value: Any) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, Mapping) else None


def _items(value: Any) -> tuple[Any, ...] | None:
    return tuple(value) if isinstance(value, list | tuple) else None


def _raw(value: Any) -> Any:
    return value


# The same coercions, for consumers reading nested data (a stream summary, a file entry).
coerce_text, coerce_int, coerce_float, coerce_bool = _text, _integer, _number, _flag


# --- field declarations ---------------------------------------------------------------------------
def _field(coerce: Callable[[Any], Any], default: Any, *, required: bool, omit: bool, since: int,
           legacy: bool = False, factory: Callable[[], Any] | None = None) -> Any:
    # legacy: a field only older logs hold; decode reads it, a producer may no longer write it.
    metadata = {"coerce": coerce, "required": required, "omit": omit or legacy,
                "since": 0 if legacy else since, "legacy": legacy}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def text(default: str | None = "", *, required: bool = False, omit: bool = False, since: int = 1,
         legacy: bool = False) -> Any:
    """A string field (`default=None` makes it optional: `str | None`)."""
    return _field(_text, default, required=required, omit=omit, since=since, legacy=legacy)


def integer(default: int | None = None, *, required: bool = False, omit: bool = False, since: int = 1,
            legacy: bool = False) -> Any:
    return _field(_integer, default, required=required, omit=omit, since=since, legacy=legacy)


def number(default: float | None = None, *, required: bool = False, omit: bool = False, since: int = 1,
           legacy: bool = False) -> Any:
    return _field(_number, default, required=required, omit=omit, since=since, legacy=legacy)


def flag(default: bool | None = None, *, required: bool = False, omit: bool = False, since: int = 1,
         legacy: bool = False) -> Any:
    return _field(_flag, default, required=required, omit=omit, since=since, legacy=legacy)


def mapping(*, required: bool = False, omit: bool = False, since: int = 1, optional: bool = False) -> Any:
    """A JSON object field; `optional=True` defaults to None instead of an empty object."""
    if optional:
        return _field(_mapping, None, required=required, omit=omit, since=since)
    return _field(_mapping, None, required=required, omit=omit, since=since, factory=dict)


def items(*, required: bool = False, omit: bool = False, since: int = 1, legacy: bool = False) -> Any:
    """A JSON array field (a tuple in the dataclass, a list in the log)."""
    return _field(_items, (), required=required, omit=omit, since=since, legacy=legacy)


def anything(default: Any = None, *, required: bool = False, omit: bool = False, since: int = 1,
             legacy: bool = False) -> Any:
    """Any JSON value, kept as it is (an action's arguments, a plug-in's detail)."""
    return _field(_raw, default, required=required, omit=omit, since=since, legacy=legacy)


def _plain(value: Any) -> Any:
    """Tuples become lists and read-only mappings dicts, as the JSON the log stores them as."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, MappingProxyType):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


P = TypeVar("P", bound="Payload")


@dataclasses.dataclass(frozen=True, slots=True)
class Payload:
    """The base of every payload class. Subclasses set `KIND` (and `VERSION` when their shape changed)."""

    KIND: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1

    def encode(self) -> dict[str, Any]:
        """The canonical dict: what the audit log stores and what the bus publishes."""
        out: dict[str, Any] = {}
        for name, _, default, omit in _plan(type(self)):
            value = getattr(self, name)
            if omit and value == default:
                continue
            out[name] = _plain(value) if isinstance(value, tuple | list | dict | MappingProxyType) else value
        return out

    @classmethod
    def decode(cls: type[P], data: Mapping[str, Any] | None) -> P:
        """Read a payload of any version; never raises (see the module docstring)."""
        if not isinstance(data, Mapping):
            data = {}
        values: dict[str, Any] = {}
        for name, coerce, default, _ in _plan(cls):
            if name in data:
                coerced = coerce(data[name])
                if coerced is not None or default is None:
                    values[name] = coerced
        return cls(**values)

    @classmethod
    def field_names(cls) -> frozenset[str]:
        """The fields a producer may write (legacy fields, read from older logs only, are not among them)."""
        return _names(cls)

    @classmethod
    def required(cls) -> frozenset[str]:
        return _required(cls)

    @classmethod
    def version_of(cls, data: Mapping[str, Any]) -> int:
        """The shape `data` was written in: the newest version whose fields it holds, or 0 for the first,
        pre-contract shapes (a legacy field, and nothing newer than version 1)."""
        since = [f.metadata.get("since", 1) for f in dataclasses.fields(cls) if f.name in data]
        newest = max(since, default=1)
        return 0 if 0 in since and newest <= 1 else newest


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


# Worked out once per class: decode runs for every entry a report reads, check for every publish.
_NAMES: dict[type, frozenset[str]] = {}
_REQUIRED: dict[type, frozenset[str]] = {}
_PLANS: dict[type, tuple[tuple[str, Callable[[Any], Any], Any, bool], ...]] = {}


def _plan(cls: type) -> tuple[tuple[str, Callable[[Any], Any], Any, bool], ...]:
    """Each field's (name, coerce, default, omit)."""
    found = _PLANS.get(cls)
    if found is None:
        found = _PLANS[cls] = tuple((f.name, f.metadata.get("coerce", _raw), _default_of(f),
                                     bool(f.metadata.get("omit"))) for f in dataclasses.fields(cls))
    return found


def _names(cls: type) -> frozenset[str]:
    found = _NAMES.get(cls)
    if found is None:
        found = frozenset(f.name for f in dataclasses.fields(cls) if not f.metadata.get("legacy"))
        _NAMES[cls] = found
    return found


def _required(cls: type) -> frozenset[str]:
    found = _REQUIRED.get(cls)
    if found is None:
        found = frozenset(f.name for f in dataclasses.fields(cls) if f.metadata.get("required"))
        _REQUIRED[cls] = found
    return found

"""The declared event kinds: kind -> payload class, the check the bus runs, and kinds from plug-ins.

* `declare` (a class decorator) files a built-in payload class under its `KIND` in `PAYLOADS`, a
  `workbench.registry.Registry`. A third-party package declares its own kinds the same way through the
  `workbench.events` entry point group: the entry point names a payload class or a list of them. One that
  fails to import, is not a payload class or takes a kind already declared is one line in `problems()`,
  never an error for the rest of Workbench.
* `violation()` is what the bus runs on every publish: an undeclared kind, a field the payload does not
  declare or a required field missing. Strict (`WORKBENCH_STRICT_EVENTS=1`, the test suite) raises;
  otherwise the bus logs a warning and still publishes, because an audit entry is never dropped.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Mapping
from importlib import metadata
from typing import Any, TypeVar

from workbench.events.contract import Payload
from workbench.findings import Finding
from workbench.registry import Registry

log = logging.getLogger(__name__)

STRICT_ENV = "WORKBENCH_STRICT_EVENTS"
PLUGIN_GROUP = "workbench.events"

P = TypeVar("P", bound=Payload)


class EventContractError(ValueError):
    """A producer published an event the contract does not declare (strict mode only)."""


class Declared:
    """A registry item: the kind's name and its payload class (a `Registry` item has a `name`)."""

    __slots__ = ("name", "payload")

    def __init__(self, payload: type[Payload]):
        self.name = payload.KIND
        self.payload = payload


PAYLOADS: Registry[Declared] = Registry("event kind")  # plug-ins: `load_plugins` below, classes not parts
_BUILT_IN: dict[str, type[Payload]] = {}  # the hot path (every exec.output) skips the registry's lock
_PLUGGED: dict[str, type[Payload]] = {}
_plugins = {"loaded": False}
_plugin_lock = threading.Lock()


def declare(cls: type[P]) -> type[P]:
    """Class decorator: register a built-in payload class under its `KIND`."""
    if not cls.KIND:
        raise ValueError(f"{cls.__name__} has no KIND")
    PAYLOADS.register(Declared(cls))
    _BUILT_IN[cls.KIND] = cls
    return cls


def load_plugins() -> None:
    """Declare the kinds of the `workbench.events` entry points (once; later calls return at once)."""
    if _plugins["loaded"]:
        return
    with _plugin_lock:
        if _plugins["loaded"]:
            return
        _plugins["loaded"] = True
        try:
            found = sorted(metadata.entry_points(group=PLUGIN_GROUP), key=lambda ep: (ep.name, ep.value))
        except Exception as exc:  # a broken installed distribution must not take the contract down
            PAYLOADS.problem(f"the {PLUGIN_GROUP} plug-ins could not be listed: {type(exc).__name__}: {exc}")
            return
        for entry_point in found:
            _load_one(entry_point)


def _load_one(entry_point: metadata.EntryPoint) -> None:
    distribution = getattr(getattr(entry_point, "dist", None), "name", None) or "?"
    origin = f"plug-in {distribution} ({entry_point.name} = {entry_point.value})"
    try:
        loaded = entry_point.load()
    except Exception as exc:
        PAYLOADS.problem(f"{origin}: failed to load: {type(exc).__name__}: {' '.join(str(exc).split())}")
        log.warning("event plug-in %s failed to load", entry_point.value, exc_info=True)
        return
    for cls in loaded if isinstance(loaded, list | tuple) else [loaded]:
        if not (isinstance(cls, type) and issubclass(cls, Payload) and dataclasses.is_dataclass(cls)
                and isinstance(cls.KIND, str) and cls.KIND):
            PAYLOADS.problem(f"{origin}: {cls!r} is not a payload dataclass with a KIND; ignored")
            continue
        if cls.KIND in _BUILT_IN or cls.KIND in _PLUGGED:
            PAYLOADS.register(Declared(cls), origin=origin)  # records the duplicate as a problem line
            continue
        PAYLOADS.register(Declared(cls), origin=origin)
        _PLUGGED[cls.KIND] = cls


def payload_class(kind: str) -> type[Payload] | None:
    """The payload class of `kind`: a built-in, or one a `workbench.events` plug-in declares."""
    cls = _BUILT_IN.get(kind)
    if cls is not None:
        return cls
    load_plugins()
    return _PLUGGED.get(kind)


def declared_kinds() -> list[str]:
    load_plugins()
    return PAYLOADS.names()


def problems() -> list[str]:
    """One line per plug-in kind that could not be declared (doctor shows them)."""
    load_plugins()
    return PAYLOADS.problems


def version(kind: str) -> int:
    cls = payload_class(kind)
    return cls.VERSION if cls is not None else 0


def decode(kind: str, data: Mapping[str, Any] | None) -> Payload | None:
    """The typed payload of an event of `kind`, or None for a kind nobody declared."""
    cls = payload_class(kind)
    return cls.decode(data) if cls is not None else None


def typed(kind: str, data: Mapping[str, Any]) -> Payload | Mapping[str, Any]:
    """`data` as `kind`'s payload class when the contract declares every field in it; otherwise `data`
    itself, which the bus then refuses when strict and records with a warning otherwise: a producer whose
    dict comes from elsewhere (`ExecutionResult.to_payload`, a caller's details) never loses a field."""
    cls = payload_class(kind)
    if cls is None or not data.keys() <= cls.field_names():
        return data
    return cls(**data)


def violation(kind: str, data: Mapping[str, Any]) -> str | None:
    """What is wrong with publishing `data` as `kind` under the contract, in one line, or None."""
    cls = payload_class(kind)
    if cls is None:
        return f"event kind {kind!r} is not declared in workbench.events"
    names = cls.field_names()
    extra = [key for key in data if key not in names]
    if extra:
        return f"{kind} has no field{'s' if len(extra) > 1 else ''} {', '.join(map(repr, sorted(extra)))}"
    missing = [name for name in cls.required() if name not in data]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        return f"{kind} lacks the required field{plural} {', '.join(sorted(missing))}"
    return None


def strict() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes")


def check(settings: Any = None) -> list[Finding]:
    """What doctor shows of the event contract: the kinds declared, and each plug-in kind that was not."""
    kinds = declared_kinds()
    plugged = len(kinds) - len(_BUILT_IN)
    by_plugins = f" ({plugged} by plug-ins)" if plugged else ""
    found = [Finding("event kinds", "ok", f"{len(kinds)} declared{by_plugins}")]
    found += [Finding("event plug-in", "warn", line, "fix or uninstall the plug-in; its kind is not declared")
              for line in problems()]
    return found

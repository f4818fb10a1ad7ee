"""Registries: one place per kind of part, with built-ins registered the same way as plug-ins.

A kind of part (a language, a package manager, an agent tool) is declared once, in its `Registry`; the
agent's grammar and prompt, the TUI's pickers, the CLI's choices, doctor and the report ask the registry
instead of keeping their own lists. Adding a part is then one local change: a built-in module calls
`register`, a third-party package names an entry point, a project's config adds an entry.

Plug-ins are Python entry points in the registry's group (`workbench.languages`, `workbench.managers`,
`workbench.tools`). The entry point names an object that is either one part, a list of parts, or a
callable that returns either; each part has a `name`. They load lazily, on the first lookup, so a command
that never asks about languages never imports a plug-in.

A plug-in that fails to import, returns something without a name, or registers a name that is already
taken is not an error for the rest of Workbench: it becomes one line in `problems` (doctor prints them)
naming the plug-in and what is wrong, and everything else keeps working.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, TypeVar

from workbench.errors import UsageError

log = logging.getLogger(__name__)

T = TypeVar("T")

BUILT_IN = "built-in"


@dataclass(frozen=True, slots=True)
class Entry(Generic[T]):
    name: str
    item: T
    origin: str  # "built-in", "plug-in <distribution> (<entry point>)", "config [languages.node]"


class Registry(Generic[T]):
    """Named parts of one kind, in registration order (built-ins first, then plug-ins)."""

    def __init__(self, kind: str, group: str | None = None, *,
                 aliases: Callable[[T], Iterable[str]] | None = None):
        self.kind = kind  # "language", "package manager", "tool": used in messages
        self.group = group  # the entry point group, or None for no plug-ins
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}
        self._alias_of = aliases
        self._problems: list[str] = []
        self._plugins_loaded = group is None
        self._lock = threading.RLock()

    # --- registering ----------------------------------------------------------------------------
    def register(self, item: T, *, name: str | None = None, origin: str = BUILT_IN) -> T:
        """Add `item` under `name` (default: `item.name`). A built-in registering a taken name is a bug
        and raises; a plug-in or config entry doing so becomes a problem line and is ignored."""
        name = name or getattr(item, "name", None)
        with self._lock:
            problem = self._check_name(name, origin)
            if problem:
                if origin == BUILT_IN:
                    raise ValueError(problem)
                self._problems.append(problem)
                return item
            assert isinstance(name, str)
            self._entries[name] = Entry(name, item, origin)
            for alias in (self._alias_of(item) if self._alias_of else ()):
                if alias != name and alias not in self._entries and alias not in self._aliases:
                    self._aliases[alias] = name
            return item

    def _check_name(self, name: Any, origin: str) -> str | None:
        if not isinstance(name, str) or not name.strip():
            return f"{origin}: a {self.kind} without a name ({name!r}); ignored"
        if name in self._entries:
            return (f"{origin}: registers the {self.kind} {name!r}, which {self._entries[name].origin} "
                    f"already has; ignored")
        return None

    def problem(self, line: str) -> None:
        """Record a one-line problem found while adding parts (a broken config entry, say)."""
        with self._lock:
            self._problems.append(line)

    # --- plug-ins -------------------------------------------------------------------------------
    def load_plugins(self) -> None:
        """Load this registry's entry points (once)."""
        with self._lock:
            if self._plugins_loaded:
                return
            self._plugins_loaded = True
            try:
                found = sorted(metadata.entry_points(group=self.group), key=lambda ep: (ep.name, ep.value))
            except Exception as exc:  # a broken installed distribution must not take the registry down
                self._problems.append(f"the {self.group} plug-ins could not be listed: {type(exc).__name__}: {exc}")
                return
            for entry_point in found:
                self._load_one(entry_point)

    def _load_one(self, entry_point: metadata.EntryPoint) -> None:
        distribution = getattr(getattr(entry_point, "dist", None), "name", None) or "?"
        origin = f"plug-in {distribution} ({entry_point.name} = {entry_point.value})"
        try:
            loaded = entry_point.load()
            parts = loaded() if callable(loaded) and not hasattr(loaded, "name") else loaded
            parts = list(parts) if isinstance(parts, list | tuple) else [parts]
        except Exception as exc:
            self._problems.append(f"{origin}: failed to load: {type(exc).__name__}: {' '.join(str(exc).split())}")
            log.debug("plug-in %s failed to load", entry_point.value, exc_info=True)  # the traceback for --debug
            return
        for part in parts:
            self.register(part, origin=origin)

    # --- looking up -----------------------------------------------------------------------------
    def resolve(self, name: str) -> str | None:
        """The registered name for `name` or one of its aliases, else None."""
        self.load_plugins()
        if name in self._entries:
            return name
        return self._aliases.get(name)

    def get(self, name: str) -> T:
        """The part named `name` (or an alias of it); a UsageError naming the choices otherwise."""
        found = self.resolve(name)
        if found is None:
            raise UsageError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}")
        return self._entries[found].item

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.resolve(name) is not None

    def names(self) -> list[str]:
        self.load_plugins()
        return list(self._entries)

    def items(self) -> list[T]:
        self.load_plugins()
        return [entry.item for entry in self._entries.values()]

    def entries(self) -> list[Entry[T]]:
        self.load_plugins()
        return list(self._entries.values())

    def __iter__(self) -> Iterator[T]:
        return iter(self.items())

    def origin(self, name: str) -> str:
        found = self.resolve(name)
        return self._entries[found].origin if found else ""

    @property
    def problems(self) -> list[str]:
        self.load_plugins()
        return list(self._problems)

    def copy(self) -> Registry[T]:
        """A registry with the same parts, to which a project's config may add its own without touching
        this one (each project sees its own `[languages]`)."""
        self.load_plugins()
        with self._lock:
            other: Registry[T] = Registry(self.kind, None, aliases=self._alias_of)
            other._entries = dict(self._entries)
            other._aliases = dict(self._aliases)
            other._problems = list(self._problems)
            return other

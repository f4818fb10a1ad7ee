"""Restricted mode: the settings of an untrusted project may only tighten what the user's own allow.

Each key of the project's `.workbench/config.toml` is judged against the settings without it (defaults, the
user's config, the environment, flags). A value that lowers a limit, shortens a timeout or asks for more
approval is applied; anything that widens what code, installs or the model can reach or use is ignored and
named. Keys not listed here are ignored too: a new setting is widening until someone says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.config import Settings, load_settings, read_project_toml
from workbench.inert import one_line
from workbench.sandbox.policy import parse_size

Rule = Callable[[Any, Any], bool]  # (project's value, value without the project) -> applies


def _at_most(size: bool = False) -> Rule:
    return lambda new, old: (parse_size(new) if size else new) <= (parse_size(old) if size else old)


def _at_least(size: bool = False) -> Rule:
    return lambda new, old: (parse_size(new) if size else new) >= (parse_size(old) if size else old)


def _only(*values: Any) -> Rule:
    return lambda new, old: new == old or new in values


def _always(new: Any, old: Any) -> bool:
    return True


# section -> key -> rule; what is missing is ignored (widening: install sources, engine, model endpoints...)
TIGHTENING: dict[str, dict[str, Rule]] = {
    "sandbox": {"memory": _at_most(size=True), "cpus": _at_most(), "pids": _at_most(), "timeout": _at_most(),
                "output_cap": _at_most(), "workspace_quota": _at_most(size=True), "session_idle": _at_most(),
                "disk_floor": _at_least(size=True), "network": _only("none"), "runtime": _only("runsc"),
                "sql_database": _always},
    "agent": {"approval": _only("ask"), "approve_installs": _only("ask"), "max_steps": _at_most(),
              "max_tokens": _at_most(), "wall_clock": _at_most()},
    "model": {"context": _at_most(), "threads": _at_most(), "chat_format": _always},
    "audit": {"checkpoint_every": _at_most()},
    "memory": {"context_tokens": _at_most(), "keep_session_notes": _always},
    "ui": {"theme": _always},
}

# Sections ignored whole, with the reason named (a table of tables: there is nothing to compare key by key).
WIDENING: dict[str, str] = {
    # a language is a command line the project chooses, run with the user's trust (and apt packages it asks
    # the project image for): the user's own [languages] still apply
    "languages": "a language defined by the project runs a command of its choosing",
    # rules that let code reach APIs and databases (with the user's secrets): see workbench.network.rules
    "network": "network rules widen what code may reach",
}


def tighten(project_data: dict[str, Any], without: Settings, combined: Settings
            ) -> tuple[dict[str, Any], list[str]]:
    """(the project's settings that only tighten, one line per ignored setting)."""
    allowed: dict[str, Any] = {}
    ignored: list[str] = []
    for section, values in project_data.items():
        if section in WIDENING:
            keys = values if isinstance(values, dict) else {"": values}
            ignored.extend(f"{one_line(section)}{'.' if key else ''}{one_line(key)} ({WIDENING[section]})"
                           for key in keys)
            continue
        if not isinstance(values, dict):
            ignored.append(f"{one_line(section)} (not a settings table)")
            continue
        for key, raw in values.items():
            name = f"{one_line(section)}.{one_line(key)}"
            rule = TIGHTENING.get(section, {}).get(key)
            if rule is None:
                ignored.append(f"{name} (widens what code, installs or the model may reach or use)")
                continue
            new = getattr(getattr(combined, section), key)
            old = getattr(getattr(without, section), key)
            try:
                applies = rule(new, old)
            except (TypeError, ValueError):
                applies = False
            if applies:
                allowed.setdefault(section, {})[key] = raw
            else:
                ignored.append(f"{name} = {one_line(raw)} (yours is {one_line(old)})")
    return allowed, ignored


def restricted_settings(project_root: Path, overrides: dict[str, Any] | None = None
                        ) -> tuple[Settings, list[str]]:
    """The settings of an untrusted project, and what of its config was ignored."""
    project_data = read_project_toml(project_root)
    combined = load_settings(project_root, overrides)  # a broken file is still named as broken
    if not project_data:
        return combined, []
    without = load_settings(None, overrides)
    allowed, ignored = tighten(project_data, without, combined)
    return load_settings(project_root, overrides, project_data=allowed), ignored

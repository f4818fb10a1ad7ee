"""Project trust: a project folder Workbench did not make, or whose rules changed behind its back, is
restricted until the user trusts it (like VS Code's workspace trust or `direnv allow`).

Analysts exchange project folders. A folder's `.workbench/config.toml` could raise every limit, open install
sources and hosts, point the agent at someone's model endpoint, or pick the engine; its `state.db` could
carry schedules that run on open. So each user keeps a trust record outside every project (the user data
folder, 0600): per project path, a digest of its config file and of its schedules' definitions, with their
text, so that what changed can be shown.

  * A project Workbench creates (`workbench init`, a TUI opened on a new folder) is trusted at creation.
  * Workbench's own changes (`workbench model use`, `heartbeat add/remove`) keep a trusted project trusted:
    they go through `own_change(project)`.
  * Any other change to the config or the schedules (an editor, a copy, someone else's folder) makes the
    project untrusted again, and `state()` says what changed.
  * An untrusted project is restricted: its config may only tighten (`restrict`), its schedules do not run.
    `workbench trust -p DIR` trusts it.

A trust record that cannot be read is treated as empty: every project is restricted until trusted again
(the safer choice), and `state().problem` says so in one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from workbench import paths
from workbench.config import PROJECT_CONFIG
from workbench.confined import Confined, Refused
from workbench.errors import WorkbenchError
from workbench.findings import Finding

RECORD_FILE = "trusted-projects.json"
RECORD_VERSION = 1
CONFIG_CAP = 256 * 1024  # a project config larger than this is not a config: untrusted as a whole
SCHEDULE_FIELDS = ("name", "cron", "timezone", "kind", "task", "language", "code", "timeout", "missed", "approval")


class Project(Protocol):
    """What trust reads of a project: `workbench.project.Project` is one. Trust names only this shape, never
    that module: a project asks trust whether its own config applies, so the import goes one way."""

    @property
    def root(self) -> Path: ...

    @property
    def id(self) -> str: ...

    @property
    def state_db(self) -> Path: ...

    def settings_and_ignored(self) -> tuple[Any, list[str]]: ...


def record_path() -> Path:
    return paths.user_data_dir() / RECORD_FILE


@dataclass(frozen=True)
class Fingerprint:
    """What trust covers: the project's config file and its schedules' definitions."""

    config: str  # the config file's text ("" when there is none)
    schedules: tuple[dict[str, Any], ...]
    problem: str | None = None  # the config or state file is not something Workbench reads (a symlink...)

    @property
    def config_sha256(self) -> str:
        return hashlib.sha256(self.config.encode("utf-8", "surrogateescape")).hexdigest()

    @property
    def schedules_sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.schedules, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class TrustState:
    trusted: bool
    reason: str  # one line: "trusted", "not trusted on this machine yet", "its config changed since ..."
    changes: tuple[str, ...] = ()  # what changed since it was trusted: setting keys, schedule names
    problem: str | None = None  # a trust record that could not be read, a config that is a symlink
    schedules: tuple[str, ...] = field(default=())  # names of the schedules that will not run


def fingerprint(project: Project) -> Fingerprint:
    problem = None
    config = ""
    with Confined(project.root) as folder:
        try:
            found = folder.read(str(PROJECT_CONFIG), CONFIG_CAP)
            if found.truncated:
                problem = f"{PROJECT_CONFIG} is larger than {CONFIG_CAP // 1024} KB"
            config = found.data.decode("utf-8", "surrogateescape")
        except FileNotFoundError:
            pass
        except Refused as exc:
            problem = exc.one_line()
        except OSError as exc:
            problem = f"cannot read {PROJECT_CONFIG}: {exc.strerror or exc}"
        schedules: tuple[dict[str, Any], ...] = ()
        try:
            state_db = folder.lstat(str(project.state_db.relative_to(project.root)))
        except Refused as exc:
            state_db, problem = None, exc.one_line()
        if state_db is not None:
            if state_db.kind != "file":
                problem = f"{state_db.describe()}: not opened"
            else:
                schedules = _schedules(project.state_db)
    return Fingerprint(config, schedules, problem)


def _schedules(db: Path) -> tuple[dict[str, Any], ...]:
    """The schedules' definitions (not their run state), read-only; none when the table is absent."""
    try:
        connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return ()
    try:
        rows = connection.execute(f"SELECT {', '.join(SCHEDULE_FIELDS)} FROM heartbeat_schedules ORDER BY name")
        return tuple(dict(zip(SCHEDULE_FIELDS, row, strict=True)) for row in rows)
    except sqlite3.Error:
        return ()
    finally:
        connection.close()


# --- the record ------------------------------------------------------------------------------------
class TrustRecordError(WorkbenchError):
    exit_code = 1


def _read_record() -> tuple[dict[str, Any], str | None]:
    path = record_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return {}, (f"the trust record {path} cannot be read ({type(exc).__name__}): every project is "
                    "restricted until trusted again (workbench trust -p DIR rewrites it)")
    if not isinstance(data, dict) or data.get("version") != RECORD_VERSION or not isinstance(
            data.get("projects"), dict):
        return {}, (f"the trust record {path} is not one Workbench wrote: every project is restricted until "
                    "trusted again (workbench trust -p DIR rewrites it)")
    return data["projects"], None


def _write_record(projects: dict[str, Any]) -> None:
    path = record_path()
    paths.ensure_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"version": RECORD_VERSION, "projects": projects}, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _key(project: Project) -> str:
    return str(Path(os.path.realpath(project.root)))


def trust(project: Project) -> Fingerprint:
    """Trust the project as it is now (its config and schedules)."""
    found = fingerprint(project)
    if found.problem:
        raise TrustRecordError(f"cannot trust {project.root}: {found.problem}", "fix the project's files first")
    projects, _problem = _read_record()  # a damaged record is replaced
    projects[_key(project)] = {"id": project.id, "config": found.config, "schedules": list(found.schedules),
                               "config_sha256": found.config_sha256, "schedules_sha256": found.schedules_sha256,
                               "trusted_at": datetime.now(UTC).isoformat(timespec="seconds")}
    _write_record(projects)
    return found


def revoke(project: Project) -> bool:
    projects, _problem = _read_record()
    if projects.pop(_key(project), None) is None:
        return False
    _write_record(projects)
    return True


def state(project: Project) -> TrustState:
    found = fingerprint(project)
    names = tuple(s["name"] for s in found.schedules)
    projects, problem = _read_record()
    if found.problem:
        return TrustState(False, f"restricted: {found.problem}", problem=found.problem, schedules=names)
    entry = projects.get(_key(project))
    if not isinstance(entry, dict):
        return TrustState(False, "not trusted on this machine yet (a project you did not create here)",
                          problem=problem, schedules=names)
    changed: list[str] = []
    if entry.get("config_sha256") != found.config_sha256:
        changed += [f"setting {key}" for key in _changed_keys(str(entry.get("config", "")), found.config)] or [
            "the config file"]
    if entry.get("schedules_sha256") != found.schedules_sha256:
        changed += _changed_schedules(entry.get("schedules") or [], found.schedules)
    if changed:
        return TrustState(False, "its config or schedules changed since you trusted it", tuple(changed),
                          problem=problem, schedules=names)
    return TrustState(True, "trusted", problem=problem)


def _flatten(text: str) -> dict[str, Any]:
    import tomllib

    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError):
        return {"(unparsable file)": text}
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        else:
            flat[prefix] = node

    walk(data, "")
    return flat


def _changed_keys(before: str, after: str) -> list[str]:
    old, new = _flatten(before), _flatten(after)
    return sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))


def _changed_schedules(before: list[Any], after: tuple[dict[str, Any], ...]) -> list[str]:
    old = {s.get("name"): s for s in before if isinstance(s, dict)}
    new = {s["name"]: s for s in after}
    found = []
    for name in sorted(old.keys() | new.keys(), key=str):
        if name not in old:
            found.append(f"schedule {name} (added)")
        elif name not in new:
            found.append(f"schedule {name} (removed)")
        elif old[name] != new[name]:
            found.append(f"schedule {name} (changed)")
    return found or ["the schedules"]


@contextlib.contextmanager
def own_change(project: Project) -> Iterator[None]:
    """Around a change Workbench itself makes to a project's config or schedules: a project trusted before
    stays trusted after (its record follows the change); an untrusted one stays untrusted."""
    was_trusted = state(project).trusted
    yield
    if was_trusted:
        trust(project)


def check(project: Project) -> list[Finding]:
    """`workbench doctor -p`'s "trust" findings: trusted, or restricted and why, what changed, which project
    settings are ignored and which schedules will not run until the user trusts it."""
    found = state(project)
    if found.trusted:
        return [Finding("trust", "ok", f"{project.root} is trusted on this machine")]
    _settings, ignored = project.settings_and_ignored()
    findings = [Finding("trust", "warn", f"restricted: {found.reason}",
                        f"read what it asks for, then: workbench trust -p {project.root}")]
    findings += [Finding("trust", "warn", f"changed: {change}") for change in found.changes]
    findings += [Finding("trust", "warn", f"ignored: {line}") for line in ignored]
    if found.schedules:
        findings.append(Finding("trust", "warn", f"schedules that will not run: {', '.join(found.schedules)}"))
    return findings

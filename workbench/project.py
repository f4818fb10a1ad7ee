"""A project folder: `workspace/` (the agent's persistent files) and `.workbench/` (state).

```
myproject/
  workspace/              mounted at /workspace in the sandbox
  .workbench/
    project.json          format version, id, created; written once, migrated by named steps
    config.toml           project settings (optional)
    audit.db              the audit log
    state.db              sessions, schedules, memory index
    memory/*.md           notes
```
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench import __version__
from workbench.config import PROJECT_CONFIG, Settings, load_settings
from workbench.errors import ProjectError
from workbench.inert import one_line

STATE_DIR = ".workbench"
WORKSPACE_DIR = "workspace"
MANIFEST = "project.json"
FORMAT_VERSION = 1

# Named migration steps, in order: MIGRATIONS[n] takes a project at format n to n + 1.
# A project made by an older Workbench opens after its missing steps run; each step is recorded.
Migration = Callable[["Project", dict[str, Any]], None]
MIGRATIONS: dict[int, tuple[str, Migration]] = {}


@dataclass(frozen=True)
class Project:
    root: Path
    id: str
    format: int

    # --- locations -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.root.name

    @property
    def workspace(self) -> Path:
        return self.root / WORKSPACE_DIR

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def config_file(self) -> Path:
        return self.root / PROJECT_CONFIG

    @property
    def audit_db(self) -> Path:
        return self.state_dir / "audit.db"

    @property
    def state_db(self) -> Path:
        return self.state_dir / "state.db"

    @property
    def memory_dir(self) -> Path:
        return self.state_dir / "memory"

    def settings(self, overrides: dict[str, Any] | None = None) -> Settings:
        """The project's settings; an untrusted project's own config may only tighten (workbench.trust)."""
        return self.settings_and_ignored(overrides)[0]

    def settings_and_ignored(self, overrides: dict[str, Any] | None = None) -> tuple[Settings, list[str]]:
        """(settings, the project settings ignored because the project is not trusted)."""
        from workbench import trust

        if trust.state(self).trusted:
            return load_settings(self.root, overrides), []
        from workbench.restricted import restricted_settings

        return restricted_settings(self.root, overrides)

    # --- creation and opening --------------------------------------------------------------------
    @classmethod
    def init(cls, path: Path | str) -> Project:
        """Create a project at `path` (or open it if it is one already)."""
        root = Path(path).expanduser().absolute()
        if (root / STATE_DIR / MANIFEST).exists():
            return cls.open(root)
        if root.exists() and not root.is_dir():
            raise ProjectError(f"{root} exists and is not a folder", "choose another path")
        try:
            for folder in (root, root / WORKSPACE_DIR, root / STATE_DIR, root / STATE_DIR / "memory"):
                folder.mkdir(parents=True, exist_ok=True)
            manifest = {
                "format": FORMAT_VERSION,
                "id": uuid.uuid4().hex,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "created_by": __version__,
                "migrations": [],
            }
            _write_json_atomically(root / STATE_DIR / MANIFEST, manifest)
        except OSError as exc:
            raise ProjectError(f"cannot create a project at {root}: {exc.strerror or exc}") from exc
        project = cls.open(root)
        from workbench import trust

        trust.trust(project)  # a project you create is yours: trusted from the start
        return project

    @classmethod
    def open(cls, path: Path | str, create: bool = False) -> Project:
        """Open the project at `path`; with `create`, make it first when it does not exist."""
        root = Path(path).expanduser().absolute()
        manifest_path = root / STATE_DIR / MANIFEST
        if not root.exists():
            if create:
                return cls.init(root)
            raise ProjectError(f"no project at {root}: the folder does not exist", f"run: workbench init {root}")
        if not root.is_dir():
            raise ProjectError(f"{root} is not a folder")
        if not os.access(root, os.R_OK | os.X_OK):
            raise ProjectError(f"cannot read the project folder {root}: permission denied")
        if not manifest_path.exists():
            if (root / STATE_DIR).exists() and not (root / STATE_DIR).is_dir():
                raise ProjectError(f"{root / STATE_DIR} is a file, not the project's state folder")
            if create:
                return cls.init(root)
            raise ProjectError(f"{root} is not a Workbench project (no {STATE_DIR}/{MANIFEST})",
                               f"run: workbench init {root}")
        _refuse_links(root)
        manifest = _read_manifest(manifest_path)
        project = cls(root=root, id=str(manifest["id"]), format=int(manifest["format"]))
        if project.format > FORMAT_VERSION:
            raise ProjectError(f"{root} was made by a newer Workbench (format {project.format}, "
                               f"this one reads up to {FORMAT_VERSION})", "upgrade Workbench")
        if project.format < FORMAT_VERSION:
            project = project._migrate(manifest, manifest_path)
        for folder in (project.workspace, project.memory_dir):
            if not folder.is_dir():
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise ProjectError(f"cannot create {folder}: {exc.strerror or exc}") from exc
        return project

    def _migrate(self, manifest: dict[str, Any], manifest_path: Path) -> Project:
        version = self.format
        while version < FORMAT_VERSION:
            if version not in MIGRATIONS:
                raise ProjectError(f"no migration from project format {version}", "upgrade Workbench")
            name, step = MIGRATIONS[version]
            step(self, manifest)
            version += 1
            manifest["format"] = version
            manifest.setdefault("migrations", []).append(
                {"name": name, "to": version, "at": datetime.now(UTC).isoformat(timespec="seconds")})
            _write_json_atomically(manifest_path, manifest)
        return Project(root=self.root, id=self.id, format=version)


# A project folder may come from someone else. Each of these, if a symlink, would make Workbench use a file
# or folder anywhere on this machine: the workspace is bind-mounted into the sandbox, the databases are
# written, the config and notes are read.
OWN_ENTRIES = (WORKSPACE_DIR, STATE_DIR, f"{STATE_DIR}/{MANIFEST}", f"{STATE_DIR}/audit.db", f"{STATE_DIR}/state.db",
               f"{STATE_DIR}/memory", f"{STATE_DIR}/config.toml", f"{STATE_DIR}/sandbox",
               f"{STATE_DIR}/memory-index.db")


@contextmanager
def own_change_of(path: Path) -> Iterator[None]:
    """`workbench.trust.own_change` for the project whose `.workbench/` holds `path` (its config file or
    state.db); nothing when `path` is not inside a project's state folder."""
    root = path.parent.parent if path.parent.name == STATE_DIR else None
    if root is None or not (path.parent / MANIFEST).is_file():
        yield
        return
    from workbench import trust

    with trust.own_change(Project.open(root)):
        yield


def _refuse_links(root: Path) -> None:
    for name in OWN_ENTRIES:
        if os.path.islink(root / name):
            raise ProjectError(f"{root / name} is a symlink to {one_line(os.readlink(root / name))}: a project's own files "
                               "must be real files and folders, not links elsewhere",
                               "replace the link with a copy of what it points to")


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except PermissionError as exc:
        raise ProjectError(f"cannot read {path}: permission denied") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProjectError(f"{path} is damaged: {exc}", "restore it from a backup or re-run workbench init "
                           "in a new folder") from exc
    if not isinstance(data, dict) or not isinstance(data.get("format"), int) or not data.get("id"):
        raise ProjectError(f"{path} is damaged: it lacks a format number or an id")
    return data


def _write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)

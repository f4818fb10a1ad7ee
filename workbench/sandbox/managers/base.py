"""The package-manager seam: what one manager (pip, R, apt, conda, a plug-in's) is to Workbench.

A manager is an object with a `name` registered in `workbench.sandbox.managers.MANAGERS`; the built-ins
subclass `Manager` and are registered there exactly as a plug-in's would be (an entry point in the
`workbench.managers` group naming a `Manager`, a list of them, or a callable returning either). What a
manager must do:

  install(sandbox, packages, progress) -> ManagerRun
      run the install in its own container (`install_container.run_container`: no network, or a way out
      through the egress proxy to `sources.allowed_for(...)` only) and say what changed, as the host read it
      back after the container ended (readback.py), never as the container printed it.

What it may leave to the defaults here:
  check_packages   the package names it accepts (default: names and version pins only)
  preflight        refuse to start when a configured source is malformed, missing or silent (exit 5)
  check            doctor's findings about its sources
  reachable        where its installs may reach, in words (doctor, the approval prompts)

`workbench.sandbox.install.install` checks the names and sources, emits the events and builds the
`InstallResult`; a manager only runs its install.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from workbench.errors import ConfigError, UsageError
from workbench.findings import Finding
from workbench.sandbox.egress import Attempt, Destination
from workbench.sandbox.errors import SourceUnreachable
from workbench.sandbox.managers.sources import (
    LOCATION,
    allowed_for,
    in_words,
    reachable_source,
    refuse_workspace_sources,
    shown,
)

if TYPE_CHECKING:
    from workbench.config import Settings
    from workbench.project import Project
    from workbench.sandbox.engine import Engine
    from workbench.sandbox.policy import Identity

Progress = Callable[[str], None]
Target = Literal["workspace", "image"]  # where installed packages live: /workspace/..., or the project image
# Package names/specs we pass to managers: no options, no URLs to arbitrary places, no shell.
PACKAGE_SPEC = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*(\[[A-Za-z0-9_,.-]+\])?([<>=!~]=?[A-Za-z0-9.*+!-]+)?$")


class InstallingSandbox(Protocol):
    """What a manager uses of the sandbox (`workbench.sandbox.Sandbox` is one)."""

    project: Project
    settings: Settings
    engine: Engine
    identity: Identity
    image: str

    def labels(self, role: str) -> dict[str, str]: ...

    def workspace_owner(self) -> tuple[int, int] | None: ...

    def use_image(self, image: str) -> None: ...


@dataclass(frozen=True)
class ManagerRun:
    """What one manager's install did."""

    exit_code: int
    output: str  # already bounded (install_container keeps its first and last OUTPUT_CAP bytes)
    versions: dict[str, str]  # what changed, as the host read it back: name -> version
    attempts: tuple[Attempt, ...] = ()  # what it tried to reach through the egress proxy
    notes: tuple[str, ...] = ()  # what the read-back did not read, and why (one line each)
    # More about a package, added to its `package.installed` event: name -> {"build": ..., "channel": ...}
    details: dict[str, dict[str, str]] = field(default_factory=dict)


class Manager(ABC):
    """One package manager. Subclasses set the four attributes and write `install`."""

    name: str = ""
    description: str = ""  # one line, for pickers and --help
    sources: tuple[str, ...] = ()  # the [install] settings it reads (doctor, the bundle)
    target: Target = "workspace"
    # What doctor and error messages call each source setting ("pip wheelhouse"); default: the key.
    source_labels: dict[str, str] = {}

    @abstractmethod
    def install(self, sandbox: InstallingSandbox, packages: list[str], progress: Progress | None) -> ManagerRun:
        """Install `packages` (already checked by `check_packages`); sources were checked by `preflight`."""

    # --- what the defaults derive from ------------------------------------------------------------
    def label(self, setting: str) -> str:
        return self.source_labels.get(setting, setting)

    def locations(self, settings: Settings, setting: str) -> list[str]:
        """The places one source setting names (default: its value, or none when empty)."""
        value: Any = getattr(settings.install, setting, "")
        if isinstance(value, list | tuple):
            return [str(v) for v in value if v]
        return [value] if value else []

    # --- the defaults -----------------------------------------------------------------------------
    def check_packages(self, packages: Sequence[str]) -> list[str]:
        """The packages as they will be passed on; a UsageError for anything but names and version pins."""
        if not packages:
            raise UsageError("name at least one package")
        bad = [p for p in packages if not PACKAGE_SPEC.match(p)]
        if bad:
            raise UsageError(f"not a package name: {bad[0]!r} (names and version pins only, e.g. pandas==2.2.2)")
        return list(packages)

    def preflight(self, settings: Settings) -> None:
        """Refuse to start when a configured source is malformed (ConfigError), missing or silent
        (SourceUnreachable, exit 5). The words are the doctor's own (`check`)."""
        for setting in self.sources:
            for location in self.locations(settings, setting):
                if not LOCATION.match(location):
                    raise ConfigError(f"[install] {setting} = {shown(location)!r} is not a URL or an "
                                      "absolute folder", "use http(s)://..., file:///... or /...")
                ok, detail = reachable_source(location)
                if not ok:
                    raise SourceUnreachable(f"install source: {self.label(setting)} {shown(location)}: "
                                            f"{detail}", f"check [install] {setting} in the settings; "
                                            "workbench doctor lists every source")

    def check(self, settings: Settings) -> list[Finding]:
        """One finding per configured source: whether it is there (a folder) or answers (a URL)."""
        findings = []
        for setting in self.sources:
            name = self.label(setting)
            for location in self.locations(settings, setting):
                ok, detail = reachable_source(location)
                findings.append(Finding(f"install source: {name}", "ok" if ok else "warn",
                                        f"{shown(location)}: {detail}",
                                        "" if ok else f"check [install] in the settings; {name} installs will fail"))
        return findings

    def refuse_workspace_sources(self, sandbox: InstallingSandbox, mounts: dict[str, dict[str, str]],
                                 allowed: frozenset[Destination]) -> None:
        """A source folder (a key of `mounts`) inside this project's workspace is code's to fill: refused
        when the install has a way out (`allowed`), and always for a manager that installs into the image
        (it runs as root there). Call it before any container starts."""
        refuse_workspace_sources(sandbox.project.workspace, " or ".join(self.sources), mounts, allowed,
                                 always=self.target == "image")

    def reachable(self, settings: Settings) -> str:
        """Where an install may reach, in words. Raises ConfigError for a malformed allow_hosts."""
        urls = [location for setting in self.sources for location in self.locations(settings, setting)]
        return in_words(allowed_for(urls, settings))

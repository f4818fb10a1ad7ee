"""Package installs: their own step, in their own short-lived container, the only one that may have a network.

`install(sandbox, manager, packages)` is the step: it checks the package names and the manager's sources
(a configured source that is missing or does not answer stops the install before any container starts,
with one line naming it and exit status 5, SourceUnreachable; the wording is the doctor's own), runs the
manager, and emits what happened: `package.install_started`, `install.egress` (what it reached and what
was refused), one `package.installed` per package the host read back, and an `error` per thing the
read-back left out.

The managers (pip, r, apt, and any plug-in's) live in `workbench.sandbox.managers`: the seam in base.py,
where sources are and what an install may reach in sources.py, the container and its way out through
the egress proxy in install_container.py. What holds for every manager:
  * an install container has `network_mode="none"`; its one way out, when a source is a URL, is the
    egress proxy, which lets through only that source's host:port (and `[install] allow_hosts`);
  * package names are checked (names and version pins only: no options, URLs or shell);
  * pip and R run from the read-only image so that nothing under /workspace is executed or imported; apt
    runs as root in a container of the project's image with no workspace mounted;
  * what was installed is what the host reads back after the container has ended (readback.py), never
    what the container printed;
  * a source folder inside this project's workspace is refused when the install has a way out (pip, R)
    or runs as root (apt): code could have planted a package there.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from workbench import events
from workbench.sandbox.egress import Attempt
from workbench.sandbox.managers import MANAGERS, reachable
from workbench.sandbox.managers.base import InstallingSandbox, Manager, Progress
from workbench.sandbox.managers.sources import extra_allowed
from workbench.sandbox.types import InstalledPackage, InstallResult, PackageManager

if TYPE_CHECKING:
    from workbench.config import Settings


class Installing(InstallingSandbox, Protocol):
    """The sandbox an install runs for (`workbench.sandbox.Sandbox`; not imported, it imports this)."""

    def _emit(self, kind: str, payload: Any) -> None: ...  # an events.Payload

__all__ = ["check_packages", "check_sources", "install", "reachable"]


def check_packages(packages: Sequence[str], manager: str = "pip") -> list[str]:
    """`packages` as `manager` will be given them; a UsageError for anything but names and version pins."""
    return MANAGERS.get(manager).check_packages(packages)


def check_sources(settings: Settings, manager: str) -> None:
    """Refuse to start when a configured source for `manager` is malformed, missing or silent (exit 5)."""
    MANAGERS.get(manager).preflight(settings)


def egress_summary(attempts: Sequence[Attempt]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(destinations reached, refused, allowed but not answering: "host:port: why"), each once, in order."""
    reached = [str(a.destination) for a in attempts if a.allowed and not a.detail]
    refused = [str(a.destination) for a in attempts if not a.allowed]
    failed = [f"{a.destination}: {a.detail}" for a in attempts if a.allowed and a.detail]
    return tuple(dict.fromkeys(reached)), tuple(dict.fromkeys(refused)), tuple(dict.fromkeys(failed))


def install(sandbox: Installing, manager: PackageManager, packages: Sequence[str],
            progress: Progress | None = None) -> InstallResult:
    chosen: Manager = MANAGERS.get(manager)  # a UsageError naming the choices for an unknown one
    name = chosen.name
    wanted = chosen.check_packages(packages)
    chosen.preflight(sandbox.settings)
    extra_allowed(sandbox.settings)  # a malformed allow_hosts stops here, before any container
    started = time.monotonic()
    sandbox._emit(events.PACKAGE_INSTALL_STARTED, events.PackageInstallStarted(manager=name, packages=tuple(wanted)))
    run = chosen.install(sandbox, wanted, progress)
    installed = tuple(InstalledPackage(package, version, name) for package, version in sorted(run.versions.items()))
    reached, refused, unreachable = egress_summary(run.attempts)
    if run.attempts:
        # Before package.installed, so the log reads: what the install reached, then what it installed.
        sandbox._emit(events.INSTALL_EGRESS, events.InstallEgress(
            manager=name, reached=reached, refused=refused, unreachable=unreachable, requests=len(run.attempts),
            refusals=tuple(f"{a.method} {a.destination}: {a.detail}" for a in run.attempts if not a.allowed)[:50]))
    for package in installed:
        more = run.details.get(package.name, {})  # a conda package's build and channel
        sandbox._emit(events.PACKAGE_INSTALLED, events.PackageInstalled(
            name=package.name, version=package.version, manager=name, build=more.get("build"),
            channel=more.get("channel")))
    for note in run.notes:  # what the read-back left out (a symlinked site-packages, a name that is markup)
        sandbox._emit(events.ERROR, events.Error(where=f"{name} install", message=note))
    output = run.output  # already bounded: its first and last OUTPUT_CAP bytes
    if run.notes:
        output += "".join(f"\nworkbench: {note}" for note in run.notes)
    return InstallResult(manager=name, requested=tuple(wanted), installed=installed, exit_code=run.exit_code,
                         output=output, duration=time.monotonic() - started, reached=reached, refused=refused,
                         unreachable=unreachable)

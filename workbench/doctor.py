"""`workbench doctor`: what each subsystem says about its own parts, collected and printed with the fix.

Doctor knows no subsystem's insides. Each one answers `check(settings) -> list[Finding]` (`workbench.findings`:
ok / warn / fail, what was seen, the fix) about the parts it owns, and `CHECKS` lists them in the order
doctor prints them: the sandbox (engine, isolation, base image), the model, embeddings, languages, package
managers, the audit keyring, the report's fonts. A plug-in adds its own through the `workbench.checks`
entry point group (an entry point naming a `Check`). Disk space is doctor's own: no subsystem owns it.

Checks never break doctor: one that raises, or whose module does not import, is one failed finding named
after it, so doctor always prints the whole picture.
"""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from workbench.config import Settings
from workbench.findings import Finding, Status
from workbench.registry import Registry

__all__ = ["CHECKS", "Check", "DoctorReport", "Finding", "Status", "check_disk", "guarded", "project_findings",
           "run_doctor"]

MIN_FREE_BYTES = 2 * 1024**3


@dataclass(frozen=True, slots=True)
class DoctorReport:
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return all(f.status != "fail" for f in self.findings)

    def get(self, name: str) -> Finding | None:
        return next((f for f in self.findings if f.name == name), None)


@dataclass(frozen=True, slots=True)
class Check:
    """One subsystem's check: `module`'s `function(settings) -> list[Finding]`, imported when doctor runs,
    not when doctor is imported (the TUI imports doctor at start; the engine client and the fonts can wait)."""

    name: str  # the finding's name when the check itself breaks
    module: str
    function: str = "check"

    def run(self, settings: Settings) -> list[Finding]:
        return list(getattr(importlib.import_module(self.module), self.function)(settings))


CHECKS: Registry[Check] = Registry("doctor check", "workbench.checks")
for _check in (
    Check("engine", "workbench.sandbox.checks"),
    Check("model", "workbench.agent.models"),
    Check("embeddings", "workbench.memory.embed"),
    Check("languages", "workbench.languages"),
    Check("agent tools", "workbench.agent.tools"),
    Check("install sources", "workbench.sandbox.managers"),
    Check("keyring", "workbench.audit.keys"),
    Check("report fonts", "workbench.report.fonts"),
    Check("pgbouncer", "workbench.network.pgbouncer"),
):
    CHECKS.register(_check)


def guarded(name: str, check: Callable[[], Iterable[Finding] | Finding | None]) -> list[Finding]:
    """The check's findings; a check that raises is one failed finding called `name`."""
    try:
        result = check()
    except Exception as exc:  # noqa: BLE001 - doctor reports every broken part, it never stops at one
        return [Finding(name, "fail", f"the check itself failed: {type(exc).__name__}: {exc}")]
    if result is None:
        return []
    return [result] if isinstance(result, Finding) else list(result)


def check_disk(path: Path) -> Finding:
    target = path if path.exists() else Path.home()
    usage = shutil.disk_usage(target)
    free_gb = usage.free / 1024**3
    if usage.free < MIN_FREE_BYTES:
        return Finding("disk", "fail", f"{free_gb:.1f} GiB free at {target}", "free at least 2 GiB")
    return Finding("disk", "ok", f"{free_gb:.0f} GiB free at {target}")


def run_doctor(settings: Settings, project_root: Path | None = None) -> DoctorReport:
    findings: list[Finding] = []
    for check in CHECKS:
        findings += guarded(check.name, lambda check=check: check.run(settings))
    findings += guarded("disk", lambda: check_disk(project_root or Path.cwd()))
    findings += [Finding("doctor plug-in", "warn", problem, "fix or uninstall the plug-in")
                 for problem in CHECKS.problems]
    return DoctorReport(tuple(findings))


def project_findings(root: Path) -> list[Finding]:
    """`workbench doctor -p DIR`: what trust says of the project at `root` (nothing when it is no project)."""
    from workbench.project import STATE_DIR, Project

    if not (root / STATE_DIR).is_dir():
        return []
    from workbench import trust

    return guarded("trust", lambda: trust.check(Project.open(root)))

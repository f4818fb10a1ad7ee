"""Package managers: one registry, built-ins registered the same way as plug-ins.

    from workbench.sandbox.managers import MANAGERS
    MANAGERS.names()            # ["pip", "r", "apt", ...plug-ins]
    MANAGERS.get("pip")         # the Manager; a UsageError naming the choices for an unknown name

A manager is a `base.Manager` (read base.py for what one does). A third-party package adds one with an
entry point in the `workbench.managers` group naming a Manager instance, a list of them, or a callable
returning either; it then appears in `workbench install --manager`, the agent's grammar, the TUI's picker
and doctor. A plug-in that fails to load, or takes a name that is already taken, is one line in
`MANAGERS.problems` and doctor; the rest keeps working.

The modules: base (the seam), sources (where installs fetch from and may reach), install_container (the
container an install runs in and its way out through the egress proxy), output (what is kept of its
output), pip / r / apt / conda (the built-ins). `workbench.sandbox.install.install` is the entry point that
runs one.

`check(settings)` is what doctor shows about installs: each manager's source findings, then where each may
reach (`check_egress`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.errors import ConfigError
from workbench.findings import Finding
from workbench.registry import Registry
from workbench.sandbox.managers.apt import AptManager
from workbench.sandbox.managers.base import Manager, ManagerRun
from workbench.sandbox.managers.conda import CondaManager
from workbench.sandbox.managers.pip import PipManager
from workbench.sandbox.managers.r import RManager

if TYPE_CHECKING:
    from workbench.config import Settings

__all__ = ["BUILT_IN", "MANAGERS", "Manager", "ManagerRun", "check", "check_egress", "new_registry", "reachable"]

GROUP = "workbench.managers"  # the entry-point group plug-ins name
BUILT_IN: tuple[type[Manager], ...] = (PipManager, RManager, AptManager, CondaManager)


def new_registry() -> Registry[Manager]:
    """The built-in managers, registered as a plug-in's are; plug-ins load on the first lookup.
    `MANAGERS` is the one Workbench uses (a test makes its own to load plug-ins afresh)."""
    registry: Registry[Manager] = Registry("package manager", GROUP)
    for built_in in BUILT_IN:
        registry.register(built_in())
    return registry


MANAGERS = new_registry()


def reachable(settings: Settings, manager: str) -> str:
    """Where an install with `manager` may reach, in words (doctor, the approval prompts). Raises
    ConfigError for a malformed allow_hosts, UsageError for an unknown manager."""
    return MANAGERS.get(manager).reachable(settings)


def check_egress(settings: Settings) -> Finding:
    """Where an install may reach through the egress proxy, per manager; user code never reaches anything."""
    try:
        words = [f"{manager.name} {manager.reachable(settings)}" for manager in MANAGERS]
    except ConfigError as exc:
        return Finding("install egress", "warn", str(exc), exc.hint or "")
    return Finding("install egress", "ok", f"installs reach only: {'; '.join(words)}")


def check(settings: Settings) -> list[Finding]:
    """Where run-time package installs come from (the registries, or local mirrors for air-gapped use),
    whether each answers, and where installs may reach. A manager whose own check breaks is one failed
    finding naming it; plug-ins that did not load are one warning each."""
    findings: list[Finding] = []
    for manager in MANAGERS:
        try:
            findings += manager.check(settings)
        except Exception as exc:  # a plug-in's check must not hide the others'
            findings.append(Finding(f"install source: {manager.name}", "fail",
                                    f"the check itself failed: {type(exc).__name__}: {exc}"))
    if not findings:
        settings_named = " / ".join(setting for manager in MANAGERS for setting in manager.sources)
        findings.append(Finding("install sources", "ok", "package managers' own configuration (public "
                                f"registries); set [install] {settings_named} for a local mirror"))
    findings.append(check_egress(settings))
    findings += [Finding("package manager plug-in", "warn", problem, "fix or uninstall the plug-in")
                 for problem in MANAGERS.problems]
    return findings

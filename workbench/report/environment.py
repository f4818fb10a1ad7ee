"""The engine and isolation settings at export time, for the cover.

Why both: the log says what each execution reported (``limits_enforced`` in ``exec.finished``); the cover
adds what the engine on this machine says now and which limits the project is configured with, so a
reviewer sees the intended isolation beside what was recorded. Nothing here may stop a report: an
engine that is missing or broken is shown as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workbench.project import Project


@dataclass
class EngineFacts:
    reachable: bool = False
    version: str = ""
    endpoint: str = ""
    rootless: bool | None = None
    limits_enforced: bool | None = None
    error: str = ""
    settings: dict[str, str] = field(default_factory=dict)


def probe_engine(project: Project) -> EngineFacts:
    """Ask the engine (never raises). Tests and benchmarks replace this function."""
    facts = EngineFacts()
    try:
        settings = project.settings()
    except Exception as exc:
        facts.error = f"settings unreadable: {exc}"
        return facts
    facts.settings = configured_limits(settings)
    try:
        from workbench.sandbox.engine import probe

        found = probe(settings)
    except Exception as exc:  # the sandbox package missing or broken: say so, carry on
        facts.error = f"{type(exc).__name__}: {exc}"[:300]
        return facts
    facts.reachable = bool(getattr(found, "reachable", False))
    facts.version = str(getattr(found, "version", "") or "")
    facts.endpoint = str(getattr(found, "endpoint", "") or "")
    if facts.reachable:
        facts.rootless = bool(getattr(found, "rootless", False))
        facts.limits_enforced = bool(getattr(found, "limits_enforced", False))
    facts.error = str(getattr(found, "error", "") or "")
    return facts


def configured_limits(settings: object) -> dict[str, str]:
    """The project's sandbox settings as display text."""
    sandbox = getattr(settings, "sandbox", None)
    if sandbox is None:
        return {}
    out = {
        "memory": str(getattr(sandbox, "memory", "")),
        "cpus": str(getattr(sandbox, "cpus", "")),
        "pids": str(getattr(sandbox, "pids", "")),
        "timeout": f"{getattr(sandbox, 'timeout', '')} s",
        "network": str(getattr(sandbox, "network", "")),
        "output cap": f"{getattr(sandbox, 'output_cap', '')} bytes per stream",
        "workspace quota": str(getattr(sandbox, "workspace_quota", "")),
    }
    return {k: v for k, v in out.items() if v and v != " s"}

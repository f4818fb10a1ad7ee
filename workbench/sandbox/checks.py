"""What `workbench doctor` hears from the sandbox: the engine, how code is isolated, and the base image.

`check(settings)` asks the sandbox's own modules (the engine probe, the user mapping policy, the seccomp
profile, gVisor, the image) and says what each found, with the fix; doctor only prints the findings.
Finding names are a contract (tests and checks look them up): engine, isolation, user mapping, runtime,
syscalls, limits, base image.
"""

from __future__ import annotations

from workbench.config import Settings
from workbench.errors import WorkbenchError
from workbench.findings import Finding


def check(settings: Settings) -> list[Finding]:
    """The engine and isolation findings, then the base image; only the engine's when it does not answer."""
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
    from workbench.sandbox import policy

    ident = policy.identity(probe.rootless, probe.is_podman)
    findings.append(Finding("user mapping", "warn" if ident.problem else "ok", ident.mapping,
                            ident.problem or ""))
    local = probe.endpoint.startswith("unix://")
    findings.append(runtime_finding(settings, local))
    findings.append(syscalls_finding(probe.is_podman, local))
    if probe.limits_enforced:
        findings.append(Finding("limits", "ok", "memory, CPU and PID limits are enforced by cgroups"))
    else:
        findings.append(Finding("limits", "warn", "this engine silently ignores memory/CPU/PID limits "
                                "(rootless Podman on cgroup v1); only ulimits and the timeout apply",
                                "boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1) or use rootful "
                                "Podman"))
    findings.append(image_finding(settings))
    return findings


def runtime_finding(settings: Settings, local: bool) -> Finding:
    """Which runtime runs the sandbox; gVisor asked for but not installed (on a local engine) fails here,
    not at the first execution."""
    from workbench.sandbox import gvisor

    runtime = settings.sandbox.runtime
    try:
        wants_gvisor = gvisor.requested(runtime) == gvisor.RUNSC
        if wants_gvisor and local:
            gvisor.find_runsc(runtime)
    except WorkbenchError as exc:
        return Finding("runtime", "fail", exc.message, exc.hint or "")
    if wants_gvisor:
        return Finding("runtime", "ok", "gVisor (runsc): a user-space kernel between code and the host")
    return Finding("runtime", "ok", f"{runtime or 'the engine default'} (set [sandbox] runtime = \"runsc\" for "
                   "gVisor)")


def syscalls_finding(is_podman: bool, local: bool) -> Finding:
    from workbench.sandbox import seccomp

    if seccomp.security_opt(is_podman, local) is None:
        return Finding("syscalls", "warn", "a remote Podman cannot read Workbench's seccomp profile: code may "
                       "create user namespaces there", "use a local engine")
    return Finding("syscalls", "ok", "seccomp: the engine's default profile, less user namespaces")


def image_finding(settings: Settings) -> Finding:
    from workbench.sandbox import image

    name = settings.sandbox.image or image.BASE_IMAGE
    try:
        present = image.image_present(settings=settings, ref=name)
    except Exception as exc:  # noqa: BLE001 - an engine hiccup is a finding, never a crash
        return Finding("base image", "fail", f"cannot list images: {exc}", "run: workbench setup")
    if present:
        return Finding("base image", "ok", name)
    return Finding("base image", "fail", f"{name} is missing", "run: workbench setup")

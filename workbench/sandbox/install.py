"""Package installs: their own step, in their own short-lived container, the only one with a network.

Where packages go, so they outlive every container:
  pip  a venv at /workspace/.venv (the sandbox's `python` then uses it)
  r    an R library at /workspace/.R (R_LIBS_USER points there)
  apt  the project's image: a container from the current image runs apt-get as root, and is committed
       as `localhost/workbench-project-<id>:latest`, which the sandbox uses from then on

Network policy, honestly stated:
  * enforced: user code never has a network (`network_mode="none"`); an install container runs only the
    package manager command built here, then is removed; pip is pointed only at the configured sources
    (`install.pip_index_url`, `install.pip_find_links`, else the host's pip configuration: index-url,
    extra-index-url, find-links); local wheelhouses and file:// indexes are mounted read-only; when the
    only sources are local the install container gets NO network at all (air-gapped installs).
  * not enforced: with a remote index the install container is on the engine's default network, and
    nothing filters its egress by host name. A package's build script (an sdist's setup.py) runs there
    with that network; pip is asked to `--prefer-binary` to make that rarer. Egress filtering by host needs
    a proxy in front of the engine's network; that is the place to add it.
  * the host's CA bundle (public certificates, no secret) is mounted read-only so TLS to the index works
    behind a corporate proxy CA, as it does on the host.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench import events
from workbench.errors import UsageError
from workbench.sandbox import policy
from workbench.sandbox.types import InstalledPackage, InstallResult, PackageManager

if TYPE_CHECKING:
    from workbench.sandbox.sandbox import Sandbox

OUTPUT_CAP = 256 * 1024
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
MARK = "@@workbench-versions@@"
# Package names/specs we pass to managers: no options, no URLs to arbitrary places, no shell.
PACKAGE_SPEC = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*(\[[A-Za-z0-9_,.-]+\])?([<>=!~]=?[A-Za-z0-9.*+!-]+)?$")
Progress = Callable[[str], None]


def check_packages(packages: Sequence[str]) -> list[str]:
    if not packages:
        raise UsageError("name at least one package")
    bad = [p for p in packages if not PACKAGE_SPEC.match(p)]
    if bad:
        raise UsageError(f"not a package name: {bad[0]!r} (names and version pins only, e.g. pandas==2.2.2)")
    return list(packages)


# --- pip sources -----------------------------------------------------------------------------------
def pip_sources(settings) -> dict[str, list[str]]:
    """index-url / extra-index-url / find-links: from the settings, else from the host's pip config."""
    found: dict[str, list[str]] = {"index-url": [], "extra-index-url": [], "find-links": []}
    if settings.install.pip_index_url:
        found["index-url"] = [settings.install.pip_index_url]
    if settings.install.pip_find_links:
        found["find-links"] = settings.install.pip_find_links.split()
    if any(found.values()):
        return found
    parser = configparser.ConfigParser()
    parser.read([p for p in ("/etc/pip.conf", os.path.expanduser("~/.config/pip/pip.conf"),
                             os.path.expanduser("~/.pip/pip.conf")) if os.path.exists(p)])
    for key in found:
        if parser.has_option("global", key):
            found[key] += parser.get("global", key).split()
        env = os.environ.get("PIP_" + key.upper().replace("-", "_"))
        if env:
            found[key] += env.split()
    return {k: list(dict.fromkeys(v)) for k, v in found.items()}


def _local_path(source: str) -> str | None:
    if source.startswith("file://"):
        return source[len("file://"):]
    return source if source.startswith("/") else None


def pip_plan(settings) -> tuple[list[str], dict[str, dict[str, str]], bool]:
    """(pip options, read-only mounts for local sources, whether a network is needed)."""
    sources = pip_sources(settings)
    options: list[str] = ["--prefer-binary"]
    mounts: dict[str, dict[str, str]] = {}
    remote = False
    for key, values in sources.items():
        for value in values:
            local = _local_path(value)
            if local is not None:
                if os.path.isdir(local):
                    # A file:// "simple" index links to ../../files/: mount the folder above it.
                    root = os.path.dirname(local.rstrip("/")) if key != "find-links" else local
                    mounts[root] = {"bind": root, "mode": "ro"}
                    options += [f"--{key}", value]
            else:
                remote = True
                options += [f"--{key}", value]
    if not sources["index-url"]:
        if settings.install.pip_find_links and not settings.install.pip_index_url:
            options.append("--no-index")  # a wheelhouse was configured alone: air-gapped, no network
        else:
            remote = True  # pip's default index, PyPI, as on the host
    return options, mounts, remote


# --- the install container -------------------------------------------------------------------------
def _run_container(sandbox: Sandbox, *, image: str, command: list[str], user: str, network: bool,
                   mounts: dict[str, dict[str, str]], workspace: bool, hardened: bool,
                   progress: Progress | None, keep: bool = False) -> tuple[int, str, str]:
    """Run `command` in a fresh container; return (exit code, output, container id if kept)."""
    settings = sandbox.settings
    binds = dict(mounts)
    if workspace:
        binds[str(sandbox.project.workspace)] = {"bind": policy.WORKSPACE, "mode": "rw"}
    if network and HOST_CA_BUNDLE.exists():
        binds[str(HOST_CA_BUNDLE)] = {"bind": str(HOST_CA_BUNDLE), "mode": "ro"}
    host_config: dict[str, Any] = {
        "binds": binds,
        "network_mode": "bridge" if network else "none",
        "mem_limit": policy.parse_size(settings.sandbox.memory),
        "pids_limit": max(settings.sandbox.pids, 512),
        "security_opt": ["no-new-privileges"] if hardened else [],
        "tmpfs": {"/tmp": "rw,nosuid,nodev,size=1g,mode=1777"},
        "ulimits": [policy._ulimit({"Name": "nofile", "Soft": policy.NOFILE, "Hard": policy.NOFILE}),
                    policy._ulimit({"Name": "nproc", "Soft": 16384, "Hard": 16384})],
    }
    if hardened:
        host_config.update(cap_drop=["ALL"], read_only=True)
    raw = {"UsernsMode": sandbox.identity.userns} if sandbox.identity.userns and user != "0:0" else {}
    env = dict(policy.BASE_ENV)
    if network and HOST_CA_BUNDLE.exists():
        env.update(PIP_CERT=str(HOST_CA_BUNDLE), SSL_CERT_FILE=str(HOST_CA_BUNDLE))
    spec = {"image": image, "command": command, "user": user, "working_dir": "/",
            "environment": env, "hostname": "install",
            "labels": sandbox.labels("install"), "host_config": host_config, "raw_host_config": raw}
    engine = sandbox.engine
    container = engine.create_container(spec)
    output = bytearray()
    try:
        engine.start(container)
        pending = b""
        for data in engine.logs(container):
            output += data
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.startswith(MARK.encode()):
                    progress = None  # what follows is our own version listing
                elif progress:
                    progress(line.decode("utf-8", errors="replace"))
        code = engine.wait(container)
    finally:
        if not keep:
            engine.remove(container)
    return (code if code is not None else 1), output.decode("utf-8", errors="replace"), container


def _versions(output: str) -> dict[str, str]:
    """The `name version` lines printed after MARK."""
    found: dict[str, str] = {}
    if MARK not in output:
        return found
    for line in output.split(MARK, 1)[1].splitlines():
        parts = line.split()
        if len(parts) == 2:
            found[parts[0]] = parts[1]
    return found


def _changed(before: dict[str, str], after: dict[str, str]) -> dict[str, str]:
    return {name: version for name, version in after.items() if before.get(name) != version}


# --- managers --------------------------------------------------------------------------------------
def _pip(sandbox: Sandbox, packages: list[str], progress: Progress | None) -> tuple[int, str, dict[str, str]]:
    options, mounts, remote = pip_plan(sandbox.settings)
    listing = ("/workspace/.venv/bin/python -c 'import importlib.metadata as m\n"
               "for d in m.distributions(): print(d.metadata[\"Name\"], d.version)'")
    script = ("set -e; [ -x /workspace/.venv/bin/python ] || python3 -m venv /workspace/.venv; "
              f"{listing} > /tmp/before; /workspace/.venv/bin/python -m pip install -q "
              f"--disable-pip-version-check \"$@\"; echo {MARK}; cat /tmp/before; echo {MARK}; {listing}")
    code, output, _ = _run_container(sandbox, image=sandbox.image, command=["sh", "-c", script, "pip", *options,
                                     *packages], user=sandbox.identity.user, network=remote, mounts=mounts,
                                     workspace=True, hardened=True, progress=progress)
    parts = output.split(MARK)
    before, after = {}, {}
    if len(parts) == 3:
        before = _versions(MARK + parts[1])
        after = _versions(MARK + parts[2])
    return code, parts[0] if parts else output, _changed(before, after)


def _r(sandbox: Sandbox, packages: list[str], progress: Progress | None) -> tuple[int, str, dict[str, str]]:
    repo = sandbox.settings.install.cran_repo or "https://cloud.r-project.org"
    names = ", ".join(json.dumps(p) for p in packages)
    script = (f'dir.create("/workspace/.R", showWarnings = FALSE); pkgs <- c({names}); '
              f'install.packages(pkgs, lib = "/workspace/.R", repos = {json.dumps(repo)}); '
              f'ok <- sapply(pkgs, requireNamespace, lib.loc = "/workspace/.R", quietly = TRUE); '
              f'cat("{MARK}\\n"); for (p in pkgs[ok]) cat(p, as.character(packageVersion(p, lib.loc = '
              f'"/workspace/.R")), "\\n"); quit(status = if (all(ok)) 0 else 1)')
    local = repo.startswith(("file://", "/"))
    mounts = {}
    if local and os.path.isdir(_local_path(repo) or ""):
        path = _local_path(repo) or ""
        mounts[path] = {"bind": path, "mode": "ro"}
    code, output, _ = _run_container(sandbox, image=sandbox.image, command=["Rscript", "-e", script],
                                     user=sandbox.identity.user, network=not local, mounts=mounts,
                                     workspace=True, hardened=True, progress=progress)
    return code, output.split(MARK)[0], _versions(output)


def _apt(sandbox: Sandbox, packages: list[str], progress: Progress | None) -> tuple[int, str, dict[str, str]]:
    from workbench.sandbox.sandbox import project_image

    names = " ".join(packages)
    script = ("set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; "
              f"apt-get install -y -qq --no-install-recommends {names}; rm -rf /var/lib/apt/lists/*; "
              f"echo {MARK}; dpkg-query -W -f='${{Package}} ${{Version}}\\n' {names}")
    # apt needs root and its usual capabilities inside; no workspace, no user code runs here.
    code, output, container = _run_container(sandbox, image=sandbox.image, command=["sh", "-c", script],
                                             user="0:0", network=True, mounts={}, workspace=False,
                                             hardened=False, progress=progress, keep=True)
    try:
        if code == 0:
            target = project_image(sandbox.project)
            repository, tag = target.rsplit(":", 1)
            sandbox.engine.commit(container, repository, tag, changes=["WORKDIR /workspace"])
            sandbox.use_image(target)
    finally:
        sandbox.engine.remove(container)
    return code, output.split(MARK)[0], _versions(output)


MANAGERS = {"pip": _pip, "r": _r, "apt": _apt}


def install(sandbox: Sandbox, manager: PackageManager, packages: Sequence[str],
            progress: Progress | None = None) -> InstallResult:
    if manager not in MANAGERS:
        raise UsageError(f"unknown package manager {manager!r}; choose one of: {', '.join(MANAGERS)}")
    wanted = check_packages(packages)
    started = time.monotonic()
    sandbox._emit("package.install_started", {"manager": manager, "packages": wanted})
    code, output, versions = MANAGERS[manager](sandbox, wanted, progress)
    installed = tuple(InstalledPackage(name, version, manager) for name, version in sorted(versions.items()))
    for package in installed:
        sandbox._emit(events.PACKAGE_INSTALLED, {"name": package.name, "version": package.version,
                                                 "manager": manager})
    if len(output) > OUTPUT_CAP:
        output = output[:OUTPUT_CAP] + "\n[... output truncated]"
    return InstallResult(manager=manager, requested=tuple(wanted), installed=installed, exit_code=code,
                         output=output, duration=time.monotonic() - started)

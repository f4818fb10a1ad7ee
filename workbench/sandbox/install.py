"""Package installs: their own step, in their own short-lived container, the only one that may have a network.

Where packages go, so they outlive every container:
  pip  a venv at /workspace/.venv (the sandbox's `python` then uses it)
  r    an R library at /workspace/.R (R_LIBS_USER points there)
  apt  the project's image: a container from the current image runs apt-get as root, and is committed
       as `localhost/workbench-project-<id>:latest`, which the sandbox uses from then on

Where packages come from ([install] in the settings; `workbench doctor` lists them and whether they answer):
  pip_find_links  a wheelhouse folder (or several, space-separated): mounted read-only, `--no-index`, and the
                  install container gets NO network.
  pip_index_url   a PEP 503 simple index. `file:///...`: mounted read-only, no network. On this machine's
                  loopback (`http://127.0.0.1:PORT/simple`, `localhost`, `::1`): resolved on the host, see below.
                  Anywhere else (a LAN mirror, PyPI): the install container is on the engine's bridge network.
                  Neither set: the host's pip configuration (index-url, extra-index-url, find-links), else PyPI.
  apt_mirror      `http(s)://HOST/debian` (a Debian mirror: `deb MIRROR <codename> main`, its Release signed as
                  usual) or a folder `file:///PATH` (a copy of a mirror with dists/, or a flat repository with
                  Packages at its top, unsigned and so marked `[trusted=yes]`: it is the user's own folder),
                  mounted read-only with NO network. apt then reads only that source: its sources list and
                  sources.list.d are replaced for the install (`Dir::Etc::SourceList`/`SourceParts`), and a
                  source that fails to update fails the install (`APT::Update::Error-Mode=any`).
  cran_repo       a CRAN-like repository (`src/contrib/PACKAGES`): a folder (`file:///PATH` or `/PATH`),
                  mounted read-only with NO network, or a URL reached over the bridge network.
A configured source that is missing or does not answer stops the install before any container starts, with
one line naming it and exit status 5 (SourceUnreachable); the wording is the doctor's own.

The loopback index, decided: resolve on the host, install with no network. The install container is on a
bridge network where 127.0.0.1 is the container itself, and a server bound to the host's loopback is not
reachable from there. The alternatives were weighed and rejected:
  * rewriting the host to `host.containers.internal` (Podman 4.3 does add it on bridge networks: the bridge
    gateway, 10.88.0.1 rootful) only works if the index listens on that address rather than loopback, i.e.
    the user must widen their server to every container (and, rootless, to the LAN address slirp4netns uses);
  * `slirp4netns:allow_host_loopback=true` hands the install step, which may run an sdist's build script,
    every service on the host's loopback (the engine API over TCP, databases, ...) plus open egress;
  * a relay on the gateway address is more moving parts and still gives the container a network.
So for an index on loopback, Workbench's own pip on the host runs `pip download --only-binary=:all:` for the
sandbox's interpreter (its Python version, implementation, glibc and architecture are read from the image,
in a container with no network) into a temporary wheelhouse, with the host's pip configuration and PIP_*
variables ignored so nothing else is consulted. That wheelhouse is mounted read-only and pip in the install
container runs `--no-index` with NO network. Security properties: the install container never has a network;
the host only downloads files (wheels run no code when downloaded or installed, and sdists are refused, so no
build script runs on the host or in the container); the loopback service is never exposed beyond the host.
The cost: a loopback index must offer wheels (pure-Python or manylinux ones matching the image); an sdist-only
package is reported as not found. apt and CRAN sources on loopback are refused with a one-line error (serve
them as a folder, which is both simpler and network-free, or on an address containers can reach).

Network policy, honestly stated:
  * enforced: user code never has a network (`network_mode="none"`); an install container runs only the
    package manager command built here, then is removed; it has no network whenever its sources are
    local (folders, file:// URLs, a loopback index resolved on the host); package names are checked
    (names and version pins only: no options, URLs or shell).
  * not enforced: with a remote source the install container is on the engine's default network, and
    nothing filters its egress by host name. A package's build script (an sdist's setup.py, an R package's
    configure) runs there with that network; pip is asked to `--prefer-binary` to make that rarer. Egress
    filtering by host needs a proxy in front of the engine's network; that is the place to add it.
  * the host's CA bundle (public certificates, no secret) is mounted read-only when a network is given, so
    TLS to the index works behind a corporate proxy CA, as it does on the host.
"""

from __future__ import annotations

import configparser
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench import events
from workbench.errors import ConfigError, UsageError
from workbench.sandbox import policy
from workbench.sandbox.errors import InstallFailed, SourceUnreachable
from workbench.sandbox.types import InstalledPackage, InstallResult, PackageManager

if TYPE_CHECKING:
    from workbench.sandbox.sandbox import Sandbox

OUTPUT_CAP = 256 * 1024
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
MARK = "@@workbench-versions@@"
WHEELS_MOUNT = "/mnt/workbench-wheels"  # where a wheelhouse resolved on the host appears, read-only
APT_MOUNT = "/mnt/workbench-apt"  # a local apt mirror folder, read-only
# Package names/specs we pass to managers: no options, no URLs to arbitrary places, no shell.
PACKAGE_SPEC = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*(\[[A-Za-z0-9_,.-]+\])?([<>=!~]=?[A-Za-z0-9.*+!-]+)?$")
# A source location as it may appear in a sources line or an R string: a URL or an absolute path, no blanks
# or quotes.
LOCATION = re.compile(r"^((https?|file)://[^\s'\"\\]+|/[^\s'\"\\]*)$")
# The doctor's names for the [install] settings; its findings and our errors use the same words.
SOURCE_NAMES = {"pip_find_links": "pip wheelhouse", "pip_index_url": "pip index", "apt_mirror": "apt mirror",
                "cran_repo": "CRAN repository"}
MANAGER_SOURCES = {"pip": ("pip_find_links", "pip_index_url"), "apt": ("apt_mirror",), "r": ("cran_repo",)}
Progress = Callable[[str], None]


def check_packages(packages: Sequence[str]) -> list[str]:
    if not packages:
        raise UsageError("name at least one package")
    bad = [p for p in packages if not PACKAGE_SPEC.match(p)]
    if bad:
        raise UsageError(f"not a package name: {bad[0]!r} (names and version pins only, e.g. pandas==2.2.2)")
    return list(packages)


# --- sources -----------------------------------------------------------------------------------------
def is_loopback(location: str) -> bool:
    """An http(s) URL whose host is this machine's loopback (127.0.0.0/8, ::1, localhost)."""
    parsed = urllib.parse.urlsplit(location)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return False
    host = parsed.hostname.lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _local_path(source: str) -> str | None:
    if source.startswith("file://"):
        return urllib.parse.unquote(source[len("file://"):])
    return source if source.startswith("/") else None


def source_problem(setting: str, location: str) -> str | None:
    """Why the install container could not use this configured source at all, whatever answers; else None."""
    if setting in ("apt_mirror", "cran_repo") and is_loopback(location):
        return ("is on this machine's loopback, which the install container cannot reach; serve it as a "
                "folder (file:///PATH, read-only and network-free) or on an address containers reach")
    return None


def check_sources(settings, manager: str) -> None:
    """Refuse to start when a configured source for `manager` is malformed, missing or silent (exit 5)."""
    from workbench.doctor import _source_reachable  # the doctor's check, so both say the same thing

    for setting in MANAGER_SOURCES.get(manager, ()):
        value = getattr(settings.install, setting)
        name = SOURCE_NAMES[setting]
        for location in value.split() if setting == "pip_find_links" else ([value] if value else []):
            if not LOCATION.match(location):
                raise ConfigError(f"[install] {setting} = {location!r} is not a URL or an absolute folder",
                                  "use http(s)://..., file:///... or /...")
            problem = source_problem(setting, location)
            if problem:
                raise SourceUnreachable(f"install source: {name} {location} {problem}")
            ok, detail = _source_reachable(location)
            if not ok:
                raise SourceUnreachable(f"install source: {name} {location}: {detail}",
                                        f"check [install] {setting} in the settings; workbench doctor lists "
                                        "every source")


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


@dataclass(frozen=True)
class PipPlan:
    """How one pip install runs: options and mounts for the container, whether it gets a network, and
    (for a loopback index) the source options for resolving on the host first."""

    options: list[str]
    mounts: dict[str, dict[str, str]] = field(default_factory=dict)
    network: bool = False
    host_sources: list[str] | None = None  # not None: `pip download` on the host with these, then no network


def pip_plan(settings) -> PipPlan:
    sources = pip_sources(settings)
    options: list[str] = ["--prefer-binary"]
    host: list[str] = []
    mounts: dict[str, dict[str, str]] = {}
    remote = loopback = False
    for key, values in sources.items():
        for value in values:
            local = _local_path(value)
            if local is not None:
                if os.path.isdir(local):
                    # A file:// "simple" index links to ../../files/: mount the folder above it.
                    root = os.path.dirname(local.rstrip("/")) if key != "find-links" else local
                    mounts[root] = {"bind": root, "mode": "ro"}
                    options += [f"--{key}", value]
                    host += [f"--{key}", value]
            else:
                loopback = loopback or is_loopback(value)
                remote = remote or not is_loopback(value)
                options += [f"--{key}", value]
                host += [f"--{key}", value]
    if not sources["index-url"]:
        if settings.install.pip_find_links and not settings.install.pip_index_url:
            options.append("--no-index")  # a wheelhouse was configured alone: air-gapped, no network
            host.append("--no-index")
        else:
            remote = True  # pip's default index, PyPI, as on the host
    if loopback:
        # The container cannot reach the host's loopback: resolve there, install from the result offline.
        return PipPlan(["--no-index", "--find-links", WHEELS_MOUNT], {}, False, host)
    return PipPlan(options, mounts, remote, None)


def _pip_target(sandbox: Sandbox) -> list[str]:
    """`pip download` options that describe the sandbox's interpreter (read from its image, no network)."""
    probe = ("import os, platform, sys; print(sys.implementation.name, '%d.%d' % sys.version_info[:2], "
             "platform.machine(), (os.confstr('CS_GNU_LIBC_VERSION') or 'none 0.0').split()[1])")
    code, output, _ = _run_container(sandbox, image=sandbox.image, command=["python3", "-c", probe],
                                     user=sandbox.identity.user, network=False, mounts={}, workspace=False,
                                     hardened=True, progress=None)
    parts = output.split()
    if code != 0 or len(parts) != 4:
        raise InstallFailed(f"could not read the sandbox's Python version: {output.strip()[-200:]}")
    implementation, version, arch, glibc = parts
    options = ["--implementation", {"cpython": "cp", "pypy": "pp"}.get(implementation, "py"),
               "--python-version", version]
    major, _, minor = glibc.partition(".")
    if major == "2" and minor.isdigit():
        options += [f for m in range(int(minor), 4, -1) for f in ("--platform", f"manylinux_2_{m}_{arch}")]
        options += ["--platform", f"manylinux2014_{arch}", "--platform", f"manylinux2010_{arch}",
                    "--platform", f"manylinux1_{arch}"]
    return options + ["--platform", f"linux_{arch}", "--platform", "any"]


def host_download_command(sources: list[str], target: list[str], packages: list[str], dest: str) -> list[str]:
    return [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
            "--only-binary=:all:", "--timeout", "15", "--retries", "1", "--dest", dest,
            *sources, *target, *packages]


def _host_download(sandbox: Sandbox, sources: list[str], packages: list[str], dest: str,
                   progress: Progress | None) -> tuple[int, str]:
    """Download wheels for `packages` (and their dependencies) from a loopback index into `dest`."""
    import importlib.util

    if importlib.util.find_spec("pip") is None:
        raise InstallFailed("an index on loopback is resolved by Workbench's own pip, which is not installed",
                            f"{sys.executable} -m ensurepip")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # only the configured sources: no pip.conf, no PIP_* variables
    env["NO_PROXY"] = env["no_proxy"] = ",".join(filter(None, [os.environ.get("NO_PROXY", ""),
                                                                "localhost,127.0.0.1,::1"]))
    command = host_download_command(sources, _pip_target(sandbox), packages, dest)
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    output = done.stdout + done.stderr
    if progress:
        for line in output.splitlines():
            progress(line)
    return done.returncode, output


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


def _readable(folder: str) -> None:
    """A wheelhouse we made: readable by the sandbox user (another uid when the engine is rootful)."""
    os.chmod(folder, 0o755)
    for entry in os.scandir(folder):
        os.chmod(entry.path, 0o644)


# --- managers --------------------------------------------------------------------------------------
def pip_script() -> str:
    listing = ("/workspace/.venv/bin/python -c 'import importlib.metadata as m\n"
               "for d in m.distributions(): print(d.metadata[\"Name\"], d.version)'")
    return ("set -e; [ -x /workspace/.venv/bin/python ] || python3 -m venv /workspace/.venv; "
            f"{listing} > /tmp/before; /workspace/.venv/bin/python -m pip install -q "
            f"--disable-pip-version-check \"$@\"; echo {MARK}; cat /tmp/before; echo {MARK}; {listing}")


def _pip(sandbox: Sandbox, packages: list[str], progress: Progress | None) -> tuple[int, str, dict[str, str]]:
    plan = pip_plan(sandbox.settings)
    mounts = dict(plan.mounts)
    wheels = None
    try:
        if plan.host_sources is not None:
            wheels = tempfile.mkdtemp(prefix="workbench-wheels-")
            code, output = _host_download(sandbox, plan.host_sources, packages, wheels, progress)
            if code != 0:
                return code, output, {}
            _readable(wheels)
            mounts[wheels] = {"bind": WHEELS_MOUNT, "mode": "ro"}
        code, output, _ = _run_container(sandbox, image=sandbox.image,
                                         command=["sh", "-c", pip_script(), "pip", *plan.options, *packages],
                                         user=sandbox.identity.user, network=plan.network, mounts=mounts,
                                         workspace=True, hardened=True, progress=progress)
    finally:
        if wheels:
            shutil.rmtree(wheels, ignore_errors=True)
    parts = output.split(MARK)
    before, after = {}, {}
    if len(parts) == 3:
        before = _versions(MARK + parts[1])
        after = _versions(MARK + parts[2])
    return code, parts[0] if parts else output, _changed(before, after)


def r_plan(settings, packages: list[str]) -> tuple[str, dict[str, dict[str, str]], bool]:
    """(the Rscript expression, read-only mounts, whether a network is needed)."""
    repo = settings.install.cran_repo or "https://cloud.r-project.org"
    mounts: dict[str, dict[str, str]] = {}
    local = _local_path(repo)
    if local is not None:
        local = local.rstrip("/") or "/"
        mounts[local] = {"bind": local, "mode": "ro"}
        repo = "file://" + local
    names = ", ".join(json.dumps(p) for p in packages)
    script = (f'dir.create("/workspace/.R", showWarnings = FALSE); pkgs <- c({names}); '
              f'install.packages(pkgs, lib = "/workspace/.R", repos = {json.dumps(repo)}); '
              f'ok <- sapply(pkgs, requireNamespace, lib.loc = "/workspace/.R", quietly = TRUE); '
              f'cat("{MARK}\\n"); for (p in pkgs[ok]) cat(p, as.character(packageVersion(p, lib.loc = '
              f'"/workspace/.R")), "\\n"); quit(status = if (all(ok)) 0 else 1)')
    return script, mounts, local is None


def _r(sandbox: Sandbox, packages: list[str], progress: Progress | None) -> tuple[int, str, dict[str, str]]:
    script, mounts, network = r_plan(sandbox.settings, packages)
    code, output, _ = _run_container(sandbox, image=sandbox.image, command=["Rscript", "-e", script],
                                     user=sandbox.identity.user, network=network, mounts=mounts,
                                     workspace=True, hardened=True, progress=progress)
    return code, output.split(MARK)[0], _versions(output)


def apt_plan(settings, packages: list[str]) -> tuple[list[str], dict[str, dict[str, str]], bool]:
    """(the command, read-only mounts, whether a network is needed) for an apt install.

    With [install] apt_mirror, apt reads one sources list holding only that mirror (the image's own
    sources.list and sources.list.d are replaced for this run, not edited, so the committed image keeps
    them), and any source that fails to update fails the install.
    """
    names = " ".join(packages)
    mounts: dict[str, dict[str, str]] = {}
    network = True
    apt = "apt-get"
    sources, args = "", []
    mirror = settings.install.apt_mirror
    if mirror:
        local = _local_path(mirror)
        if local is not None:
            local = local.rstrip("/") or "/"
            mounts[local] = {"bind": APT_MOUNT, "mode": "ro"}
            network = False
            if os.path.isdir(os.path.join(local, "dists")):
                line, args = '"deb $1 $VERSION_CODENAME main"', [f"file:{APT_MOUNT}"]
            else:  # a flat repository: Packages at its top, the user's own unsigned folder
                line, args = '"deb [trusted=yes] $1 ./"', [f"file:{APT_MOUNT}"]
        else:
            line, args = '"deb $1 $VERSION_CODENAME main"', [mirror.rstrip("/")]
        # The mirror travels as "$1", never pasted into the script.
        sources = ("mkdir -p /tmp/apt/parts; . /etc/os-release; "
                   f"echo {line} > /tmp/apt/sources.list; cat /tmp/apt/sources.list; ")
        apt = ("apt-get -o Dir::Etc::SourceList=/tmp/apt/sources.list -o Dir::Etc::SourceParts=/tmp/apt/parts "
               "-o APT::Update::Error-Mode=any")
    script = (f"set -e; export DEBIAN_FRONTEND=noninteractive; {sources}{apt} update -qq; "
              f"{apt} install -y -qq --no-install-recommends {names}; apt-get clean; rm -rf /var/lib/apt/lists/*; "
              f"echo {MARK}; dpkg-query -W -f='${{Package}} ${{Version}}\\n' {names}")
    return ["sh", "-c", script, "apt", *args], mounts, network


def _apt(sandbox: Sandbox, packages: list[str], progress: Progress | None) -> tuple[int, str, dict[str, str]]:
    from workbench.sandbox.sandbox import project_image

    command, mounts, network = apt_plan(sandbox.settings, packages)
    # apt needs root and its usual capabilities inside; no workspace, no user code runs here.
    code, output, container = _run_container(sandbox, image=sandbox.image, command=command,
                                             user="0:0", network=network, mounts=mounts, workspace=False,
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
    check_sources(sandbox.settings, manager)
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

"""Package installs: their own step, in their own short-lived container, the only one that may have a network.

Where packages go, so they outlive every container:
  pip  a venv at /workspace/.venv (the sandbox's `python` then uses it)
  r    an R library at /workspace/.R (R_LIBS_USER points there)
  apt  the project's image: a container from the current image runs apt-get as root, and is committed
       as `localhost/workbench-project-<id>:latest`, which the sandbox uses from then on

Where packages come from ([install] in the settings; `workbench doctor` lists them and whether they answer):
  pip_find_links  a wheelhouse folder (or several, space-separated): mounted read-only, `--no-index`.
  pip_index_url   a PEP 503 simple index: `file:///...` (mounted read-only) or an http(s) URL (a LAN mirror, a
                  mirror on this machine's loopback, PyPI). Neither set: the host's pip configuration
                  (index-url, extra-index-url, find-links, PIP_* variables), else PyPI.
  apt_mirror      `http(s)://HOST/debian` (a Debian mirror: `deb MIRROR <codename> main`, its Release signed as
                  usual) or a folder `file:///PATH` (a copy of a mirror with dists/, or a flat repository with
                  Packages at its top, unsigned and so marked `[trusted=yes]`: it is the user's own folder),
                  mounted read-only. apt then reads only that source: its sources list and sources.list.d are
                  replaced for the install (`Dir::Etc::SourceList`/`SourceParts`), and a source that fails to
                  update fails the install (`APT::Update::Error-Mode=any`). Not set: the image's own sources.
  cran_repo       a CRAN-like repository (`src/contrib/PACKAGES`): a folder (`file:///PATH` or `/PATH`), mounted
                  read-only, or a URL. Not set: https://cloud.r-project.org.
  allow_hosts     more places an install may reach, `host`, `host:port` or a URL, space-separated: for an index
                  whose files live on another host, or a build that must fetch from one.
A configured source that is missing or does not answer stops the install before any container starts, with
one line naming it and exit status 5 (SourceUnreachable); the wording is the doctor's own.

Network policy (egress.py holds the proxy and says why it has this shape):
  * an install container, like user code, has `network_mode="none"`. When every source is a folder that is
    all: nothing leaves the container.
  * when a source is a URL, the container's one way out is a Unix socket to Workbench's allowlisting proxy,
    which lets through only the host:port of each configured URL (plus PyPI's file host when the index is
    PyPI, the image's apt sources when no mirror is set, and `allow_hosts`). Everything else is refused and
    reported: the CLI prints it, `install.egress` puts it in the audit log. A package's build script (an
    sdist's setup.py, an R package's configure) runs under the same rule; pip is asked to `--prefer-binary`
    to make that rarer.
  * an install container runs only the package manager command built here, then is removed; package names
    are checked (names and version pins only: no options, URLs or shell).
  * the host's CA bundle (public certificates, no secret) is mounted read-only when the proxy is in use, so
    TLS to a source works behind a corporate proxy CA, as it does on the host.

What runs, and what is believed (code in the sandbox writes the whole workspace, so nothing there is trusted):
  * pip and R come from the read-only image (/usr/bin/python3 with the image's pip, /usr/bin/Rscript),
    started so that nothing under /workspace is executed or imported: the venv's bin/python, a .pth or
    sitecustomize.py in its site-packages, its own pip, pyvenv.cfg and pip.conf are never used; packages
    already in /workspace/.R are never loaded (R builds into a library of its own, then copies). The venv's
    interpreter links and pyvenv.cfg are put back as `python3 -m venv` makes them, for later executions.
    apt runs as root in a container of the project's image, with no workspace mounted. Package code run by
    a build (an sdist's backend, an R package's configure, a postinst) is the package's own and stays behind
    the proxy. The container's PATH holds only the image's folders.
  * what was installed (`package.installed`) is what the host reads back after the container has ended
    (readback.py: the venv's METADATA files, .R/*/DESCRIPTION, dpkg's status file), never what the
    container printed.
  * a source folder inside this project's workspace is refused when the install has a way out (pip, R) or
    runs as root (apt): code could have planted a package there.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import re
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench import events
from workbench.confined import Confined, Refused
from workbench.errors import ConfigError, UsageError
from workbench.sandbox import egress, policy, readback
from workbench.sandbox.egress import Attempt, Destination
from workbench.sandbox.errors import InstallFailed, SourceUnreachable
from workbench.sandbox.image_pip import NEW_VENV, PIP_ENV, pip_command
from workbench.sandbox.types import InstalledPackage, InstallResult, PackageManager

if TYPE_CHECKING:
    from workbench.sandbox.sandbox import Sandbox

OUTPUT_CAP = 256 * 1024  # bytes of an install's output kept at its start, and again at its end
LINE_CAP = 64 * 1024  # a longer run of output without a newline is passed to `progress` in pieces
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
APT_MOUNT = "/mnt/workbench-apt"  # a local apt mirror folder, read-only
APT_OUT = "/mnt/workbench-out"  # where an apt install leaves a copy of dpkg's status file for the host
IMAGE_RSCRIPT = "/usr/bin/Rscript"  # the image's own R: read-only, never the workspace's
R_LIBRARY = f"{policy.WORKSPACE}/.R"
# Every install container's PATH: the image's folders only (the sandbox's own PATH starts with the venv).
INSTALL_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
# Package names/specs we pass to managers: no options, no URLs to arbitrary places, no shell.
PACKAGE_SPEC = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*(\[[A-Za-z0-9_,.-]+\])?([<>=!~]=?[A-Za-z0-9.*+!-]+)?$")
# A source location as it may appear in a sources line or an R string: a URL or an absolute path, no blanks
# or quotes.
LOCATION = re.compile(r"^((https?|file)://[^\s'\"\\]+|/[^\s'\"\\]*)$")
# The doctor's names for the [install] settings; its findings and our errors use the same words.
SOURCE_NAMES = {"pip_find_links": "pip wheelhouse", "pip_index_url": "pip index", "apt_mirror": "apt mirror",
                "cran_repo": "CRAN repository"}
MANAGER_SOURCES = {"pip": ("pip_find_links", "pip_index_url"), "apt": ("apt_mirror",), "r": ("cran_repo",)}
PYPI_FILES = {"pypi.org": "files.pythonhosted.org"}  # an index host and the host its links point to
DEFAULT_CRAN = "https://cloud.r-project.org"
Progress = Callable[[str], None]


def shown(location: str) -> str:
    """A source as it may be printed or logged: credentials in a URL (`https://user:token@mirror/simple`)
    become `***`."""
    parsed = urllib.parse.urlsplit(location)
    if parsed.scheme and "@" in parsed.netloc:
        return urllib.parse.urlunsplit(parsed._replace(netloc="***@" + parsed.netloc.rpartition("@")[2]))
    return location


def check_packages(packages: Sequence[str]) -> list[str]:
    if not packages:
        raise UsageError("name at least one package")
    bad = [p for p in packages if not PACKAGE_SPEC.match(p)]
    if bad:
        raise UsageError(f"not a package name: {bad[0]!r} (names and version pins only, e.g. pandas==2.2.2)")
    return list(packages)


# --- sources -----------------------------------------------------------------------------------------
def _local_path(source: str) -> str | None:
    if source.startswith("file://"):
        return urllib.parse.unquote(source[len("file://"):])
    return source if source.startswith("/") else None


def check_sources(settings, manager: str) -> None:
    """Refuse to start when a configured source for `manager` is malformed, missing or silent (exit 5)."""
    from workbench.doctor import _source_reachable  # the doctor's check, so both say the same thing

    for setting in MANAGER_SOURCES.get(manager, ()):
        value = getattr(settings.install, setting)
        name = SOURCE_NAMES[setting]
        for location in value.split() if setting == "pip_find_links" else ([value] if value else []):
            if not LOCATION.match(location):
                raise ConfigError(f"[install] {setting} = {shown(location)!r} is not a URL or an absolute folder",
                                  "use http(s)://..., file:///... or /...")
            ok, detail = _source_reachable(location)
            if not ok:
                raise SourceUnreachable(f"install source: {name} {shown(location)}: {detail}",
                                        f"check [install] {setting} in the settings; workbench doctor lists "
                                        "every source")


def extra_allowed(settings) -> frozenset[Destination]:
    """`[install] allow_hosts`, checked: an entry that names no host:port is a configuration error."""
    found: set[Destination] = set()
    for entry in settings.install.allow_hosts.split():
        parsed = egress.parse_allowed(entry)
        if not parsed:
            raise ConfigError(f"[install] allow_hosts entry {entry!r} is not a host, host:port or URL",
                              "e.g. allow_hosts = \"files.example.com mirror.lan:8080\"")
        found.update(parsed)
    return frozenset(found)


def allowed_for(urls: Sequence[str], settings) -> frozenset[Destination]:
    """What an install whose sources are `urls` may reach: their host:port (and PyPI's file host with PyPI),
    plus allow_hosts; empty when no source is a URL, so the install gets no way out at all."""
    found: set[Destination] = set()
    for url in urls:
        destination = egress.destination_of(url)
        if destination is None:
            continue
        found.add(destination)
        if destination.host in PYPI_FILES:
            found.add(Destination(PYPI_FILES[destination.host], 443))
    return frozenset(found | extra_allowed(settings)) if found else frozenset()


def reachable(settings, manager: str) -> str:
    """Where an install with `manager` may reach, in words (doctor, the approval prompts). Raises
    ConfigError for a malformed allow_hosts."""
    if manager == "pip":
        allowed = pip_plan(settings).egress
    elif manager == "r":
        allowed = allowed_for([cran_repo(settings)], settings)
    elif manager == "apt" and not settings.install.apt_mirror:
        return "the image's apt sources" + (f" and {', '.join(str(d) for d in sorted(extra_allowed(settings)))}"
                                            if settings.install.allow_hosts else "")
    elif manager == "apt":
        allowed = allowed_for([settings.install.apt_mirror], settings)
    else:
        raise UsageError(f"unknown package manager {manager!r}; choose one of: pip, r, apt")
    return ", ".join(str(d) for d in sorted(allowed)) or "nothing (local folders only)"


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
    """How one pip install runs: options and read-only mounts for the container, and where it may reach
    (empty: nowhere, every source is a folder)."""

    options: list[str]
    mounts: dict[str, dict[str, str]] = field(default_factory=dict)
    egress: frozenset[Destination] = frozenset()


def pip_plan(settings) -> PipPlan:
    sources = pip_sources(settings)
    options: list[str] = ["--prefer-binary"]
    mounts: dict[str, dict[str, str]] = {}
    urls: list[str] = []
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
                urls.append(value)
                options += [f"--{key}", value]
    if not sources["index-url"]:
        if settings.install.pip_find_links and not settings.install.pip_index_url:
            options.append("--no-index")  # a wheelhouse was configured alone: air-gapped
        else:
            urls.append("https://pypi.org/simple")  # pip's default index, as on the host
    return PipPlan(options, mounts, allowed_for(urls, settings))


# --- the install container -------------------------------------------------------------------------
def _host_uid(sandbox: Sandbox, user: str) -> int:
    """The host uid the container's user is: rootless, always this user (keep-id, or the namespace's root);
    rootful, the same number."""
    if sandbox.engine.rootless:
        return os.getuid()
    owner = sandbox.workspace_owner()
    if owner is not None and user == sandbox.identity.user:  # mapped into the user namespace's range
        return owner[0]
    try:
        return int(user.split(":")[0])
    except ValueError:
        return -1


def _open_to(uid: int, folder: str, socket_path: str) -> None:
    """Let `uid` (and nobody else) reach the proxy's socket: ours already; as root, handed over; otherwise
    (a rootful engine run by another user, rare) open to all, in a folder nobody can list."""
    if uid == os.getuid():
        os.chmod(folder, 0o700)
    elif os.getuid() == 0 and uid >= 0:
        os.chown(folder, uid, -1)
        os.chown(socket_path, uid, -1)
        os.chmod(folder, 0o700)
    else:
        os.chmod(folder, 0o711)
        os.chmod(socket_path, 0o666)


class KeptOutput:
    """An install's output as kept: its first and last `cap` bytes, whatever it prints (a build log can run
    to gigabytes; the version listing we read comes at the very end)."""

    def __init__(self, cap: int):
        self.cap = cap
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.cap - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > 2 * self.cap:  # trim now and then, not on every chunk
                del self.tail[: len(self.tail) - self.cap]

    def text(self) -> str:
        tail = self.tail[-self.cap:]
        skipped = self.total - len(self.head) - len(tail)
        middle = f"\n[... {skipped:,} bytes of output not kept ...]\n".encode() if skipped else b""
        return (bytes(self.head) + middle + bytes(tail)).decode("utf-8", errors="replace")


@dataclass(frozen=True)
class ContainerRun:
    exit_code: int
    output: str
    container: Any
    attempts: tuple[Attempt, ...] = ()


class WayOut:
    """An install's one way out: the egress proxy listening on a Unix socket in a folder of its own, which a
    container gets mounted (with the environment that points its clients at the relay). Opened before any
    container starts, so that no room for the socket stops the install before anything ran."""

    def __init__(self, sandbox: Sandbox, user: str, allowed: frozenset[Destination]):
        # A Unix socket's path is limited to about 100 bytes: a long TMPDIR falls back to /tmp.
        where = None if len(tempfile.gettempdir()) < 60 else "/tmp"
        self.proxy: egress.EgressProxy | None = None
        self.folder: str | None = None
        try:
            self.folder = tempfile.mkdtemp(prefix="workbench-egress-", dir=where)
            socket_path = os.path.join(self.folder, egress.SOCKET_NAME)
            self.proxy = egress.EgressProxy(allowed)
            self.proxy.listen_unix(socket_path, 0o600)
            _open_to(_host_uid(sandbox, user), self.folder, socket_path)
        except OSError as exc:
            self.close()
            raise InstallFailed(f"cannot open the install's way out (its egress proxy socket): "
                                f"{exc.strerror or exc}",
                                f"check free space and permissions in {where or tempfile.gettempdir()}") from exc

    def attach(self, binds: dict[str, dict[str, str]], env: dict[str, str], command: list[str]) -> list[str]:
        """Mount the socket and the CA bundle into `binds`, point `env` at the relay; the command to run."""
        if HOST_CA_BUNDLE.exists():
            binds[str(HOST_CA_BUNDLE)] = {"bind": str(HOST_CA_BUNDLE), "mode": "ro"}
            env.update(PIP_CERT=str(HOST_CA_BUNDLE), SSL_CERT_FILE=str(HOST_CA_BUNDLE),
                       CURL_CA_BUNDLE=str(HOST_CA_BUNDLE))
        assert self.folder is not None
        binds[self.folder] = {"bind": egress.SOCKET_MOUNT, "mode": "rw"}
        env.update(egress.proxy_environment())
        return egress.relay_command(command)

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        return tuple(self.proxy.attempts) if self.proxy is not None else ()

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.close()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> WayOut:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _way_out(sandbox: Sandbox, user: str, allowed: frozenset[Destination]) -> WayOut | contextlib.nullcontext:
    """A WayOut when the install may reach somewhere; otherwise nothing to open (None inside `with`)."""
    return WayOut(sandbox, user, allowed) if allowed else contextlib.nullcontext()


def _run_container(sandbox: Sandbox, *, image: str, command: list[str], user: str,
                   allowed: frozenset[Destination], mounts: dict[str, dict[str, str]], workspace: bool,
                   hardened: bool, progress: Progress | None, keep: bool = False,
                   environment: dict[str, str] | None = None, way_out: WayOut | None = None) -> ContainerRun:
    """Run `command` in a fresh container with no network; with `allowed`, behind the egress proxy (the
    caller's `way_out` when it opened one, else one opened and closed here).

    Its PATH holds the image's folders only (the sandbox's starts with the venv's bin, which code can fill),
    so every program it starts by name, the egress relay's `python3` included, is the image's own."""
    settings = sandbox.settings
    binds = dict(mounts)
    if workspace:
        binds[str(sandbox.project.workspace)] = {"bind": policy.WORKSPACE, "mode": "rw"}
    env = {**policy.BASE_ENV, **INSTALL_ENV, **(environment or {})}
    own = None
    if allowed:
        if way_out is None:
            way_out = own = WayOut(sandbox, user, allowed)
        command = way_out.attach(binds, env, command)
    host_config: dict[str, Any] = {
        "binds": binds,
        "network_mode": "none",
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
    spec = {"image": image, "command": command, "user": user, "working_dir": "/",
            "environment": env, "hostname": "install",
            "labels": sandbox.labels("install"), "host_config": host_config, "raw_host_config": raw}
    engine = sandbox.engine
    output = KeptOutput(OUTPUT_CAP)
    try:
        container = engine.create_container(spec)
        try:
            engine.start(container)
            pending = b""
            for data in engine.logs(container):
                output.add(data)
                pending += data
                *lines, pending = pending.split(b"\n")
                if len(pending) > LINE_CAP:  # no newline for a long while: show it in pieces
                    lines.append(pending)
                    pending = b""
                if progress:
                    for line in lines:
                        progress(line.decode("utf-8", errors="replace"))
            code = engine.wait(container)
        finally:
            if not keep:
                engine.remove(container)
    finally:
        if own is not None:
            own.close()
    return ContainerRun(code if code is not None else 1, output.text(), container,
                        way_out.attempts if allowed and way_out is not None else ())


# --- managers --------------------------------------------------------------------------------------
# An install container can reach the egress proxy, and the workspace is code's to write: anything there
# (the venv's bin/python, a .pth or sitecustomize.py in its site-packages, its own pip, pyvenv.cfg, pip.conf,
# an R package in .R) may be a trap. So pip (image_pip.py) and R run from the read-only image, started so that
# nothing under /workspace is executed or imported; the workspace is only where they write. The record comes
# from the host reading the metadata back afterwards (readback.py), never from what the container printed.


@dataclass(frozen=True)
class ManagerRun:
    exit_code: int
    output: str
    versions: dict[str, str]  # what changed, as the host read it back: name -> version
    attempts: tuple[Attempt, ...] = ()
    notes: tuple[str, ...] = ()  # what the read-back did not read, and why (one line each)


def _venv_missing(workspace: Path) -> bool:
    try:
        with Confined(workspace) as folder:
            entry = folder.lstat(".venv/pyvenv.cfg")
    except (Refused, OSError):
        return True
    return entry is None or entry.kind != "file"


def _pip(sandbox: Sandbox, packages: list[str], progress: Progress | None) -> ManagerRun:
    plan = pip_plan(sandbox.settings)
    _refuse_workspace_sources(sandbox, "pip", plan.mounts, plan.egress)
    workspace = sandbox.project.workspace
    with _way_out(sandbox, sandbox.identity.user, plan.egress) as way_out:
        if _venv_missing(workspace):
            # Made in a container of its own with no way out, so that what a new venv holds (pip, setuptools)
            # is there before the host reads what the install changes.
            made = _run_container(sandbox, image=sandbox.image, command=pip_command(NEW_VENV, [], new_venv=True),
                                  user=sandbox.identity.user, allowed=frozenset(), mounts={}, workspace=True,
                                  hardened=True, progress=progress, environment=PIP_ENV)
            if made.exit_code != 0:
                return ManagerRun(made.exit_code, made.output, {})
        before = readback.venv_distributions(workspace)
        run = _run_container(sandbox, image=sandbox.image, command=pip_command(plan.options, packages),
                             user=sandbox.identity.user, allowed=plan.egress, mounts=plan.mounts,
                             workspace=True, hardened=True, progress=progress, environment=PIP_ENV,
                             way_out=way_out)
    after = readback.venv_distributions(workspace)
    return ManagerRun(run.exit_code, run.output, readback.changed(before.versions, after.versions), run.attempts,
                      tuple(after.notes))


def cran_repo(settings) -> str:
    return settings.install.cran_repo or DEFAULT_CRAN


# R installs into a library of its own in the container's /tmp, with only the image's libraries besides: a
# package already in /workspace/.R (code's to write) is never loaded, not even as a dependency of the one
# being built; dependencies are installed afresh. The staged packages then replace theirs in .R. No profile
# or environment file is read (--vanilla, and the *_USER variables for R's own child processes).
R_STAGE = "/tmp/workbench-r-library"
R_ENV = {"R_LIBS_USER": R_STAGE, "R_LIBS": "", "R_PROFILE_USER": os.devnull, "R_ENVIRON_USER": os.devnull}


def r_plan(settings, packages: list[str]) -> tuple[str, dict[str, dict[str, str]], frozenset[Destination]]:
    """(the Rscript expression, read-only mounts, where it may reach)."""
    repo = cran_repo(settings)
    mounts: dict[str, dict[str, str]] = {}
    local = _local_path(repo)
    if local is not None:
        local = local.rstrip("/") or "/"
        mounts[local] = {"bind": local, "mode": "ro"}
        repo = "file://" + local
    names = ", ".join(json.dumps(p) for p in packages)
    script = (f'lib <- "{R_LIBRARY}"; stage <- "{R_STAGE}"; pkgs <- c({names}); dir.create(stage); '
              f'install.packages(pkgs, lib = stage, repos = {json.dumps(repo)}); '
              'ok <- file.exists(file.path(stage, pkgs, "DESCRIPTION")); '
              'built <- list.files(stage); built <- built[!startsWith(built, "00")]; '
              'dir.create(lib, showWarnings = FALSE); '
              'for (p in built) { unlink(file.path(lib, p), recursive = TRUE); '
              'ok <- c(ok, file.copy(file.path(stage, p), lib, recursive = TRUE, copy.date = TRUE)) }; '
              'quit(status = if (all(ok)) 0 else 1)')
    return script, mounts, allowed_for([repo], settings)  # (a file:// repo opens nothing)


def _r(sandbox: Sandbox, packages: list[str], progress: Progress | None) -> ManagerRun:
    script, mounts, allowed = r_plan(sandbox.settings, packages)
    _refuse_workspace_sources(sandbox, "r", mounts, allowed)
    workspace = sandbox.project.workspace
    before = readback.r_library(workspace)
    run = _run_container(sandbox, image=sandbox.image, command=[IMAGE_RSCRIPT, "--vanilla", "-e", script],
                         user=sandbox.identity.user, allowed=allowed, mounts=mounts,
                         workspace=True, hardened=True, progress=progress, environment=R_ENV)
    after = readback.r_library(workspace)
    return ManagerRun(run.exit_code, run.output, readback.changed(before.versions, after.versions), run.attempts,
                      tuple(after.notes))


def _refuse_workspace_sources(sandbox: Sandbox, manager: str, mounts: dict[str, dict[str, str]],
                              allowed: frozenset[Destination], *, always: bool = False) -> None:
    """A source folder inside this project's workspace is code's to fill: with a way out (or as root, for
    apt) a planted sdist or package would run there. Refused before any container starts."""
    if not (allowed or always):
        return
    workspace = os.path.realpath(sandbox.project.workspace)
    for folder in mounts:
        real = os.path.realpath(folder)
        if real == workspace or real.startswith(workspace + os.sep):
            setting = {"pip": "pip_find_links or pip_index_url", "r": "cran_repo", "apt": "apt_mirror"}[manager]
            raise ConfigError(f"[install] {setting}: {shown(folder)} is inside this project's workspace, which code "
                              "in the sandbox can change", "keep install sources outside the workspace")


def apt_source_urls(text: str) -> list[str]:
    """The http(s) URIs of the apt sources in `text` (parsed as the image build parses them)."""
    from workbench.sandbox.image import apt_sources

    urls = [source.uri for source in apt_sources(text)]
    return [url for url in dict.fromkeys(urls) if url.startswith(("http://", "https://"))]


def image_apt_sources(sandbox: Sandbox) -> list[str]:
    """The image's own apt sources, read in a container with no network."""
    run = _run_container(sandbox, image=sandbox.image,
                         command=["sh", "-c", "for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list "
                                              "/etc/apt/sources.list.d/*.sources; do [ -f \"$f\" ] && cat \"$f\"; "
                                              "echo; done; true"],
                         user=sandbox.identity.user, allowed=frozenset(), mounts={}, workspace=False,
                         hardened=True, progress=None)
    return apt_source_urls(run.output)


def apt_plan(settings, packages: list[str], image_sources: Sequence[str] = ()
             ) -> tuple[list[str], dict[str, dict[str, str]], frozenset[Destination]]:
    """(the command, read-only mounts, where it may reach) for an apt install.

    With [install] apt_mirror, apt reads one sources list holding only that mirror (the image's own
    sources.list and sources.list.d are replaced for this run, not edited, so the committed image keeps
    them), and any source that fails to update fails the install. Without it, the image's sources
    (`image_sources`) are used and are what it may reach. dpkg's status file is copied to APT_OUT at the end,
    for the host to read the installed versions from.
    """
    names = " ".join(packages)
    mounts: dict[str, dict[str, str]] = {}
    urls = list(image_sources)
    apt = "apt-get"
    sources, args = "", []
    mirror = settings.install.apt_mirror
    if mirror:
        local = _local_path(mirror)
        if local is not None:
            local = local.rstrip("/") or "/"
            mounts[local] = {"bind": APT_MOUNT, "mode": "ro"}
            urls = []
            if os.path.isdir(os.path.join(local, "dists")):
                line, args = '"deb $1 $VERSION_CODENAME main"', [f"file:{APT_MOUNT}"]
            else:  # a flat repository: Packages at its top, the user's own unsigned folder
                line, args = '"deb [trusted=yes] $1 ./"', [f"file:{APT_MOUNT}"]
        else:
            line, args = '"deb $1 $VERSION_CODENAME main"', [mirror.rstrip("/")]
            urls = [mirror]
        # The mirror travels as "$1", never pasted into the script.
        sources = ("mkdir -p /tmp/apt/parts; . /etc/os-release; "
                   f"echo {line} > /tmp/apt/sources.list; cat /tmp/apt/sources.list; ")
        apt = ("apt-get -o Dir::Etc::SourceList=/tmp/apt/sources.list -o Dir::Etc::SourceParts=/tmp/apt/parts "
               "-o APT::Update::Error-Mode=any")
    script = (f"set -e; export DEBIAN_FRONTEND=noninteractive; {sources}{apt} update -qq; "
              f"{apt} install -y -qq --no-install-recommends {names}; apt-get clean; rm -rf /var/lib/apt/lists/*; "
              f"cp /var/lib/dpkg/status {APT_OUT}/status")
    return ["/bin/sh", "-c", script, "apt", *args], mounts, allowed_for(urls, settings)


def _apt(sandbox: Sandbox, packages: list[str], progress: Progress | None) -> ManagerRun:
    from workbench.sandbox.sandbox import project_image

    image_sources = [] if sandbox.settings.install.apt_mirror else image_apt_sources(sandbox)
    command, mounts, allowed = apt_plan(sandbox.settings, packages, image_sources)
    # apt runs as root in a container of the project's image (the base image plus earlier apt installs;
    # code never writes it): no workspace is mounted, and no source may live in it.
    _refuse_workspace_sources(sandbox, "apt", mounts, allowed, always=True)
    out = tempfile.mkdtemp(prefix="workbench-apt-")
    try:
        run = _run_container(sandbox, image=sandbox.image, command=command, user="0:0", allowed=allowed,
                             mounts={**mounts, out: {"bind": APT_OUT, "mode": "rw"}}, workspace=False,
                             hardened=False, progress=progress, keep=True)
        try:
            if run.exit_code == 0:
                target = project_image(sandbox.project)
                repository, tag = target.rsplit(":", 1)
                sandbox.engine.commit(run.container, repository, tag, changes=["WORKDIR /workspace"])
                sandbox.use_image(target)
        finally:
            sandbox.engine.remove(run.container)
        names = [re.split(r"[<>=!~]", spec, maxsplit=1)[0] for spec in packages]
        listing = readback.dpkg_status(Path(out), names) if run.exit_code == 0 else readback.Listing()
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return ManagerRun(run.exit_code, run.output, listing.versions, run.attempts, tuple(listing.notes))


MANAGERS = {"pip": _pip, "r": _r, "apt": _apt}


def _egress_summary(attempts: Sequence[Attempt]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(destinations reached, refused, allowed but not answering: "host:port: why"), each once, in order."""
    reached = [str(a.destination) for a in attempts if a.allowed and not a.detail]
    refused = [str(a.destination) for a in attempts if not a.allowed]
    failed = [f"{a.destination}: {a.detail}" for a in attempts if a.allowed and a.detail]
    return tuple(dict.fromkeys(reached)), tuple(dict.fromkeys(refused)), tuple(dict.fromkeys(failed))


def install(sandbox: Sandbox, manager: PackageManager, packages: Sequence[str],
            progress: Progress | None = None) -> InstallResult:
    if manager not in MANAGERS:
        raise UsageError(f"unknown package manager {manager!r}; choose one of: {', '.join(MANAGERS)}")
    wanted = check_packages(packages)
    check_sources(sandbox.settings, manager)
    extra_allowed(sandbox.settings)  # a malformed allow_hosts stops here, before any container
    started = time.monotonic()
    sandbox._emit("package.install_started", {"manager": manager, "packages": wanted})
    run = MANAGERS[manager](sandbox, wanted, progress)
    installed = tuple(InstalledPackage(name, version, manager) for name, version in sorted(run.versions.items()))
    reached, refused, unreachable = _egress_summary(run.attempts)
    if run.attempts:
        # Before package.installed, so the log reads: what the install reached, then what it installed.
        sandbox._emit(events.INSTALL_EGRESS, {
            "manager": manager, "reached": list(reached), "refused": list(refused),
            "unreachable": list(unreachable),
            "requests": len(run.attempts),
            "refusals": [f"{a.method} {a.destination}: {a.detail}" for a in run.attempts if not a.allowed][:50]})
    for package in installed:
        sandbox._emit(events.PACKAGE_INSTALLED, {"name": package.name, "version": package.version,
                                                 "manager": manager})
    for note in run.notes:  # what the read-back left out (a symlinked site-packages, a name that is markup)
        sandbox._emit(events.ERROR, {"where": f"{manager} install", "message": note})
    output = run.output  # already bounded: its first and last OUTPUT_CAP bytes
    if run.notes:
        output += "".join(f"\nworkbench: {note}" for note in run.notes)
    return InstallResult(manager=manager, requested=tuple(wanted), installed=installed, exit_code=run.exit_code,
                         output=output, duration=time.monotonic() - started, reached=reached, refused=refused,
                         unreachable=unreachable)

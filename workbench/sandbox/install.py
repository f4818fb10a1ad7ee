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
"""

from __future__ import annotations

import configparser
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
from workbench.errors import ConfigError, UsageError
from workbench.sandbox import egress, policy
from workbench.sandbox.egress import Attempt, Destination
from workbench.sandbox.errors import InstallFailed, SourceUnreachable
from workbench.sandbox.types import InstalledPackage, InstallResult, PackageManager

if TYPE_CHECKING:
    from workbench.sandbox.sandbox import Sandbox

OUTPUT_CAP = 256 * 1024  # bytes of an install's output kept at its start, and again at its end
LINE_CAP = 64 * 1024  # a longer run of output without a newline is passed to `progress` in pieces
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
MARK = "@@workbench-versions@@"
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
PYPI_FILES = {"pypi.org": "files.pythonhosted.org"}  # an index host and the host its links point to
DEFAULT_CRAN = "https://cloud.r-project.org"
Progress = Callable[[str], None]
VERSION_LINE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]* [0-9][A-Za-z0-9.:~+-]*$")


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


def _run_container(sandbox: Sandbox, *, image: str, command: list[str], user: str,
                   allowed: frozenset[Destination], mounts: dict[str, dict[str, str]], workspace: bool,
                   hardened: bool, progress: Progress | None, keep: bool = False) -> ContainerRun:
    """Run `command` in a fresh container with no network; with `allowed`, behind the egress proxy."""
    settings = sandbox.settings
    binds = dict(mounts)
    if workspace:
        binds[str(sandbox.project.workspace)] = {"bind": policy.WORKSPACE, "mode": "rw"}
    env = dict(policy.BASE_ENV)
    proxy = folder = None
    if allowed:
        if HOST_CA_BUNDLE.exists():
            binds[str(HOST_CA_BUNDLE)] = {"bind": str(HOST_CA_BUNDLE), "mode": "ro"}
            env.update(PIP_CERT=str(HOST_CA_BUNDLE), SSL_CERT_FILE=str(HOST_CA_BUNDLE),
                       CURL_CA_BUNDLE=str(HOST_CA_BUNDLE))
        # A Unix socket's path is limited to about 100 bytes: a long TMPDIR falls back to /tmp.
        where = None if len(tempfile.gettempdir()) < 60 else "/tmp"
        try:
            folder = tempfile.mkdtemp(prefix="workbench-egress-", dir=where)
            socket_path = os.path.join(folder, egress.SOCKET_NAME)
            proxy = egress.EgressProxy(allowed)
            proxy.listen_unix(socket_path, 0o600)
            _open_to(_host_uid(sandbox, user), folder, socket_path)
        except OSError as exc:
            if proxy is not None:
                proxy.close()
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            raise InstallFailed(f"cannot open the install's way out (its egress proxy socket): "
                                f"{exc.strerror or exc}",
                                f"check free space and permissions in {where or tempfile.gettempdir()}") from exc
        binds[folder] = {"bind": egress.SOCKET_MOUNT, "mode": "rw"}
        env.update(egress.proxy_environment())
        command = egress.relay_command(command)
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
                for line in lines:
                    if line.startswith(MARK.encode()):
                        progress = None  # what follows is our own version listing
                    elif progress:
                        progress(line.decode("utf-8", errors="replace"))
            code = engine.wait(container)
        finally:
            if not keep:
                engine.remove(container)
    finally:
        if proxy is not None:
            proxy.close()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    return ContainerRun(code if code is not None else 1, output.text(), container,
                        tuple(proxy.attempts) if proxy is not None else ())


def _versions(output: str) -> dict[str, str]:
    """The `name version` lines printed after MARK."""
    found: dict[str, str] = {}
    if MARK not in output:
        return found
    for line in output.split(MARK, 1)[1].splitlines():
        parts = line.split()
        # A warning can land here too (R prints its warnings when the script ends): only `name version`.
        if len(parts) == 2 and VERSION_LINE.match(line.strip()):
            found[parts[0]] = parts[1]
    return found


def _changed(before: dict[str, str], after: dict[str, str]) -> dict[str, str]:
    return {name: version for name, version in after.items() if before.get(name) != version}


# --- managers --------------------------------------------------------------------------------------
def pip_script() -> str:
    listing = ("/workspace/.venv/bin/python -c 'import importlib.metadata as m\n"
               "for d in m.distributions(): print(d.metadata[\"Name\"], d.version)'")
    return ("set -e; [ -x /workspace/.venv/bin/python ] || python3 -m venv /workspace/.venv; "
            f"{listing} > /tmp/before; /workspace/.venv/bin/python -m pip install -q "
            f"--disable-pip-version-check \"$@\"; echo {MARK}; cat /tmp/before; echo {MARK}; {listing}")


@dataclass(frozen=True)
class ManagerRun:
    exit_code: int
    output: str
    versions: dict[str, str]  # what changed: name -> version
    attempts: tuple[Attempt, ...] = ()


def _pip(sandbox: Sandbox, packages: list[str], progress: Progress | None) -> ManagerRun:
    plan = pip_plan(sandbox.settings)
    run = _run_container(sandbox, image=sandbox.image,
                         command=["sh", "-c", pip_script(), "pip", *plan.options, *packages],
                         user=sandbox.identity.user, allowed=plan.egress, mounts=plan.mounts,
                         workspace=True, hardened=True, progress=progress)
    parts = run.output.split(MARK)
    before, after = {}, {}
    if len(parts) == 3:
        before = _versions(MARK + parts[1])
        after = _versions(MARK + parts[2])
    return ManagerRun(run.exit_code, parts[0], _changed(before, after), run.attempts)


def cran_repo(settings) -> str:
    return settings.install.cran_repo or DEFAULT_CRAN


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
    script = (f'dir.create("/workspace/.R", showWarnings = FALSE); pkgs <- c({names}); '
              f'install.packages(pkgs, lib = "/workspace/.R", repos = {json.dumps(repo)}); '
              f'ok <- sapply(pkgs, requireNamespace, lib.loc = "/workspace/.R", quietly = TRUE); '
              f'cat("{MARK}\\n"); for (p in pkgs[ok]) cat(p, as.character(packageVersion(p, lib.loc = '
              f'"/workspace/.R")), "\\n"); quit(status = if (all(ok)) 0 else 1)')
    return script, mounts, allowed_for([repo], settings)  # (a file:// repo opens nothing)


def _r(sandbox: Sandbox, packages: list[str], progress: Progress | None) -> ManagerRun:
    script, mounts, allowed = r_plan(sandbox.settings, packages)
    run = _run_container(sandbox, image=sandbox.image, command=["Rscript", "-e", script],
                         user=sandbox.identity.user, allowed=allowed, mounts=mounts,
                         workspace=True, hardened=True, progress=progress)
    before, _, after = run.output.partition(MARK)
    leftover = "\n".join(line for line in after.splitlines() if not VERSION_LINE.match(line.strip()))
    return ManagerRun(run.exit_code, before + leftover, _versions(run.output), run.attempts)


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
    (`image_sources`) are used and are what it may reach.
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
              f"echo {MARK}; dpkg-query -W -f='${{Package}} ${{Version}}\\n' {names}")
    return ["sh", "-c", script, "apt", *args], mounts, allowed_for(urls, settings)


def _apt(sandbox: Sandbox, packages: list[str], progress: Progress | None) -> ManagerRun:
    from workbench.sandbox.sandbox import project_image

    image_sources = [] if sandbox.settings.install.apt_mirror else image_apt_sources(sandbox)
    command, mounts, allowed = apt_plan(sandbox.settings, packages, image_sources)
    # apt needs root and its usual capabilities inside; no workspace, no user code runs here.
    run = _run_container(sandbox, image=sandbox.image, command=command, user="0:0", allowed=allowed,
                         mounts=mounts, workspace=False, hardened=False, progress=progress, keep=True)
    try:
        if run.exit_code == 0:
            target = project_image(sandbox.project)
            repository, tag = target.rsplit(":", 1)
            sandbox.engine.commit(run.container, repository, tag, changes=["WORKDIR /workspace"])
            sandbox.use_image(target)
    finally:
        sandbox.engine.remove(run.container)
    return ManagerRun(run.exit_code, run.output.split(MARK)[0], _versions(run.output), run.attempts)


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
    output = run.output  # already bounded: its first and last OUTPUT_CAP bytes
    return InstallResult(manager=manager, requested=tuple(wanted), installed=installed, exit_code=run.exit_code,
                         output=output, duration=time.monotonic() - started, reached=reached, refused=refused,
                         unreachable=unreachable)

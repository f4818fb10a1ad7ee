"""conda: packages into a conda prefix at /workspace/.conda, solved, fetched and linked by py-rattler.

Source ([install]): `conda_channels`, channels in priority order (a TOML list, or space-separated): a
folder (`file:///PATH` or `/PATH`, a channel with `noarch/repodata.json` and the platform's subdir, for
air-gapped sites), mounted read-only at its own path, or a URL (`https://conda.anaconda.org/conda-forge`,
a mirror on the LAN), reached through the egress proxy like every other install source. Not set:
conda-forge. A channel that is not a channel (no `noarch/repodata.json`) stops the install before any
container starts, with one line naming `[install] conda_channels`.

How it runs: the install container starts the image's own `/usr/bin/python3 -I` on the container-side
script (workbench/sandbox/container/conda_install.py, passed with `-c`), with py-rattler from the host's
cache mounted read-only (the unpacked wheel of RATTLER_VERSION that `packaging/rattler-wheel.sh` puts under
the user cache folder; `make setup` runs it; the air-gapped bundle carries the wheel). Nothing under
/workspace is imported or executed, and packages' link scripts are never run. The script solves the whole
environment (what was asked for before plus the new specs) so an install adds to the prefix.

What was installed is read back by the host afterwards, from the prefix's `conda-meta/*.json` through
`workbench.confined` (no symlink followed, regular files only, every read bounded), never from what the
container printed: name, version, build and channel go into `package.installed`.

Later executions and warm sessions see the prefix as activated (its bin on PATH after the venv's,
CONDA_PREFIX set) when it exists: policy.execution_env for one-off executions, and the warm-session
runner's interpreters as each starts (one already running keeps its environment until `workbench session
restart`). Its `python3`, `R` or `bash`, when installed, are then the ones code runs, as after
`conda activate`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from workbench import paths
from workbench.confined import Confined, Refused
from workbench.errors import ConfigError, UsageError
from workbench.findings import Finding
from workbench.inert import one_line
from workbench.sandbox import policy, readback
from workbench.sandbox.errors import InstallFailed, SourceUnreachable
from workbench.sandbox.managers.base import InstallingSandbox, Manager, ManagerRun, Progress
from workbench.sandbox.managers.install_container import host_uid, run_container
from workbench.sandbox.managers.sources import (
    LOCATION,
    allowed_for,
    in_words,
    local_path,
    refuse_workspace_sources,
    shown,
)

if TYPE_CHECKING:
    from workbench.config import Settings

SETTING = "conda_channels"
DEFAULT_CHANNEL = "https://conda.anaconda.org/conda-forge"
PREFIX = ".conda"  # in the workspace
PREFIX_INSIDE = policy.CONDA_PREFIX
RATTLER_VERSION = "0.28.0"  # py-rattler; packaging/rattler-wheel.sh fetches the same
RATTLER_MOUNT = "/opt/workbench-rattler"
CACHE_MOUNT = "/mnt/workbench-conda-cache"  # a host scratch folder for one install: repodata and packages
SCRIPT = Path(__file__).resolve().parent.parent / "container" / "conda_install.py"
IMAGE_PYTHON = "/usr/bin/python3"  # the image's own interpreter, never one in the workspace
RECORD_CAP = 16 * 1024 * 1024  # a conda-meta record lists every file of its package: a few MB for the biggest
BUILD = re.compile(r"^[A-Za-z0-9_.+-]{0,200}$")
CHANNEL = re.compile(r"^[A-Za-z0-9+.-]+://[^\s\x00-\x1f\x7f]{0,500}$|^[A-Za-z0-9_.-]{0,200}$")
PROBE_TIMEOUT = 2.0
# A conda match spec as we pass it on: a name, then version constraints (`>=1.26,<2`, `=1.26`, `1.26.*` after
# `=`), then optionally `=BUILD` (`numpy=1.26.4=py312h_0`). No channel prefix, brackets, spaces or options.
_CONSTRAINT = r"(==|=|>=|<=|>|<|!=|~=)[A-Za-z0-9.*+_!-]+"
CONDA_SPEC = re.compile(rf"^[A-Za-z0-9_][A-Za-z0-9._-]*({_CONSTRAINT}(,{_CONSTRAINT})*(=[A-Za-z0-9_.*+-]+)?)?$")


# --- channels --------------------------------------------------------------------------------------
ANACONDA_TOKEN = re.compile(r"/t/[^/]+/")  # anaconda.org's token in a channel's path: https://host/t/TOKEN/name


def shown_channel(channel: str) -> str:
    """A channel as it may be printed or logged: credentials in the URL, and an anaconda.org-style token in
    its path, become `***`."""
    return ANACONDA_TOKEN.sub("/t/***/", shown(channel))


def configured_channels(settings: Settings) -> list[str]:
    """`[install] conda_channels` in priority order (a list, or one space-separated string); a folder given
    as `/PATH` becomes `file:///PATH`."""
    value = getattr(settings.install, SETTING, "")
    listed = value.split() if isinstance(value, str) else [str(v).strip() for v in value]
    return list(dict.fromkeys(f"file://{item}" if item.startswith("/") else item for item in listed if item))


def channels(settings: Settings) -> list[str]:
    """The channels an install uses: the configured ones, else conda-forge."""
    return configured_channels(settings) or [DEFAULT_CHANNEL]


def channel_problem(channel: str) -> tuple[str, bool] | None:
    """None when `channel` looks like a conda channel; else (why, whether it is missing rather than wrong).

    A folder must hold `noarch/repodata.json` (every channel has a noarch subdir, even an empty one); a URL
    must answer for it within two seconds (HEAD: a big channel's repodata runs to hundreds of MB)."""
    if not LOCATION.match(channel):
        return "not a URL or an absolute folder (use https://..., file:///... or /...)", False
    folder = local_path(channel)
    if folder is not None:
        if not os.path.isdir(folder):
            return "folder missing", True
        if not os.path.isfile(os.path.join(folder, "noarch", "repodata.json")):
            return "not a conda channel (it has no noarch/repodata.json)", False
        return None
    probe = channel.rstrip("/") + "/noarch/repodata.json"
    try:
        with urllib.request.urlopen(urllib.request.Request(probe, method="HEAD"), timeout=PROBE_TIMEOUT):
            return None
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 410):
            return f"not a conda channel (noarch/repodata.json answers HTTP {exc.code})", False
        return (None if exc.code < 500 else (f"answers HTTP {exc.code}", True))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"unreachable ({getattr(exc, 'reason', exc)})", True


def channel_mounts(urls: list[str]) -> dict[str, dict[str, str]]:
    """Each folder channel, read-only at its own path (so the channel a record names is the configured one)."""
    mounts: dict[str, dict[str, str]] = {}
    for url in urls:
        folder = local_path(url)
        if folder is not None:
            folder = folder.rstrip("/") or "/"
            mounts[folder] = {"bind": folder, "mode": "ro"}
    return mounts


# --- py-rattler, from the host's cache ----------------------------------------------------------------
def rattler_site() -> Path:
    """The unpacked py-rattler wheel the install container imports (read-only)."""
    return paths.user_cache_dir() / "py-rattler" / RATTLER_VERSION / "site"


def rattler_ready(site: Path) -> bool:
    return (site / ".complete").is_file() and (site / "rattler" / "__init__.py").is_file()


RATTLER_FIX = "run: bash packaging/rattler-wheel.sh (make setup does; offline, the bundle's install.sh does)"


# --- what the prefix holds ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CondaPackage:
    name: str
    version: str
    build: str
    channel: str


@dataclass
class PrefixListing:
    packages: dict[str, CondaPackage] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.notes) < readback.MAX_NOTES:
            self.notes.append(one_line(text))


def _field(record: dict, key: str) -> str:
    value = record.get(key, "")
    return value if isinstance(value, str) else ""


def prefix_packages(workspace: Path, prefix: str = PREFIX) -> PrefixListing:
    """The packages in the workspace's conda prefix, from each `conda-meta/*.json` (regular files only)."""
    listing = PrefixListing()
    try:
        folder = Confined(workspace)
    except Refused as exc:
        listing.note(str(exc))
        return listing
    with folder:
        try:
            entries = folder.listdir(f"{prefix}/conda-meta")
        except (FileNotFoundError, NotADirectoryError):
            return listing
        except Refused as exc:
            listing.note(str(exc))
            return listing
        for number, entry in enumerate(e for e in entries if e.path.endswith(".json")):
            if number >= readback.MAX_ENTRIES:
                listing.note(f"{prefix}/conda-meta: more than {readback.MAX_ENTRIES} records: the rest not read")
                break
            if entry.kind != "file":
                listing.note(f"{entry.describe()}: not followed")
                continue
            try:
                read = folder.read(entry.path, RECORD_CAP)
            except (Refused, OSError) as exc:
                listing.note(str(exc) if isinstance(exc, Refused) else f"{entry.path}: {exc.strerror or exc}")
                continue
            if read.truncated:
                listing.note(f"{entry.path}: over {RECORD_CAP // (1024 * 1024)} MiB: not recorded")
                continue
            try:
                record = json.loads(read.data)
            except (ValueError, RecursionError):
                listing.note(f"{entry.path}: not JSON: not recorded")
                continue
            if not isinstance(record, dict):
                listing.note(f"{entry.path}: not a package record: not recorded")
                continue
            package = CondaPackage(_field(record, "name"), _field(record, "version"), _field(record, "build"),
                                   shown_channel(_field(record, "channel")))
            if (readback.NAME.match(package.name) and readback.VERSION.match(package.version)
                    and BUILD.match(package.build) and CHANNEL.match(package.channel)):
                listing.packages[package.name] = package
            else:
                listing.note(f"{entry.path}: not a package name, version, build and channel "
                             f"({package.name[:80]!r} {package.version[:80]!r} {package.build[:80]!r} "
                             f"{package.channel[:120]!r}): not recorded")
    return listing


def changed(before: dict[str, CondaPackage], after: dict[str, CondaPackage]) -> dict[str, CondaPackage]:
    """Each package that is new or different (version, build or channel) afterwards."""
    return {name: package for name, package in after.items() if before.get(name) != package}


# --- the manager -------------------------------------------------------------------------------------
def conda_command(urls: list[str], packages: list[str]) -> list[str]:
    script = SCRIPT.read_text(encoding="utf-8")
    return [IMAGE_PYTHON, "-I", "-c", script, "--rattler", RATTLER_MOUNT, "--cache", CACHE_MOUNT,
            "--prefix", PREFIX_INSIDE, *(arg for url in urls for arg in ("--channel", url)), "--", *packages]


@contextlib.contextmanager
def scratch(sandbox: InstallingSandbox):
    """A host folder for one install's caches, on disk rather than in the container's /tmp (a tmpfs that
    counts against its memory): writable by the container's user only, removed afterwards."""
    folder = tempfile.mkdtemp(prefix="workbench-conda-")
    try:
        uid = host_uid(sandbox, sandbox.identity.user)
        if uid not in (-1, os.getuid()):
            if os.getuid() == 0:
                owner = sandbox.workspace_owner()
                os.chown(folder, uid, owner[1] if owner else -1)
            else:  # a rootful engine run by another user (rare): open, in a folder nobody can guess
                os.chmod(folder, 0o1777)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class CondaManager(Manager):
    name = "conda"
    description = "conda packages, into a conda prefix at /workspace/.conda"
    sources = (SETTING,)
    target = "workspace"
    source_labels = {SETTING: "conda channel"}

    def check_packages(self, packages: Sequence[str]) -> list[str]:
        """Names with conda's version constraints and build strings; nothing else (no options, channels,
        URLs or shell)."""
        if not packages:
            raise UsageError("name at least one package")
        bad = [p for p in packages if not CONDA_SPEC.match(p)]
        if bad:
            raise UsageError(f"not a conda package spec: {bad[0]!r} (a name and version constraints only, e.g. "
                             "numpy>=1.26,<2 or python=3.12)")
        return list(packages)

    def locations(self, settings: Settings, setting: str) -> list[str]:
        return configured_channels(settings) if setting == SETTING else super().locations(settings, setting)

    def preflight(self, settings: Settings) -> None:
        """A configured channel that is not one stops here (conda-forge, the default, as pip's PyPI is not
        looked at first); so does a missing py-rattler."""
        for channel in configured_channels(settings):
            problem = channel_problem(channel)
            if problem is None:
                continue
            why, missing = problem
            error = SourceUnreachable if missing else ConfigError
            raise error(f"[install] {SETTING}: {shown_channel(channel)}: {why}",
                        f"check [install] {SETTING} in the settings: a channel folder holds noarch/repodata.json "
                        "(and linux-64/...); workbench doctor lists every source")
        if not rattler_ready(rattler_site()):
            raise InstallFailed(f"the conda installer (py-rattler {RATTLER_VERSION}) is not in "
                                f"{rattler_site().parent}", RATTLER_FIX)

    def check(self, settings: Settings) -> list[Finding]:
        """One finding per configured channel, and whether py-rattler is cached (with channels configured:
        without, conda is not in use and doctor keeps to the other managers)."""
        findings = []
        for channel in configured_channels(settings):
            problem = channel_problem(channel)
            findings.append(Finding(f"install source: {self.label(SETTING)}", "ok" if problem is None else "warn",
                                    f"{shown_channel(channel)}: {'a channel' if problem is None else problem[0]}",
                                    "" if problem is None else f"check [install] {SETTING}; conda installs will "
                                                               "fail"))
        site = rattler_site()
        if not findings:
            return findings
        findings.append(Finding("conda installer", "ok" if rattler_ready(site) else "warn",
                                f"py-rattler {RATTLER_VERSION} "
                                + ("cached at " if rattler_ready(site) else "missing from ") + str(site.parent),
                                "" if rattler_ready(site) else RATTLER_FIX))
        return findings

    def reachable(self, settings: Settings) -> str:
        return in_words(allowed_for(channels(settings), settings))

    def install(self, sandbox: InstallingSandbox, packages: list[str], progress: Progress | None) -> ManagerRun:
        urls = channels(sandbox.settings)
        allowed = allowed_for(urls, sandbox.settings)  # folders open nothing
        mounts = channel_mounts(urls)
        workspace = sandbox.project.workspace
        refuse_workspace_sources(workspace, SETTING, mounts, allowed)
        mounts[str(rattler_site())] = {"bind": RATTLER_MOUNT, "mode": "ro"}
        before = prefix_packages(workspace)
        with scratch(sandbox) as cache:
            run = run_container(sandbox, image=sandbox.image, command=conda_command(urls, packages),
                                user=sandbox.identity.user, allowed=allowed,
                                mounts={**mounts, cache: {"bind": CACHE_MOUNT, "mode": "rw"}}, workspace=True,
                                hardened=True, progress=progress)
        after = prefix_packages(workspace)
        new = changed(before.packages, after.packages)
        return ManagerRun(run.exit_code, run.output, {name: p.version for name, p in new.items()}, run.attempts,
                          tuple(after.notes),
                          details={name: {"build": p.build, "channel": p.channel} for name, p in new.items()})


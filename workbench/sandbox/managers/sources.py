"""Where installs fetch from: source locations, whether they answer, and what an install may reach.

A source is one `[install]` setting's value: a URL (`http(s)://...`) or a folder (`file:///PATH` or `/PATH`).
A folder is mounted read-only into the install container and opens no way out; a URL opens exactly its
host:port through the egress proxy (plus PyPI's file host when the index is PyPI, and `[install]
allow_hosts`). What a source is called, and which manager reads it, is the manager's (base.py).
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.errors import ConfigError
from workbench.sandbox import egress
from workbench.sandbox.egress import Destination

if TYPE_CHECKING:
    from workbench.config import Settings

# A source location as it may appear in a sources line or an R string: a URL or an absolute path, no blanks
# or quotes.
LOCATION = re.compile(r"^((https?|file)://[^\s'\"\\]+|/[^\s'\"\\]*)$")
PYPI_FILES = {"pypi.org": "files.pythonhosted.org"}  # an index host and the host its links point to
NOWHERE = "nothing (local folders only)"


def shown(location: str) -> str:
    """A source as it may be printed or logged: credentials in a URL (`https://user:token@mirror/simple`)
    become `***`."""
    parsed = urllib.parse.urlsplit(location)
    if parsed.scheme and "@" in parsed.netloc:
        return urllib.parse.urlunsplit(parsed._replace(netloc="***@" + parsed.netloc.rpartition("@")[2]))
    return location


def local_path(source: str) -> str | None:
    """The folder a `file://` or absolute-path source names; None for a URL."""
    if source.startswith("file://"):
        return urllib.parse.unquote(source[len("file://"):])
    return source if source.startswith("/") else None


def reachable_source(location: str) -> tuple[bool, str]:
    """A local folder exists, or a URL answers within two seconds (a mirror on the local network).
    Doctor's findings and the install's refusal both say this."""
    if location.startswith("file://"):
        location = location[len("file://"):]
    if not location.startswith(("http://", "https://")):
        path = Path(location).expanduser()
        return path.exists(), "folder present" if path.exists() else "folder missing"
    try:
        with urllib.request.urlopen(location, timeout=2) as response:
            return True, f"answers (HTTP {response.status})"
    except urllib.error.HTTPError as exc:
        return exc.code < 500, f"answers (HTTP {exc.code})"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return False, f"unreachable ({getattr(exc, 'reason', exc)})"


def extra_allowed(settings: Settings) -> frozenset[Destination]:
    """`[install] allow_hosts`, checked: an entry that names no host:port is a configuration error."""
    found: set[Destination] = set()
    for entry in settings.install.allow_hosts.split():
        parsed = egress.parse_allowed(entry)
        if not parsed:
            raise ConfigError(f"[install] allow_hosts entry {entry!r} is not a host, host:port or URL",
                              "e.g. allow_hosts = \"files.example.com mirror.lan:8080\"")
        found.update(parsed)
    return frozenset(found)


def allowed_for(urls: Sequence[str], settings: Settings) -> frozenset[Destination]:
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


def in_words(allowed: frozenset[Destination]) -> str:
    """`allowed` as doctor and the approval prompts print it."""
    return ", ".join(str(d) for d in sorted(allowed)) or NOWHERE


def refuse_workspace_sources(workspace: Path, settings_named: str, mounts: dict[str, dict[str, str]],
                             allowed: frozenset[Destination], *, always: bool = False) -> None:
    """A source folder inside this project's workspace is code's to fill: with a way out (or as root, for
    apt) a planted sdist or package would run there. Refused before any container starts.
    `settings_named` is how the error names the settings ("pip_find_links or pip_index_url")."""
    if not (allowed or always):
        return
    real_workspace = os.path.realpath(workspace)
    for folder in mounts:
        real = os.path.realpath(folder)
        if real == real_workspace or real.startswith(real_workspace + os.sep):
            raise ConfigError(f"[install] {settings_named}: {shown(folder)} is inside this project's workspace, "
                              "which code in the sandbox can change", "keep install sources outside the workspace")

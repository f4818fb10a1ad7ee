"""What an install left behind, read by the host from the files themselves (the `package.installed` record).

An install's own output is never believed: code that could print a fake listing (a planted interpreter, a
package's build script, a daemon a postinst left running) must not be able to choose what the audit log says
was installed. So after the install container has ended, the host reads the package managers' own metadata,
through `workbench.confined` (no symlink followed, regular files only, every read bounded):

  pip  /workspace/.venv/lib/python3.*/site-packages/*.dist-info/METADATA   Name, Version
  r    /workspace/.R/*/DESCRIPTION                                         Package, Version
  apt  /var/lib/dpkg/status, copied out of the install container           Package, Status, Version

Names and versions that do not look like names and versions (markup, escapes, a megabyte of text) are left
out of the record and said so; something that is not what it should be (a symlinked site-packages, a FIFO
for a METADATA) is a one-line note, never followed or opened.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from workbench.confined import Confined, Refused
from workbench.inert import one_line

METADATA_CAP = 64 * 1024  # the headers we read come first; a longer METADATA is cut here
STATUS_CAP = 64 * 1024 * 1024  # dpkg's status file: about 1 MB for a few hundred packages
MAX_ENTRIES = 20_000  # distributions or R packages read; more is not a library an install made
MAX_NOTES = 10
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+!_:~-]{0,127}$")
PYTHON_DIR = re.compile(r"^python3\.[0-9]{1,3}$")


@dataclass
class Listing:
    """name -> version, and the notes about what was not read (one line each, inert)."""

    versions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.notes) < MAX_NOTES:
            self.notes.append(one_line(text))

    def add(self, name: str, version: str, where: str) -> None:
        if NAME.match(name) and VERSION.match(version):
            self.versions[name] = version
        else:
            self.note(f"{where}: not a package name and version ({name[:80]!r} {version[:80]!r}): not recorded")


def fields(text: str, wanted: Iterable[str]) -> dict[str, str]:
    """The first value of each `wanted` field of an RFC 822 style header block (METADATA, DESCRIPTION, a dpkg
    stanza): `Key: value` lines up to the first blank line; continuation lines (leading blank) are skipped."""
    wanted = set(wanted)
    found: dict[str, str] = {}
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if not line.strip():
            break
        if line[0] in " \t":
            continue
        key, sep, value = line.partition(":")
        if sep and key in wanted and key not in found:
            found[key] = value.strip()
    return found


def _entries(folder: Confined, path: str, listing: Listing):
    """The entries of `path` (none when it is absent); a symlink or file in its place is a note."""
    try:
        return folder.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except Refused as exc:
        listing.note(f"{exc}")
        return []


def _read(folder: Confined, path: str, cap: int, listing: Listing) -> str | None:
    try:
        return folder.read(path, cap).data.decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except (Refused, OSError) as exc:
        listing.note(f"{exc}" if isinstance(exc, Refused) else f"{path}: {exc.strerror or exc}")
        return None


def venv_distributions(workspace: Path, venv: str = ".venv") -> Listing:
    """The distributions in the workspace's venv, from each `*.dist-info/METADATA`."""
    listing = Listing()
    try:
        folder = Confined(workspace)
    except Refused as exc:
        listing.note(str(exc))
        return listing
    with folder:
        seen = 0
        for lib in _entries(folder, f"{venv}/lib", listing):
            if lib.kind != "dir" or not PYTHON_DIR.match(lib.path.rsplit("/", 1)[-1]):
                continue
            for info in _entries(folder, f"{lib.path}/site-packages", listing):
                if not info.path.endswith(".dist-info"):
                    continue
                seen += 1
                if seen > MAX_ENTRIES:
                    listing.note(f"{lib.path}/site-packages: more than {MAX_ENTRIES} distributions: the rest "
                                 "not read")
                    return listing
                if info.kind != "dir":
                    listing.note(f"{info.describe()}: not followed")
                    continue
                text = _read(folder, f"{info.path}/METADATA", METADATA_CAP, listing)
                if text is None:
                    continue
                found = fields(text, ("Name", "Version"))
                listing.add(found.get("Name", ""), found.get("Version", ""), info.path)
    return listing


def r_library(workspace: Path, library: str = ".R") -> Listing:
    """The R packages in the workspace's library, from each `<package>/DESCRIPTION`."""
    listing = Listing()
    try:
        folder = Confined(workspace)
    except Refused as exc:
        listing.note(str(exc))
        return listing
    with folder:
        for number, package in enumerate(_entries(folder, library, listing)):
            if number >= MAX_ENTRIES:
                listing.note(f"{library}: more than {MAX_ENTRIES} entries: the rest not read")
                break
            if package.kind != "dir" or package.path.rsplit("/", 1)[-1].startswith("00LOCK"):
                continue
            text = _read(folder, f"{package.path}/DESCRIPTION", METADATA_CAP, listing)
            if text is None:
                continue
            found = fields(text, ("Package", "Version"))
            listing.add(found.get("Package", ""), found.get("Version", ""), package.path)
    return listing


def dpkg_status(folder_path: Path, names: Iterable[str], name: str = "status") -> Listing:
    """The installed version of each of `names`, from a copy of dpkg's status file in `folder_path`."""
    listing = Listing()
    wanted = set(names)
    try:
        with Confined(folder_path) as folder:
            read = folder.read(name, STATUS_CAP)
    except FileNotFoundError:
        listing.note("dpkg's status file was not copied out of the install container")
        return listing
    except (Refused, OSError) as exc:
        listing.note(str(exc))
        return listing
    if read.truncated:
        listing.note(f"dpkg's status file is over {STATUS_CAP // (1024 * 1024)} MiB: read that far")
    for stanza in read.data.decode("utf-8", errors="replace").split("\n\n"):
        found = fields(stanza.lstrip("\n"), ("Package", "Status", "Version"))
        if found.get("Package") in wanted and found.get("Status", "").endswith(" installed"):
            listing.add(found["Package"], found.get("Version", ""), "dpkg status")
    return listing


def changed(before: dict[str, str], after: dict[str, str]) -> dict[str, str]:
    """What an install changed: each name whose version is new or different afterwards."""
    return {name: version for name, version in after.items() if before.get(name) != version}

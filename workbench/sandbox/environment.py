"""The environment an execution ran with, as a digest on every `exec.finished` and a package list stored once.

An environment is the image (by the engine's id) and the workspace's own environments: the venv's pip
distributions, the R library, the conda prefix. Working it out reads hundreds of files and, for the image's
Debian packages, starts a container; so it is done once per distinct state, and an execution on the hot path
only takes the workspace's *fingerprint*: the `lstat` signature (size, mtime, ctime, inode) of the folders
the package managers add to and remove from (`.venv/lib/python3.*/site-packages`, `.R`, `.conda/conda-meta`),
a dozen system calls through `workbench.confined` (never following a symlink the workspace planted).

Caches, and why each lives where it does:
  * in-process: (image ref, container) -> image id, and (image id, fingerprint) -> digest;
  * the user's cache folder (`images.json`): image id -> its Debian packages. An image id is the engine's
    digest of the image, so what it holds never changes; it is kept outside the project, where a project
    folder someone sent cannot plant a package list for an image of ours;
  * the project's state folder (`environments.json`): (image id, fingerprint) -> digest, and the digests
    whose `environment.recorded` this project's log already holds, so the package list is stored once;
    tied to the log file's identity, so a copied project (or a new log) stores its lists again.

The digest is taken as the execution ends: the environment it ran with, unless its own code changed the
packages (then it names the state it left, and the execution before it names the state it found).

The image's packages come from `dpkg-query` in a throw-away container of the image with no network, no
workspace and every capability dropped; the workspace's from the package managers' own metadata read on the
host (`readback`, `managers.conda`), never by running the workspace's interpreter. Whatever fails is a note
in the recorded environment: the execution's own result is never lost to it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench import paths
from workbench.confined import Confined, Refused
from workbench.events import EnvironmentRecorded
from workbench.inert import one_line
from workbench.sandbox import readback
from workbench.sandbox.managers import conda
from workbench.sandbox.managers.install_container import run_container

log = logging.getLogger(__name__)

DPKG_FORMAT = "${Package} ${Version} ${Architecture} ${db:Status-Status}\\n"
DEB_LINE = re.compile(r"^(\S+) (\S+) (\S+) installed$")
ARCH = re.compile(r"^[a-z0-9-]{1,32}$")
CACHE_ENTRIES = 256  # states remembered per project; older ones are worked out again when they come back
STATE_CAP = 4 * 1024 * 1024


@dataclass(frozen=True)
class Recorded:
    """What an execution records: the digest, and the payload to store when the log lacks it (else None)."""

    digest: str
    payload: EnvironmentRecorded | None


# --- the fingerprint (the hot path) ---------------------------------------------------------------
def fingerprint(workspace: Path) -> str:
    """A short digest of the signatures of the folders package managers change (cheap: a few lstat calls)."""
    parts: list[str] = []
    try:
        folder = Confined(workspace)
    except Refused as exc:
        return "unreadable:" + hashlib.sha256(str(exc).encode()).hexdigest()[:16]
    with folder:
        for path in _watched(folder):
            try:
                entry = folder.lstat(path)
            except (Refused, OSError):
                entry = None
            parts.append(f"{path}={entry.kind}:{entry.signature}" if entry else f"{path}=-")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def _watched(folder: Confined) -> list[str]:
    found = [".venv", ".venv/lib", ".R", ".conda", ".conda/conda-meta"]
    try:
        libs = folder.listdir(".venv/lib")
    except (FileNotFoundError, NotADirectoryError, Refused, OSError):
        return found
    for lib in libs:
        if lib.kind == "dir" and readback.PYTHON_DIR.match(lib.path.rsplit("/", 1)[-1]):
            found.append(f"{lib.path}/site-packages")
    return found


# --- the image (once per image id) -----------------------------------------------------------------
def image_id(engine: Any, ref: str) -> str:
    """The engine's id of image `ref` (docker-py's inspect), or the reference itself where the engine has no
    inspect (the in-process fake)."""
    finder = getattr(engine, "image_id", None)
    if callable(finder):
        return str(finder(ref))
    inspect = getattr(getattr(engine, "api", None), "inspect_image", None)
    if callable(inspect):
        return str((inspect(ref) or {}).get("Id") or f"ref:{ref}")
    return f"ref:{ref}"


def parse_dpkg(text: str) -> tuple[list[str], list[str]]:
    """("name version arch" lines of installed packages, notes) from dpkg-query's output in DPKG_FORMAT."""
    lines, notes = set(), []
    for raw in text.splitlines():
        found = DEB_LINE.match(raw.strip())
        if not found:
            continue
        name, version, arch = found.groups()
        if readback.NAME.match(name) and readback.VERSION.match(version) and ARCH.match(arch):
            lines.add(f"{name} {version} {arch}")
        elif len(notes) < readback.MAX_NOTES:
            notes.append(one_line(f"dpkg: not a package name and version ({name[:80]!r} {version[:80]!r})"))
    return sorted(lines), notes


def image_packages(sandbox: Any, image: str) -> tuple[list[str], list[str]]:
    """The image's installed Debian packages, asked of dpkg-query in a throw-away container."""
    try:
        run = run_container(sandbox, image=image, command=["dpkg-query", "-W", f"-f={DPKG_FORMAT}"],
                            user=sandbox.identity.user, allowed=frozenset(), mounts={}, workspace=False,
                            hardened=True, progress=None)
    except Exception as exc:  # noqa: BLE001 - an engine failure is a note in the record, never the run's end
        return [], [one_line(f"the image's Debian packages could not be listed: {type(exc).__name__}: {exc}")]
    lines, notes = parse_dpkg(run.output)
    if run.exit_code != 0:
        notes.insert(0, one_line(f"dpkg-query in the image exited with {run.exit_code}: {run.output[-200:]}"))
    return lines, notes


# --- the workspace (once per fingerprint) -----------------------------------------------------------
def workspace_packages(workspace: Path) -> tuple[dict[str, list[str]], list[str]]:
    pip = readback.venv_distributions(workspace)
    r = readback.r_library(workspace)
    prefix = conda.prefix_packages(workspace)
    packages = {
        "pypi": sorted(f"{name} {version}" for name, version in pip.versions.items()),
        "cran": sorted(f"{name} {version}" for name, version in r.versions.items()),
        "conda": sorted(f"{p.name} {p.version}" for p in prefix.packages.values()),
    }
    return packages, [*pip.notes, *r.notes, *prefix.notes]


def digest_of(image_id_: str, packages: dict[str, list[str]]) -> str:
    canonical = json.dumps({"image_id": image_id_, "packages": packages}, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


# --- the caches -----------------------------------------------------------------------------------
class JsonCache:
    """A small JSON object in a file of ours (never the workspace), written whole and atomically."""

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> dict[str, Any]:
        try:
            with open(self.path, "rb") as handle:
                data = json.loads(handle.read(STATE_CAP))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, data: dict[str, Any]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, separators=(",", ":"))
            os.replace(tmp, self.path)
        except OSError as exc:  # a cache that cannot be written costs time later, nothing else
            log.warning("could not write %s: %s", self.path, exc)


_lock = threading.Lock()
_image_ids: dict[tuple[str, str, str | None], str] = {}
_images: dict[str, tuple[list[str], list[str]]] = {}
_digests: dict[tuple[str, str, str], str] = {}
_stored: set[tuple[str, str]] = set()  # (project id, digest) this process knows the log holds


def log_identity(path: Path) -> str:
    """Which audit log the "recorded" digests are in: its file's device and inode (a project folder copied
    from someone else, or a log started afresh, is another file, so its package lists are stored again)."""
    try:
        found = os.stat(path)
    except OSError:
        return ""
    return f"{found.st_dev}:{found.st_ino}"


def forget() -> None:
    """Drop what this process remembers (as a new process starts): the files' caches stay."""
    with _lock:
        _image_ids.clear()
        _images.clear()
        _digests.clear()
        _stored.clear()


def image_cache() -> JsonCache:
    return JsonCache(paths.user_cache_dir() / "environments" / "images.json")


def project_cache(sandbox: Any) -> JsonCache:
    return JsonCache(sandbox.project.state_dir / "environments.json")


def _image(sandbox: Any, ident: str, ref: str) -> tuple[list[str], list[str]]:
    found = _images.get(ident)
    if found is not None:
        return found
    cache = image_cache()
    stored = cache.load().get(ident)
    if isinstance(stored, dict) and isinstance(stored.get("deb"), list):
        found = ([x for x in stored["deb"] if isinstance(x, str)],
                 [x for x in stored.get("notes", []) if isinstance(x, str)])
    else:
        found = image_packages(sandbox, ref)
        if found[0] and ident.startswith("sha256:"):  # an engine's content id; a failed listing is asked again
            data = cache.load()
            data[ident] = {"deb": found[0], "notes": found[1]}
            cache.save(dict(list(data.items())[-CACHE_ENTRIES:]))
    _images[ident] = found
    return found


def record(sandbox: Any, emitting: bool) -> Recorded:
    """The environment of `sandbox`'s next execution now; its payload too when the log lacks it (`emitting`:
    whether it will be published; only then is it remembered as stored). Raises only what the caller notes."""
    ref = sandbox.image
    container = getattr(sandbox, "container", None)
    with _lock:
        ident = _image_ids.get((sandbox.project.id, ref, container))
        if ident is None:
            ident = _image_ids[(sandbox.project.id, ref, container)] = image_id(sandbox.engine, ref)
        key = (str(sandbox.project.workspace), ident, fingerprint(sandbox.project.workspace))
        digest = _digests.get(key)
        if digest is not None and (not emitting or (sandbox.project.id, digest) in _stored):
            return Recorded(digest, None)
        cache = project_cache(sandbox)
        log_id = log_identity(sandbox.project.audit_db)
        state = cache.load()
        states = state.get("states") if isinstance(state.get("states"), dict) else {}
        stored = state.get("recorded") if isinstance(state.get("recorded"), list) else []
        if state.get("log") != log_id:  # another log (a copied project, a new audit.db): it holds none of them
            stored = []
        state_key = f"{ident}|{key[2]}"
        if digest is None:
            digest = states.get(state_key) if isinstance(states.get(state_key), str) else None
        if digest is not None and (digest in stored or not emitting):
            _digests[key] = digest
            if digest in stored:
                _stored.add((sandbox.project.id, digest))
            return Recorded(digest, None)
        deb, image_notes = _image(sandbox, ident, ref)
        packages, notes = workspace_packages(sandbox.project.workspace)
        packages = {"deb": deb, **packages}
        digest = digest_of(ident, packages)
        _digests[key] = digest
        states[state_key] = digest
        payload = None
        if emitting and digest in stored:
            _stored.add((sandbox.project.id, digest))
        if emitting and digest not in stored:
            stored.append(digest)
            _stored.add((sandbox.project.id, digest))
            payload = EnvironmentRecorded(digest=digest, image=ref, image_id=ident, packages=packages,
                                          notes=tuple([*image_notes, *notes][: readback.MAX_NOTES]))
        cache.save({"log": log_id, "states": dict(list(states.items())[-CACHE_ENTRIES:]),
                    "recorded": stored[-4096:]})
        return Recorded(digest, payload)

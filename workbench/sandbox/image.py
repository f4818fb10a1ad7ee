"""The offline base image: Debian bookworm with python3, R, sqlite3 and bash, built from apt packages.

No registry is involved: `mmdebstrap` builds a root filesystem tarball from the apt mirror this machine
is already configured with (or `install.apt_mirror`), and the engine imports it as
`localhost/workbench-base:<version>`. The tarball is cached under the user cache folder, keyed by the
version, so a second `workbench setup` (or a re-import after `podman system reset`) takes seconds.

The version is Workbench's version plus a recipe revision: change `BASE_PACKAGES` or the hooks and bump
`RECIPE_REVISION`, and every user gets a fresh image on their next `workbench setup`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from workbench import __version__, paths
from workbench.config import Settings
from workbench.errors import EngineUnavailable, WorkbenchError

RECIPE_REVISION = 1
BASE_REPOSITORY = "localhost/workbench-base"
BASE_TAG = f"{__version__}-r{RECIPE_REVISION}"
BASE_IMAGE = f"{BASE_REPOSITORY}:{BASE_TAG}"
PROJECT_REPOSITORY = "localhost/workbench-project-"  # + the project id's first 12 characters


class HasId(Protocol):  # a workbench.project.Project (not imported: the project imports the sandbox's policy)
    @property
    def id(self) -> str: ...


def project_image(project: HasId) -> str:
    """The per-project image (base + apt packages), named after the project's id."""
    return f"{PROJECT_REPOSITORY}{project.id[:12]}:latest"


SUITE = "bookworm"
SANDBOX_UID = 1000  # the unprivileged user code runs as when the engine runs as root (see sandbox.py)

BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "r-base-core", "sqlite3", "bash",
                 "ca-certificates", "procps", "file")

# Documentation and translations are a third of the size and nobody reads them in a sandbox.
DPKG_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")

# Run inside the new root after the packages: an unprivileged user with a passwd entry (R and pip want
# one), the mount points, and no apt caches.
CUSTOMIZE = (
    f'echo "sandbox:x:{SANDBOX_UID}:{SANDBOX_UID}:Workbench sandbox:/tmp:/bin/bash" >> "$1/etc/passwd"',
    f'echo "sandbox:x:{SANDBOX_UID}:" >> "$1/etc/group"',
    'mkdir -p "$1/workspace" "$1/opt/workbench"',
    'rm -rf "$1/var/lib/apt/lists/"* "$1/var/cache/apt/"*',
)

# What the imported image runs unless told otherwise.
IMAGE_CHANGES = ["ENV PATH=/usr/local/bin:/usr/bin:/bin", "ENV LANG=C.UTF-8", "WORKDIR /workspace",
                 'CMD ["/bin/bash"]']

Progress = Callable[[str], None]


def cache_tarball() -> Path:
    return paths.user_cache_dir() / "images" / f"workbench-base-{BASE_TAG}.tar"


def image_present(engine=None, settings: Settings | None = None, ref: str = BASE_IMAGE) -> bool:
    """Is the base image (or `ref`) in the engine? False when the engine cannot be reached."""
    if engine is None:
        from workbench.sandbox.engine import connect

        try:
            engine = connect(settings or Settings())
        except EngineUnavailable:
            return False
        try:
            return engine.image_exists(ref)
        finally:
            engine.close()
    return engine.image_exists(ref)


def apt_mirror(settings: Settings | None = None) -> str:
    """The Debian mirror to build from: the setting, else the first `deb` source configured for apt."""
    if settings is not None and settings.install.apt_mirror:
        return settings.install.apt_mirror
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + sorted(
        Path("/etc/apt/sources.list.d").glob("*.list")) + [Path("/etc/apt/sources.list")]
    for source in sources:
        try:
            text = source.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        mirror = _mirror_from(text)
        if mirror:
            return mirror
    raise WorkbenchError("no Debian mirror found in /etc/apt/sources.list(.d)",
                         "set install.apt_mirror in the config, e.g. http://deb.debian.org/debian")


@dataclass(frozen=True)
class AptSource:
    kind: str  # "deb" or "deb-src"
    uri: str
    suites: tuple[str, ...]


def apt_sources(text: str) -> list[AptSource]:
    """The sources in apt configuration text, in order: one-line entries (`deb [options] URI suite ...`) and
    deb822 stanzas (`Types:` / `URIs:` / `Suites:`, those with `Enabled: no` left out). Files of both kinds
    may be concatenated, a blank line between them."""
    found: list[AptSource] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, flags=re.M))
        if "URIs" in fields:
            if fields.get("Enabled", "yes").strip().lower() != "no":
                suites = tuple(fields.get("Suites", "").split())
                found += [AptSource(kind, uri, suites) for kind in fields.get("Types", "").split()
                          for uri in fields["URIs"].split()]
            continue
        for line in stanza.splitlines():
            words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] in ("deb", "deb-src"):
                found.append(AptSource(words[0], words[1], (words[2],)))
    return found


def _mirror_from(text: str) -> str | None:
    return next((s.uri for s in apt_sources(text) if s.kind == "deb" and SUITE in s.suites), None)


def build_tarball(target: Path, settings: Settings | None, progress: Progress) -> Path:
    """Run mmdebstrap into `target` (atomically: a half-built tarball is never left under that name)."""
    if shutil.which("mmdebstrap") is None:
        raise EngineUnavailable("mmdebstrap is not installed", "run packaging/setup-engine.sh "
                                "(or apt-get install mmdebstrap)")
    mirror = apt_mirror(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
        partial = Path(tmp) / target.name
        cmd = ["mmdebstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
               *[f"--dpkgopt=path-exclude={p}" for p in DPKG_EXCLUDES],
               *[f"--customize-hook={hook}" for hook in CUSTOMIZE],
               SUITE, str(partial), mirror]
        progress(f"building the base image from {mirror} (mmdebstrap, about a minute)")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace")
        tail: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-20:]
            if line.startswith(("I: ", "E: ", "W: ")):
                progress(line[3:])
        if proc.wait() != 0:
            raise WorkbenchError("building the base image failed: " + " | ".join(tail[-3:]),
                                 "check the apt mirror and network, then run workbench setup again")
        partial.replace(target)
    return target


def ensure_base_image(settings: Settings | None = None, progress: Progress = lambda _msg: None,
                      engine=None) -> str:
    """Make sure `BASE_IMAGE` is in the engine: import the cached tarball, building it first if needed."""
    from workbench.sandbox.engine import connect

    settings = settings or Settings()
    own = engine is None
    engine = engine or connect(settings)
    try:
        if engine.image_exists(BASE_IMAGE):
            progress(f"base image {BASE_IMAGE} present")
            return BASE_IMAGE
        tarball = cache_tarball()
        if tarball.exists():
            progress(f"reusing {tarball}")
        else:
            build_tarball(tarball, settings, progress)
        progress(f"importing {tarball.name} as {BASE_IMAGE}")
        engine.import_image(tarball, BASE_REPOSITORY, BASE_TAG, IMAGE_CHANGES)
        if not engine.image_exists(BASE_IMAGE):
            raise EngineUnavailable(f"the engine did not keep {BASE_IMAGE} after the import")
        progress(f"base image {BASE_IMAGE} ready")
        return BASE_IMAGE
    finally:
        if own:
            engine.close()

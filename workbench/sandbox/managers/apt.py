"""apt: system packages into the project's image.

A container from the current image runs apt-get as root and is committed as the project's image
(`image.project_image`: `localhost/workbench-project-<id>:latest`), which the sandbox uses from then on.
No workspace is mounted, and no source may live in it (the image is code's never to write).

Source ([install]): `apt_mirror`, `http(s)://HOST/debian` (a Debian mirror: `deb MIRROR <codename> main`,
its Release signed as usual) or a folder `file:///PATH` (a copy of a mirror with dists/, or a flat
repository with Packages at its top, unsigned and so marked `[trusted=yes]`: it is the user's own folder),
mounted read-only. apt then reads only that source: its sources list and sources.list.d are replaced for the
install (`Dir::Etc::SourceList`/`SourceParts`), and a source that fails to update fails the install
(`APT::Update::Error-Mode=any`). Not set: the image's own sources, which are then what it may reach.

What was installed is read from a copy of dpkg's status file the container leaves for the host.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.sandbox import readback
from workbench.sandbox.egress import Destination
from workbench.sandbox.image import apt_sources, project_image
from workbench.sandbox.managers.base import InstallingSandbox, Manager, ManagerRun, Progress
from workbench.sandbox.managers.install_container import run_container
from workbench.sandbox.managers.sources import (
    allowed_for,
    extra_allowed,
    in_words,
    local_path,
)

if TYPE_CHECKING:
    from workbench.config import Settings

APT_MOUNT = "/mnt/workbench-apt"  # a local apt mirror folder, read-only
APT_OUT = "/mnt/workbench-out"  # where an apt install leaves a copy of dpkg's status file for the host


def apt_source_urls(text: str) -> list[str]:
    """The http(s) URIs of the apt sources in `text` (parsed as the image build parses them)."""
    urls = [source.uri for source in apt_sources(text)]
    return [url for url in dict.fromkeys(urls) if url.startswith(("http://", "https://"))]


def image_apt_sources(sandbox: InstallingSandbox) -> list[str]:
    """The image's own apt sources, read in a container with no network."""
    run = run_container(sandbox, image=sandbox.image,
                        command=["sh", "-c", "for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list "
                                             "/etc/apt/sources.list.d/*.sources; do [ -f \"$f\" ] && cat \"$f\"; "
                                             "echo; done; true"],
                        user=sandbox.identity.user, allowed=frozenset(), mounts={}, workspace=False,
                        hardened=True, progress=None)
    return apt_source_urls(run.output)


def apt_plan(settings: Settings, packages: list[str], image_sources: Sequence[str] = ()
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
        local = local_path(mirror)
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


class AptManager(Manager):
    name = "apt"
    description = "Debian packages, into this project's image"
    sources = ("apt_mirror",)
    target = "image"
    source_labels = {"apt_mirror": "apt mirror"}

    def reachable(self, settings: Settings) -> str:
        if not settings.install.apt_mirror:
            return "the image's apt sources" + (f" and {in_words(extra_allowed(settings))}"
                                                if settings.install.allow_hosts else "")
        return in_words(allowed_for([settings.install.apt_mirror], settings))

    def install(self, sandbox: InstallingSandbox, packages: list[str], progress: Progress | None) -> ManagerRun:
        image_sources = [] if sandbox.settings.install.apt_mirror else image_apt_sources(sandbox)
        command, mounts, allowed = apt_plan(sandbox.settings, packages, image_sources)
        # apt runs as root in a container of the project's image (the base image plus earlier apt installs;
        # code never writes it): no workspace is mounted, and no source may live in it.
        self.refuse_workspace_sources(sandbox, mounts, allowed)
        out = tempfile.mkdtemp(prefix="workbench-apt-")
        try:
            run = run_container(sandbox, image=sandbox.image, command=command, user="0:0", allowed=allowed,
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

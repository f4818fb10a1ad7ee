"""pip: packages into a venv at /workspace/.venv (the sandbox's `python` then uses it).

Sources ([install]): `pip_find_links`, a wheelhouse folder (or several, space-separated), mounted read-only,
`--no-index`; `pip_index_url`, a PEP 503 simple index: `file:///...` (mounted read-only) or an http(s) URL
(a LAN mirror, a mirror on this machine's loopback, PyPI). Neither set: the host's pip configuration
(index-url, extra-index-url, find-links, PIP_* variables), else PyPI.

pip runs from the read-only image (/usr/bin/python3 with the image's pip, image_pip.py), started so that
nothing under /workspace is executed or imported: the venv's bin/python, a .pth or sitecustomize.py in its
site-packages, its own pip, pyvenv.cfg and pip.conf are never used; the venv's interpreter links and
pyvenv.cfg are put back as `python3 -m venv` makes them, for later executions. An sdist's build backend is
the package's own code and stays behind the proxy; pip is asked to `--prefer-binary` to make that rarer.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.confined import Confined, Refused
from workbench.sandbox import readback
from workbench.sandbox.egress import Destination
from workbench.sandbox.image_pip import NEW_VENV, PIP_ENV, pip_command
from workbench.sandbox.managers.base import InstallingSandbox, Manager, ManagerRun, Progress
from workbench.sandbox.managers.install_container import run_container, way_out
from workbench.sandbox.managers.sources import allowed_for, in_words, local_path

if TYPE_CHECKING:
    from workbench.config import Settings

PYPI = "https://pypi.org/simple"  # pip's default index, as on the host


def pip_sources(settings: Settings) -> dict[str, list[str]]:
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


def pip_plan(settings: Settings) -> PipPlan:
    sources = pip_sources(settings)
    options: list[str] = ["--prefer-binary"]
    mounts: dict[str, dict[str, str]] = {}
    urls: list[str] = []
    for key, values in sources.items():
        for value in values:
            local = local_path(value)
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
            urls.append(PYPI)
    return PipPlan(options, mounts, allowed_for(urls, settings))


def venv_missing(workspace: Path) -> bool:
    try:
        with Confined(workspace) as folder:
            entry = folder.lstat(".venv/pyvenv.cfg")
    except (Refused, OSError):
        return True
    return entry is None or entry.kind != "file"


class PipManager(Manager):
    name = "pip"
    description = "Python packages, into a venv at /workspace/.venv"
    sources = ("pip_find_links", "pip_index_url")
    target = "workspace"
    source_labels = {"pip_find_links": "pip wheelhouse", "pip_index_url": "pip index"}

    def locations(self, settings: Settings, setting: str) -> list[str]:
        if setting == "pip_find_links":  # several wheelhouses, space-separated
            return settings.install.pip_find_links.split()
        return super().locations(settings, setting)

    def reachable(self, settings: Settings) -> str:
        return in_words(pip_plan(settings).egress)

    def install(self, sandbox: InstallingSandbox, packages: list[str], progress: Progress | None) -> ManagerRun:
        plan = pip_plan(sandbox.settings)
        self.refuse_workspace_sources(sandbox, plan.mounts, plan.egress)
        workspace = sandbox.project.workspace
        with way_out(sandbox, sandbox.identity.user, plan.egress) as opened:
            if venv_missing(workspace):
                # Made in a container of its own with no way out, so that what a new venv holds (pip,
                # setuptools) is there before the host reads what the install changes.
                made = run_container(sandbox, image=sandbox.image, command=pip_command(NEW_VENV, [], new_venv=True),
                                     user=sandbox.identity.user, allowed=frozenset(), mounts={}, workspace=True,
                                     hardened=True, progress=progress, environment=PIP_ENV)
                if made.exit_code != 0:
                    return ManagerRun(made.exit_code, made.output, {})
            before = readback.venv_distributions(workspace)
            run = run_container(sandbox, image=sandbox.image, command=pip_command(plan.options, packages),
                                user=sandbox.identity.user, allowed=plan.egress, mounts=plan.mounts,
                                workspace=True, hardened=True, progress=progress, environment=PIP_ENV,
                                way_out=opened)
        after = readback.venv_distributions(workspace)
        return ManagerRun(run.exit_code, run.output, readback.changed(before.versions, after.versions),
                          run.attempts, tuple(after.notes))

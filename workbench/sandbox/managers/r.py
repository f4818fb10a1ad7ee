"""R: packages into an R library at /workspace/.R (R_LIBS_USER points there for later executions).

Source ([install]): `cran_repo`, a CRAN-like repository (`src/contrib/PACKAGES`): a folder (`file:///PATH`
or `/PATH`), mounted read-only, or a URL. Not set: https://cloud.r-project.org.

R comes from the read-only image (/usr/bin/Rscript --vanilla: no profile or environment file is read). It
builds into a library of its own in the container's /tmp, with only the image's libraries besides: a
package already in /workspace/.R (code's to write) is never loaded, not even as a dependency of the one
being built; dependencies are installed afresh. The staged packages then replace theirs in .R. An R
package's configure script is the package's own code and stays behind the proxy.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from workbench.sandbox import policy, readback
from workbench.sandbox.egress import Destination
from workbench.sandbox.managers.base import InstallingSandbox, Manager, ManagerRun, Progress
from workbench.sandbox.managers.install_container import run_container
from workbench.sandbox.managers.sources import allowed_for, in_words, local_path

if TYPE_CHECKING:
    from workbench.config import Settings

IMAGE_RSCRIPT = "/usr/bin/Rscript"  # the image's own R: read-only, never the workspace's
R_LIBRARY = f"{policy.WORKSPACE}/.R"
DEFAULT_CRAN = "https://cloud.r-project.org"
R_STAGE = "/tmp/workbench-r-library"
# The *_USER variables reach R's own child processes too (R CMD INSTALL), which --vanilla does not.
R_ENV = {"R_LIBS_USER": R_STAGE, "R_LIBS": "", "R_PROFILE_USER": os.devnull, "R_ENVIRON_USER": os.devnull}


def cran_repo(settings: Settings) -> str:
    return settings.install.cran_repo or DEFAULT_CRAN


def r_plan(settings: Settings, packages: list[str]
           ) -> tuple[str, dict[str, dict[str, str]], frozenset[Destination]]:
    """(the Rscript expression, read-only mounts, where it may reach)."""
    repo = cran_repo(settings)
    mounts: dict[str, dict[str, str]] = {}
    local = local_path(repo)
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


class RManager(Manager):
    name = "r"
    description = "R packages, into an R library at /workspace/.R"
    sources = ("cran_repo",)
    target = "workspace"
    source_labels = {"cran_repo": "CRAN repository"}

    def reachable(self, settings: Settings) -> str:
        return in_words(allowed_for([cran_repo(settings)], settings))

    def install(self, sandbox: InstallingSandbox, packages: list[str], progress: Progress | None) -> ManagerRun:
        script, mounts, allowed = r_plan(sandbox.settings, packages)
        workspace = sandbox.project.workspace
        self.refuse_workspace_sources(sandbox, mounts, allowed)
        before = readback.r_library(workspace)
        run = run_container(sandbox, image=sandbox.image, command=[IMAGE_RSCRIPT, "--vanilla", "-e", script],
                            user=sandbox.identity.user, allowed=allowed, mounts=mounts,
                            workspace=True, hardened=True, progress=progress, environment=R_ENV)
        after = readback.r_library(workspace)
        return ManagerRun(run.exit_code, run.output, readback.changed(before.versions, after.versions),
                          run.attempts, tuple(after.notes))

"""The software an execution ran with: one `environment.recorded` per distinct state, stored once in the log.

An environment is the image (its id) and the workspace's own environments (the venv's pip distributions,
the R library, the conda prefix). Its `digest` is the SHA-256 of its canonical JSON (`image_id` and
`packages`), so the same state always has the same digest: every `exec.finished` names it in its
`environment` field, and the package list itself is in the log once, in the first `environment.recorded`
of that digest (`workbench.sandbox.environment` computes it; `workbench.audit.sbom` exports it).

`packages` is compact on purpose (a base image holds hundreds of Debian packages): ecosystem ->
sorted lines, each "name version" ("name version arch" for deb), names and versions as the package
managers' own metadata says (names and versions with blanks or markup are never recorded).
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.events import contract as C
from workbench.events import kinds as K
from workbench.events.contract import Payload
from workbench.events.declared import declare

ECOSYSTEMS = ("deb", "pypi", "cran", "conda")  # the package URL types of each list, in report order


@declare
@dataclass(frozen=True, slots=True)
class EnvironmentRecorded(Payload):
    """A distinct environment, first seen by an execution of this project.

    `image` is the image reference the sandbox ran, `image_id` the engine's id for it; `packages` maps an
    ecosystem (`ECOSYSTEMS`) to its lines; `notes` say what could not be read (one line each)."""

    KIND = K.ENVIRONMENT_RECORDED

    digest: str = C.text(required=True)
    image: str = C.text()
    image_id: str = C.text()
    packages: dict = C.mapping()
    notes: tuple[str, ...] = C.items()

    def lines(self, ecosystem: str) -> list[str]:
        value = self.packages.get(ecosystem) if isinstance(self.packages, dict) else None
        return [line for line in value if isinstance(line, str)] if isinstance(value, list | tuple) else []

    def components(self) -> list[tuple[str, str, str, str]]:
        """(ecosystem, name, version, arch) of every package, in `ECOSYSTEMS` order; malformed lines skipped."""
        found = []
        for ecosystem in ECOSYSTEMS:
            for line in self.lines(ecosystem):
                parts = line.split(" ")
                if len(parts) >= 2 and parts[0] and parts[1]:
                    found.append((ecosystem, parts[0], parts[1], parts[2] if len(parts) > 2 else ""))
        return found

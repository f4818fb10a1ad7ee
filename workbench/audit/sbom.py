"""Software bills of materials from the audit log: the environment an execution ran with, as a standard document.

The log holds each distinct environment once (`environment.recorded`: the image and the workspace's
packages, see `workbench.events.environment`) and every `exec.finished` names its digest. This module reads
them back (`recorded`), picks the environment of one execution, or of the newest one (`select`), and writes
it as CycloneDX 1.6 JSON through `cyclonedx-python-lib` (`cyclonedx`), or SPDX 2.3 JSON through `spdx-tools`
(`workbench.audit.sbom_spdx`). Each package is named by its package URL:

  pkg:deb/debian/NAME@VERSION?arch=ARCH   pkg:pypi/name@version   pkg:cran/NAME@VERSION   pkg:conda/name@version

A document says which log entry it came from (its seq and leaf hash), so a reviewer can check it against
`workbench audit verify`. Output is deterministic: the same entry gives the same bytes.
"""

from __future__ import annotations

import re
import uuid
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from workbench import __version__
from workbench.audit.errors import AuditError
from workbench.errors import UsageError
from workbench.events import EXEC_FINISHED, EnvironmentRecorded, ExecFinished
from workbench.events.kinds import ENVIRONMENT_RECORDED

FORMATS = ("cyclonedx", "spdx")
NAMESPACE = uuid.UUID("6f1c2a4e-8f2b-5d0e-9a7c-3b1e4d5f6a70")  # serial numbers: uuid5 of the environment digest
PURL_TYPES = {"deb": "deb", "pypi": "pypi", "cran": "cran", "conda": "conda"}


class SbomError(AuditError):
    """The log holds no environment to export, or the document could not be made."""


@dataclass(frozen=True)
class Package:
    ecosystem: str  # deb, pypi, cran, conda
    name: str
    version: str
    arch: str = ""

    @property
    def purl(self) -> str:
        return purl(self.ecosystem, self.name, self.version, self.arch)


@dataclass
class Environment:
    """One `environment.recorded` entry, and the executions (ids, in log order) that name it."""

    digest: str
    image: str
    image_id: str
    packages: list[Package]
    notes: list[str]
    seq: int
    entry_hash: str
    time: datetime
    executions: list[str] = field(default_factory=list)

    def of(self, ecosystem: str) -> list[Package]:
        return [p for p in self.packages if p.ecosystem == ecosystem]


def purl(ecosystem: str, name: str, version: str, arch: str = "") -> str:
    """The package URL of a package (the spec's normalisation: PyPI names lower case, runs of -_. as one -)."""
    from packageurl import PackageURL

    kind = PURL_TYPES[ecosystem]
    if ecosystem == "pypi":
        name = re.sub(r"[-_.]+", "-", name).lower()
    if ecosystem == "conda":
        name = name.lower()
    namespace = "debian" if ecosystem == "deb" else None
    qualifiers = {"arch": arch} if ecosystem == "deb" and arch else None
    return PackageURL(type=kind, namespace=namespace, name=name, version=version, qualifiers=qualifiers).to_string()


def from_payload(payload: EnvironmentRecorded, seq: int = 0, entry_hash: str = "",
                 time: datetime | None = None) -> Environment:
    packages = [Package(eco, name, version, arch) for eco, name, version, arch in payload.components()]
    return Environment(payload.digest, payload.image, payload.image_id, packages, list(payload.notes), seq,
                       entry_hash, time or datetime.now(UTC))


def recorded(entries: Iterable[Any]) -> tuple[dict[str, Environment], list[tuple[str, str]]]:
    """(digest -> its first `environment.recorded`, [(execution id, digest)] in log order) from audit entries
    (anything with `seq`, `kind`, `payload`, `hash`, `time`: `workbench.audit.log.AuditEntry`)."""
    found: dict[str, Environment] = {}
    runs: list[tuple[str, str]] = []
    for entry in entries:
        if entry.kind == ENVIRONMENT_RECORDED:
            payload = EnvironmentRecorded.decode(entry.payload)
            if payload.digest and payload.digest not in found:
                found[payload.digest] = from_payload(payload, entry.seq, entry.hash, entry.time)
        elif entry.kind == EXEC_FINISHED:
            finished = ExecFinished.decode(entry.payload)
            if finished.environment:
                runs.append((finished.execution_id, finished.environment))
    for execution_id, digest in runs:
        if digest in found:
            found[digest].executions.append(execution_id)
    return found, runs


def read_log(log: Any) -> tuple[dict[str, Environment], list[tuple[str, str]]]:
    """`recorded` over an open `workbench.audit.AuditLog`."""
    return recorded(log.entries(kinds=[ENVIRONMENT_RECORDED, EXEC_FINISHED]))


def select(environments: dict[str, Environment], runs: list[tuple[str, str]],
           execution: str | None = None) -> Environment:
    """The environment of `execution` (its id, or an unambiguous prefix of it), or of the newest execution."""
    if not runs:
        raise SbomError("no execution in this log names its environment",
                        "run code with this version of Workbench first (environments are recorded since it)")
    if execution is None:
        execution_id, digest = runs[-1]
    else:
        matches = {(eid, digest) for eid, digest in runs if eid == execution} or \
                  {(eid, digest) for eid, digest in runs if eid.startswith(execution)}
        ids = {eid for eid, _ in matches}
        if not ids:
            raise UsageError(f"no execution {execution!r} in this log names an environment",
                             "see the execution ids in `workbench audit export` or the report")
        if len(ids) > 1:
            raise UsageError(f"{execution!r} names {len(ids)} executions", "give more of the execution id")
        execution_id, digest = sorted(matches)[0]
    if digest not in environments:
        raise SbomError(f"execution {execution_id} ran with environment {digest[:19]}, but the log holds no "
                        "environment.recorded entry of it", "the log may be cut; run `workbench audit verify`")
    return environments[digest]


# --- CycloneDX -------------------------------------------------------------------------------------
def cyclonedx(env: Environment, project: str = "") -> str:
    """The environment as a CycloneDX 1.6 JSON document (validated by the caller or the tests)."""
    from cyclonedx.model import Property
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output import make_outputter
    from cyclonedx.schema import OutputFormat, SchemaVersion
    from packageurl import PackageURL

    root = Component(name=env.image or "sandbox image", version=env.image_id or None, type=ComponentType.CONTAINER,
                     bom_ref=f"environment:{env.digest}", properties=provenance(env, project))
    components, seen = [], set()
    for package in env.packages:
        ref = package.purl
        if ref in seen:
            continue
        seen.add(ref)
        components.append(Component(
            name=package.name, version=package.version, type=ComponentType.LIBRARY, bom_ref=ref,
            purl=PackageURL.from_string(ref),
            properties=[Property(name="workbench:ecosystem", value=package.ecosystem)]))
    bom = Bom(serial_number=uuid.uuid5(NAMESPACE, env.digest),
              metadata=BomMetaData(component=root, timestamp=env.time, properties=[
                  Property(name="workbench:version", value=__version__)]))
    for component in components:
        bom.components.add(component)
    bom.register_dependency(root, components)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the library's advice on optional fields; the schema check is ours
        return make_outputter(bom, OutputFormat.JSON, SchemaVersion.V1_6).output_as_string(indent=2)


def provenance(env: Environment, project: str) -> list[Any]:
    from cyclonedx.model import Property

    values = [("workbench:environment", env.digest), ("workbench:image", env.image),
              ("workbench:image_id", env.image_id), ("workbench:audit.seq", str(env.seq)),
              ("workbench:audit.entry_hash", env.entry_hash), ("workbench:project", project)]
    values += [("workbench:note", note) for note in env.notes]
    return [Property(name=name, value=value) for name, value in values if value]


def validate_cyclonedx(text: str) -> str | None:
    """What the CycloneDX 1.6 JSON schema says is wrong with `text`, or None when it validates."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    return None if error is None else str(error)[:500]


def document(env: Environment, fmt: str, project: str = "") -> str:
    """The environment as a document of `fmt` (one of FORMATS), checked against its standard before it is
    returned: a document that does not validate is an error, never a file."""
    if fmt == "cyclonedx":
        text = cyclonedx(env, project)
        problem = validate_cyclonedx(text)
    elif fmt == "spdx":
        from workbench.audit import sbom_spdx

        text, problem = sbom_spdx.spdx(env, project)
    else:
        raise UsageError(f"unknown SBOM format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
    if problem:
        raise SbomError(f"the {fmt} document did not validate: {problem}", "report this as a Workbench bug")
    return text

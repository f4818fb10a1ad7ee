"""A recorded environment as an SPDX 2.3 JSON document, made and validated by `spdx-tools`.

One SPDX package for the image (the document DESCRIBES it) and one per package in it (the image CONTAINS
each), each with its package URL as a PACKAGE-MANAGER external reference. Nothing about licences or
download locations is recorded, so those fields say NOASSERTION, as SPDX asks when a tool does not know.
The document namespace is derived from the environment's digest, so the same entry gives the same document.
"""

from __future__ import annotations

import io
import re
from typing import Any

from workbench import __version__

NAMESPACE_BASE = "https://workbench.invalid/spdx/environment"  # a URI that names, never one that resolves


def _spdx_id(index: int, name: str) -> str:
    return f"SPDXRef-Package-{index}-" + (re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip("-") or "x")[:60]


def spdx(env: Any, project: str = "") -> tuple[str, str | None]:
    """(the SPDX JSON text, what validation found wrong or None) of a `workbench.audit.sbom.Environment`
    (typed loosely: that module calls this one)."""
    from spdx_tools.spdx.model import (
        Actor,
        ActorType,
        CreationInfo,
        Document,
        ExternalPackageRef,
        ExternalPackageRefCategory,
        Package,
        PackagePurpose,
        Relationship,
        RelationshipType,
        SpdxNoAssertion,
    )
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
    from spdx_tools.spdx.writer.json.json_writer import write_document_to_stream

    created = env.time.replace(microsecond=0, tzinfo=None)  # SPDX dates: UTC, to the second
    info = CreationInfo(
        spdx_version="SPDX-2.3", spdx_id="SPDXRef-DOCUMENT", name=f"environment {env.digest[:19]}",
        document_namespace=f"{NAMESPACE_BASE}/{env.digest.removeprefix('sha256:')}",
        creators=[Actor(ActorType.TOOL, f"Workbench-{__version__}")], created=created,
        document_comment=(f"Workbench audit entry {env.seq} ({env.entry_hash}); image {env.image} "
                          f"({env.image_id}); project {project}").strip())
    image = Package(spdx_id="SPDXRef-Image", name=env.image or "sandbox image",
                    download_location=SpdxNoAssertion(), version=env.image_id or None, files_analyzed=False,
                    primary_package_purpose=PackagePurpose.CONTAINER,
                    comment="; ".join(env.notes) or None)
    packages, relationships, seen = [image], [Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES,
                                                           "SPDXRef-Image")], set()
    for index, package in enumerate(env.packages, start=1):
        purl = package.purl
        if purl in seen:
            continue
        seen.add(purl)
        spdx_id = _spdx_id(index, package.name)
        packages.append(Package(
            spdx_id=spdx_id, name=package.name, download_location=SpdxNoAssertion(), version=package.version,
            files_analyzed=False, primary_package_purpose=PackagePurpose.LIBRARY,
            external_references=[ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", purl)]))
        relationships.append(Relationship("SPDXRef-Image", RelationshipType.CONTAINS, spdx_id))
    document = Document(creation_info=info, packages=packages, relationships=relationships)
    problems = validate_full_spdx_document(document)
    if problems:
        return "", "; ".join(p.validation_message for p in problems[:3])
    out = io.StringIO()
    write_document_to_stream(document, out, validate=False)  # validated just above
    return out.getvalue(), None

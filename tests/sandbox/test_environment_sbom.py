"""The software bill of materials (issue 20 item 2), against the real engine and image, with no network.

Through the `workbench` command a user runs: an execution before and after a pip install from a local
wheelhouse records the environment it ran with (the image's Debian packages, the venv's distributions); an
unchanged environment keeps its digest and is stored once; `audit sbom` writes CycloneDX and SPDX documents
that their own libraries validate; the PDF's appendix lists the package.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.sandbox import repos
from workbench import trust
from workbench.audit import AuditLog

pytestmark = pytest.mark.engine


def wb(workbench_cmd, *args):
    done = subprocess.run([*workbench_cmd, *args], capture_output=True, timeout=300)
    assert done.returncode == 0, (args, done.stderr.decode())
    return done


def entries(project, kind):
    with AuditLog.open_path(project.audit_db, create=False, readonly=True) as log:
        return [e.payload for e in log.entries(kinds=[kind])]


def test_executions_record_their_environment_once_per_state_and_export_it(engine_ready, project, tmp_path,
                                                                          workbench_cmd):
    house = tmp_path / "wheelhouse"
    repos.wheels(house)
    (project.root / ".workbench" / "config.toml").write_text(f'[install]\npip_find_links = "{house}"\n')
    trust.trust(project)
    where = ["-p", str(project.root)]
    wb(workbench_cmd, "exec", *where, "--lang", "python", "-c", "print(1)")
    wb(workbench_cmd, "install", *where, "--manager", "pip", "wbdemo-a")
    wb(workbench_cmd, "exec", *where, "--lang", "python", "-c", "import wbdemo_a; print(wbdemo_a.VALUE)")
    wb(workbench_cmd, "exec", *where, "--lang", "shell", "-c", "true")  # nothing changed: the same environment

    finished = entries(project, "exec.finished")
    recorded = entries(project, "environment.recorded")
    digests = [f.get("environment") for f in finished]
    assert len(digests) == 3 and all(d and d.startswith("sha256:") for d in digests), finished
    before, after, again = digests
    assert before != after, "an install changes the digest"
    assert again == after, "an unchanged environment keeps its digest"
    assert [r["digest"] for r in recorded] == [before, after], "each state's package list is stored once"
    first, second = recorded
    assert "wbdemo-a 1.0" in second["packages"]["pypi"] and "wbdemo-b 0.5" in second["packages"]["pypi"]
    assert second["packages"]["pypi"] and not first["packages"]["pypi"]
    debs = {line.split(" ")[0] for line in second["packages"]["deb"]}
    assert {"bash", "dpkg", "python3"} <= debs and len(debs) > 50, "the image's Debian packages"
    assert second["packages"]["deb"] == first["packages"]["deb"] and second["image_id"] == first["image_id"]

    # CycloneDX, validated by the standard's own library.
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    out = tmp_path / "bom.json"
    wb(workbench_cmd, "audit", "sbom", *where, "--format", "cyclonedx", "--out", str(out))
    text = out.read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    purls = {c["purl"] for c in bom["components"]}
    assert "pkg:pypi/wbdemo-a@1.0" in purls
    assert any(p.startswith("pkg:deb/debian/bash@") and "arch=" in p for p in purls)
    props = {p["name"]: p["value"] for p in bom["metadata"]["component"]["properties"]}
    assert props["workbench:environment"] == after

    # The first execution's environment has no venv packages.
    first_id = finished[0]["execution_id"]
    earlier = json.loads(wb(workbench_cmd, "audit", "sbom", *where, "--execution", first_id).stdout)
    assert not any(c["purl"].startswith("pkg:pypi/") for c in earlier["components"])

    # SPDX, parsed back and validated by spdx-tools.
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    spdx = tmp_path / "bom.spdx.json"
    wb(workbench_cmd, "audit", "sbom", *where, "--format", "spdx", "--out", str(spdx))
    document = parse_file(str(spdx))
    assert validate_full_spdx_document(document) == []
    assert any(ref.locator == "pkg:pypi/wbdemo-a@1.0" for pkg in document.packages
               for ref in pkg.external_references)

    # The PDF's appendix lists the package and its version; each execution names its environment.
    import pypdf

    pdf = tmp_path / "report.pdf"
    wb(workbench_cmd, "report", *where, "--out", str(pdf))
    pages = [page.extract_text() for page in pypdf.PdfReader(str(pdf)).pages]
    appendix = "\n".join(pages[next(i for i, t in enumerate(pages) if "Appendix: software environments" in t):])
    assert "wbdemo-a" in appendix and "1.0" in appendix and "Environment E2" in appendix
    assert sum(t.count("environment E") for t in pages) == 3  # each execution's facts


def test_a_bad_execution_id_is_one_line(engine_ready, project, workbench_cmd):
    wb(workbench_cmd, "exec", "-p", str(project.root), "--lang", "shell", "-c", "true")
    done = subprocess.run([*workbench_cmd, "audit", "sbom", "-p", str(project.root), "--execution", "nope"],
                          capture_output=True, timeout=120)
    assert done.returncode == 2 and done.stderr.decode().count("\n") == 1, done.stderr.decode()
    assert "no execution 'nope'" in done.stderr.decode()

"""SBOM documents from recorded environments: package URLs, CycloneDX and SPDX validated by their own
libraries, picking an execution's environment, and old logs (exec.finished without `environment`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from workbench import events
from workbench.audit import sbom
from workbench.errors import UsageError

DIGEST = "sha256:" + "ab" * 32
PAYLOAD = events.EnvironmentRecorded(
    digest=DIGEST, image="localhost/workbench-base:1", image_id="sha256:" + "cd" * 32,
    packages={"deb": ["bash 5.2.15-2+b2 amd64", "libc6 2.36-9 amd64"], "pypi": ["Wb_Demo.A 1.0", "bad"],
              "cran": ["jsonlite 1.8.8"], "conda": ["NumPy 1.26.4"]},
    notes=("evil.dist-info is a symlink to /etc: not followed",))


def entry(seq, kind, payload):
    return SimpleNamespace(seq=seq, kind=kind, payload=payload.encode() if hasattr(payload, "encode") else payload,
                           hash=f"{seq:064x}", time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))


def finished(execution_id, environment=None):
    data = {"execution_id": execution_id, "language": "python", "exit_code": 0}
    if environment:
        data["environment"] = environment
    return data


def test_package_urls_follow_the_purl_spec():
    assert sbom.purl("deb", "bash", "5.2.15-2+b2", "amd64") == "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64"
    assert sbom.purl("pypi", "Wb_Demo.A", "1.0") == "pkg:pypi/wb-demo-a@1.0"
    assert sbom.purl("cran", "jsonlite", "1.8.8") == "pkg:cran/jsonlite@1.8.8"
    assert sbom.purl("conda", "NumPy", "1.26.4") == "pkg:conda/numpy@1.26.4"


def test_cyclonedx_validates_and_names_every_package_once():
    env = sbom.from_payload(PAYLOAD, 7, "ee" * 32, datetime(2026, 1, 2, tzinfo=UTC))
    text = sbom.document(env, "cyclonedx", "demo")
    assert sbom.validate_cyclonedx(text) is None
    bom = json.loads(text)
    assert sorted(c["purl"] for c in bom["components"]) == sorted([
        "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64", "pkg:deb/debian/libc6@2.36-9?arch=amd64",
        "pkg:pypi/wb-demo-a@1.0", "pkg:cran/jsonlite@1.8.8", "pkg:conda/numpy@1.26.4"])  # "bad" is no package
    props = {p["name"]: p["value"] for p in bom["metadata"]["component"]["properties"]}
    assert props["workbench:environment"] == DIGEST and props["workbench:audit.seq"] == "7"
    assert "not followed" in props["workbench:note"]
    assert sbom.document(env, "cyclonedx", "demo") == text  # deterministic
    assert sbom.validate_cyclonedx(text.replace('"library"', '"no-such-type"')) is not None  # the check bites


def test_spdx_validates_with_spdx_tools(tmp_path):
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    env = sbom.from_payload(PAYLOAD, 7, "ee" * 32, datetime(2026, 1, 2, tzinfo=UTC))
    path = tmp_path / "env.spdx.json"
    path.write_text(sbom.document(env, "spdx", "demo"))
    document = parse_file(str(path))
    assert validate_full_spdx_document(document) == []
    locators = {ref.locator for p in document.packages for ref in p.external_references}
    assert "pkg:pypi/wb-demo-a@1.0" in locators and len(document.packages) == 6  # the image + 5


def test_the_newest_or_a_named_execution_picks_its_environment():
    other = events.EnvironmentRecorded(digest="sha256:" + "01" * 32, image_id="x", packages={"pypi": ["a 1"]})
    log = [entry(1, "environment.recorded", PAYLOAD), entry(2, "exec.finished", finished("aaaa1111", DIGEST)),
           entry(3, "environment.recorded", other), entry(4, "exec.finished", finished("bbbb2222", other.digest)),
           entry(5, "environment.recorded", PAYLOAD),  # a second copy (two processes raced): the first counts
           entry(6, "exec.finished", finished("bbbb3333", DIGEST))]
    found, runs = sbom.recorded(log)
    assert set(found) == {DIGEST, other.digest} and found[DIGEST].seq == 1
    assert found[DIGEST].executions == ["aaaa1111", "bbbb3333"]
    assert sbom.select(found, runs).digest == DIGEST
    assert sbom.select(found, runs, "bbbb2222").digest == other.digest
    assert sbom.select(found, runs, "aaaa").digest == DIGEST  # an unambiguous prefix
    with pytest.raises(UsageError, match="names 2 executions"):
        sbom.select(found, runs, "bbbb")
    with pytest.raises(UsageError, match="no execution 'zz'"):
        sbom.select(found, runs, "zz")


def test_an_old_log_or_a_cut_one_is_one_line():
    old = [entry(1, "exec.finished", finished("aaaa1111"))]  # written before environments were recorded
    assert events.ExecFinished.decode(old[0].payload).environment is None
    with pytest.raises(sbom.SbomError, match="no execution in this log names its environment"):
        sbom.select(*sbom.recorded(old))
    cut = [entry(2, "exec.finished", finished("aaaa1111", DIGEST))]
    with pytest.raises(sbom.SbomError, match="holds no environment.recorded entry"):
        sbom.select(*sbom.recorded(cut))


def test_exec_finished_leaves_the_field_out_when_there_is_none():
    assert "environment" not in events.ExecFinished(execution_id="x").encode()
    assert events.ExecFinished(execution_id="x", environment=DIGEST).encode()["environment"] == DIGEST
    assert events.ExecFinished.version_of({"execution_id": "x", "environment": DIGEST}) == 3

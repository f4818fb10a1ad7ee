"""The PDF shows which witness cosigned which checkpoint, and says so in red when a witness contradicts
the log. The witness is a real `workbench witness serve` in its own process."""

from __future__ import annotations

import sqlite3

import pytest

from tests.audit.conftest import event
from tests.audit.witness_procs import WitnessProcess
from workbench.audit import AuditLog, KeyStore
from workbench.audit.cosign import WitnessKey, log_vkey
from workbench.audit.witness import Registry
from workbench.project import Project

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(autouse=True)
def no_engine_probe(monkeypatch):
    from workbench.report import environment

    monkeypatch.setattr(environment, "probe_engine", lambda project: environment.EngineFacts(
        True, "podman 9.9.9", "unix:///fake.sock", True, True,
        settings=environment.configured_limits(project.settings())))


def pdf_text(path) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() or "" for page in PdfReader(str(path)).pages)


def test_the_pdf_names_the_witnesses_that_cosigned_each_checkpoint(tmp_path):
    from workbench.report import render_report

    project = Project.init(tmp_path / "proj")
    log = AuditLog.open(project, key_store=KeyStore())
    witness = WitnessProcess(tmp_path / "witness-data", allow=(log_vkey(log.origin, KeyStore().signing_key().public),))
    witness.start()
    try:
        with Registry.open() as registry:
            registry.add(log.origin, witness.url, WitnessKey.parse(witness.vkey))
        for start in (0, 6):
            for i in range(start, start + 6):
                log.append(event(i))
            log.checkpoint()  # announced by the log, pushed to the witness
        log.close()
    finally:
        witness.stop()
    out = tmp_path / "report.pdf"
    render_report(project, out)
    text = " ".join(pdf_text(out).split())
    name = witness.vkey.split("+", 1)[0]
    assert "Witness cosignatures" in text
    assert f"Checkpoint of size 12 {name}" in text and f"Checkpoint of size 6 {name}" in text
    assert witness.vkey in text.replace(" ", "")  # the key, to compare with the one the witness publishes
    assert "A WITNESS CONTRADICTS THIS LOG" not in text

    # A cosignature copied onto another checkpoint: the PDF says it in red.
    conn = sqlite3.connect(project.audit_db)
    with conn:
        row = conn.execute("SELECT origin, size, body, witness, line FROM cosignatures WHERE size = 6").fetchone()
        newest_body = conn.execute("SELECT body FROM cosignatures WHERE size = 12").fetchone()[0]
        conn.execute("DELETE FROM cosignatures WHERE size = 12")
        conn.execute("INSERT INTO cosignatures (origin, size, body, witness, line, received) VALUES (?, 12, ?, ?, ?, "
                     "'2026-01-01T00:00:00+00:00')", (row[0], newest_body, row[3], row[4]))
    conn.close()
    render_report(project, out)
    text = " ".join(pdf_text(out).split())
    assert "A WITNESS CONTRADICTS THIS LOG" in text and "does not verify" in text

"""A report over a real execution in the real sandbox (needs the engine and the base image)."""

from __future__ import annotations

import pytest

from tests.conftest import need
from tests.report.conftest import pdf_text
from workbench.report import render_report

pytestmark = pytest.mark.engine


@pytest.fixture
def engine_ready():
    from workbench.config import Settings

    try:
        from workbench.sandbox import BASE_IMAGE, image_present, probe
    except ImportError as exc:  # the sandbox package is not there at all
        need(False, f"the sandbox package ({exc})")
        return
    found = probe(Settings())
    need(found.reachable, f"a container engine ({found.error}; run packaging/setup-engine.sh)")
    need(image_present(settings=Settings()), f"the base image {BASE_IMAGE} (run: workbench setup)")


def test_report_of_a_real_execution(engine_ready, project, tmp_path):
    from workbench.session import WorkSession

    with WorkSession.open(project) as ws:
        execution = ws.sandbox.execute("python", "print('engine-report-marker')\nraise SystemExit(5)\n")
        result = execution.result()
    assert result.exit_code == 5
    out = tmp_path / "engine.pdf"
    summary = render_report(project, out)
    assert summary.verified and summary.executions == 1
    text = pdf_text(out)
    assert "engine-report-marker" in text and "exit 5" in text
    assert result.stdout.sha256 in text
    assert "Audit log verified at export time" in text

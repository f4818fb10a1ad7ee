"""A notebook of a real agent run: a scripted model, real executions in the sandbox (needs the engine and image)."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from tests.agent.fakes import ScriptedLLM
from tests.conftest import need
from tests.report.test_notebook import assert_nothing_live, png, render_html

pytestmark = pytest.mark.engine

nbformat = pytest.importorskip("nbformat", reason="nbformat (a Workbench dependency) is not installed")

# The image may have no matplotlib: the PNG is written byte by byte, as tests/report/test_notebook.png does.
PNG_WRITER = """\
import struct, zlib
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
rows = b"".join(b"\\x00" + bytes(range(3)) for _ in range(2))
with open("plot.png", "wb") as f:
    f.write(b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 3, 2, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
print("engine-notebook-marker")
"""


@pytest.fixture
def engine_ready():
    from workbench.config import Settings

    try:
        from workbench.sandbox import BASE_IMAGE, image_present, probe
    except ImportError as exc:
        need(False, f"the sandbox package ({exc})")
        return
    found = probe(Settings())
    need(found.reachable, f"a container engine ({found.error}; run packaging/setup-engine.sh)")
    need(image_present(settings=Settings()), f"the base image {BASE_IMAGE} (run: workbench setup)")


def test_notebook_of_an_agent_run_in_the_real_sandbox(engine_ready, project, tmp_path):
    from workbench.agent.loop import AgentLoop, Policy
    from workbench.report.notebook import export_notebook
    from workbench.session import WorkSession

    replies = [
        json.dumps({"thought": "a shell check first", "action": "run_code", "language": "shell",
                    "code": "echo shell-marker; echo warned >&2; exit 4"}),
        json.dumps({"thought": "plot it <script>alert('thought')</script>", "action": "run_code",
                    "language": "python", "code": PNG_WRITER}),
        json.dumps({"thought": "done", "action": "finish", "answer": "plot.png written", "success": True}),
    ]
    task = "Write plot.png <img src=x onerror=alert('task')>"
    with WorkSession.open(project, actor="agent:test/scripted") as ws:
        loop = AgentLoop(ScriptedLLM(replies), ws.sandbox, emit=ws.emit, workspace=project.workspace,
                         policy=Policy(executions="auto", installs="auto"))
        outcome = loop.run(task)
        session_id = ws.session_id
    assert outcome.success, [s.observation[:300] for s in outcome.history]
    assert (project.workspace / "plot.png").read_bytes() == png()

    out = tmp_path / "run.ipynb"
    summary = export_notebook(project, out, session_id)
    assert summary.verified and summary.executions == 2 and summary.images == 1
    nb = nbformat.read(str(out), as_version=4)
    nbformat.validate(nb)
    sh, py = [c for c in nb.cells if c.cell_type == "code"]
    assert py.metadata.language == "python" and sh.metadata.language == "shell"
    assert py.metadata.workbench.code_sha256 == hashlib.sha256(PNG_WRITER.encode()).hexdigest()
    assert [o.text for o in py.outputs if o.output_type == "stream"] == ["engine-notebook-marker\n"]
    image = next(o for o in py.outputs if o.output_type == "display_data" and "image/png" in o.data)
    assert base64.b64decode(image.data["image/png"]) == png()
    assert image.metadata.workbench.sha256 == hashlib.sha256(png()).hexdigest()
    assert {(o.name, o.text) for o in sh.outputs if o.output_type == "stream"} == {("stdout", "shell-marker\n"),
                                                                                   ("stderr", "warned\n")}
    assert sh.metadata.workbench.exit_code == 4 and "exit code 4" in sh.outputs[-1].data["text/plain"]
    assert any(c.cell_type == "markdown" and "Task" in c.source and "&lt;img" in c.source for c in nb.cells)

    html = render_html(out)
    assert "engine-notebook-marker" in html and "shell-marker" in html
    assert_nothing_live(html)

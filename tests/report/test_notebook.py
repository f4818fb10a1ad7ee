"""`workbench export notebook`: a session as a Jupyter notebook, validated by nbformat and rendered by nbconvert.

The planted-markup tests put `<script>` and `<img onerror>` where the model and the sandbox control the
text (the task, a thought, a file name, an SVG's body) and check the HTML a real consumer renders holds
none of it live.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sqlite3
import struct
import subprocess
import sys
import zlib
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.report.conftest import append
from workbench.events import Event
from workbench.report.notebook import NotebookError, export_notebook, markdown_text

nbformat = pytest.importorskip("nbformat", reason="nbformat (a Workbench dependency) is not installed")

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
PLANTED = "<script>alert('task')</script> <img src=x onerror=alert('img')> [link](javascript:alert(1)) $x$"
THOUGHT = "I will run it.\n<script>alert('thought')</script>\n    <img src=y onerror=alert('thought-img')>"
BAD_NAME = "<img src=z onerror=alert('name')>.png"
SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><script>alert("svg")</script>'
       b'<rect width="4" height="4" fill="red"/></svg>')


def png(width: int = 3, height: int = 2) -> bytes:
    """A real PNG (8-bit grey), written by hand: the image may have no matplotlib."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + bytes(range(width)) for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def ev(sid: str, kind: str, payload: dict, offset: float, actor: str = "agent:wb/tiny") -> Event:
    return Event(kind, sid, actor, payload, user="user:alice", time=T0 + timedelta(seconds=offset))


def execution(sid, exec_id, code, out, exit_code, offset, *, err="", artifacts=(), language="python", **finish):
    finished = {"execution_id": exec_id, "language": language, "exit_code": exit_code, "duration": 0.25,
                "timed_out": False, "killed_by": None, "limits_enforced": True, "notes": [],
                "stdout": {"total_bytes": len(out.encode()), "sha256": sha(out), "truncated": False,
                           "kept_bytes": len(out.encode())},
                "stderr": {"total_bytes": len(err.encode()), "sha256": sha(err), "truncated": False,
                           "kept_bytes": len(err.encode())},
                "files": [{"path": a["path"], "change": "created", "sha256": a["sha256"], "size": a["size"]}
                          for a in artifacts],
                "artifacts": list(artifacts), **finish}
    body = [ev(sid, "exec.started", {"execution_id": exec_id, "language": language, "code": code}, offset)]
    if out:
        body.append(ev(sid, "exec.output", {"execution_id": exec_id, "stream": "stdout", "text": out}, offset + .1))
    if err:
        body.append(ev(sid, "exec.output", {"execution_id": exec_id, "stream": "stderr", "text": err}, offset + .2))
    return body + [ev(sid, "exec.finished", finished, offset + .3)]


def artifact(workspace: Path, name: str, data: bytes, mime: str) -> dict:
    (workspace / name).write_bytes(data)
    return {"path": name, "mime": mime, "sha256": sha(data), "size": len(data)}


@pytest.fixture
def planted(project):
    """Two sessions; the first holds planted markup in its task, a thought, a file name and an SVG."""
    ws = project.workspace
    images = [artifact(ws, "plot.png", png(), "image/png"), artifact(ws, BAD_NAME, png(2, 2), "image/png"),
              artifact(ws, "drawing.svg", SVG, "image/svg+xml")]
    sid = "sess-nb"
    events = [
        ev(sid, "session.started", {"trigger": "user:alice", "project": "p", "project_id": "x",
                                    "workbench_version": "0.1.0"}, 0, "user:alice"),
        ev(sid, "task.started", {"task": PLANTED}, 0.5),
        ev(sid, "llm.action", {"step": 1, "thought": THOUGHT, "action": {"action": "run_code", "code": "x"}}, 1),
        *execution(sid, "ex-py", "print('notebook-marker-out')\n", "notebook-marker-out\n", 0, 2,
                   artifacts=images),
        ev(sid, "llm.action", {"step": 2, "thought": "now shell", "action": {"action": "run_code"}}, 3),
        *execution(sid, "ex-sh", "echo oops >&2; exit 3", "", 3, 4, err="oops <b>not bold</b>\n",
                   language="shell"),
        ev(sid, "task.finished", {"success": True, "answer": "done <i>ok</i>"}, 5),
        ev(sid, "session.finished", {"outcome": "finished"}, 6, "user:alice"),
        ev("sess-other", "session.started", {"trigger": "user:bob"}, 10, "user:bob"),
    ]
    append(project, events)
    return project


def log_entries(project) -> dict[int, tuple[str, str]]:
    """seq -> (kind, hash), read straight from the database."""
    db = sqlite3.connect(project.audit_db)
    try:
        rows = db.execute("SELECT seq, kind, hash FROM entries")
        return {seq: (kind, digest.hex() if isinstance(digest, bytes) else digest) for seq, kind, digest in rows}
    finally:
        db.close()


class LiveMarkup(HTMLParser):
    """What a browser would run in the rendered HTML: script bodies and on* attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.handlers: list[str] = []
        self.in_script = False

    def handle_starttag(self, tag, attrs):
        self.in_script = tag == "script"
        self.handlers += [f"{tag} {k}={v}" for k, v in attrs if k.lower().startswith("on")]
        self.handlers += [f"{tag} {k}={v}" for k, v in attrs if v and "javascript:" in v.lower()]

    def handle_endtag(self, tag):
        self.in_script = False

    def handle_data(self, data):
        if self.in_script:
            self.scripts.append(data)


def render_html(path: Path) -> str:
    """Render with jupyter nbconvert from this venv, as a reviewer's tool would."""
    jupyter = Path(sys.executable).parent / "jupyter"
    assert jupyter.exists(), "jupyter (nbconvert, a dev extra) is not installed in this environment"
    result = subprocess.run([str(jupyter), "nbconvert", "--to", "html", "--output-dir", str(path.parent), str(path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return path.with_suffix(".html").read_text(encoding="utf-8")


def assert_nothing_live(html: str) -> None:
    parser = LiveMarkup()
    parser.feed(html)
    assert not [s for s in parser.scripts if "alert" in s], "planted script became live"
    assert not [h for h in parser.handlers if "alert" in h], "planted handler became live"
    assert "<script>alert" not in html and not re.search(r"<img[^>]*onerror", html)


# --- the notebook ------------------------------------------------------------------------------------------
def test_session_becomes_a_valid_notebook_that_matches_the_log(planted, tmp_path):
    out = tmp_path / "session.ipynb"
    summary = export_notebook(planted, out, "sess-nb")
    assert summary.verified and summary.executions == 2 and summary.images == 3
    nb = nbformat.read(str(out), as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3" and nb.metadata.language_info.name == "python"
    assert nb.metadata.workbench.log_verified is True and nb.metadata.workbench.session_id == "sess-nb"

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.metadata.language for c in code] == ["python", "shell"]
    assert [c.execution_count for c in code] == [1, 2]
    py, sh = code
    assert py.source == "print('notebook-marker-out')\n"
    assert py.metadata.workbench.execution_id == "ex-py"
    assert py.metadata.workbench.code_sha256 == sha("print('notebook-marker-out')\n")
    streams = [(o.name, o.text) for o in py.outputs if o.output_type == "stream"]
    assert streams == [("stdout", "notebook-marker-out\n")]
    assert [(o.name, o.text) for o in sh.outputs if o.output_type == "stream"] == [("stderr",
                                                                                      "oops <b>not bold</b>\n")]
    note = sh.outputs[-1].data["text/plain"]
    assert "failed, exit code 3" in note and sh.metadata.workbench.exit_code == 3

    # Every cell names its entries; each (seq, hash) is the log's own, and of a kind that cell shows.
    entries = log_entries(planted)
    for cell in nb.cells:
        refs = cell.metadata.workbench.entries
        assert refs, f"cell without entries: {cell.metadata.workbench.kind}"
        for ref in refs:
            assert entries[ref.seq][1] == ref.hash
    assert {entries[r.seq][0] for r in py.metadata.workbench.entries} == {"exec.started", "exec.output",
                                                                          "exec.finished"}
    steps = [c for c in nb.cells if c.metadata.workbench.kind == "agentstep"]
    assert [entries[c.metadata.workbench.entries[0].seq][0] for c in steps] == ["llm.action", "llm.action"]
    assert steps[0].metadata.workbench.entries[0].seq < py.metadata.workbench.entries[0].seq

    # Images: the bytes the log's digest names, PNG as image/png, SVG only as an <img> of a data: URI.
    images = [o for o in py.outputs if o.output_type == "display_data" and "text/plain" in o.data
              and o.metadata.get("workbench", {}).get("path")]
    by_path = {o.metadata.workbench.path: o for o in images}
    assert base64.b64decode(by_path["plot.png"].data["image/png"]) == png()
    svg = by_path["drawing.svg"].data
    assert "image/svg+xml" not in svg and svg["text/html"].startswith('<img alt="image" src="data:image/svg+xml;base64,')
    assert base64.b64decode(svg["text/html"].split("base64,")[1].split('"')[0]) == SVG


def test_planted_markup_is_text_in_the_rendered_html(planted, tmp_path):
    out = tmp_path / "planted.ipynb"
    export_notebook(planted, out, "sess-nb")
    nb = nbformat.read(str(out), as_version=4)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "<script" not in markdown and "<img" not in markdown and "](javascript" not in markdown
    html = render_html(out)
    assert "notebook-marker-out" in html  # the stdout, as a reviewer sees it
    assert_nothing_live(html)
    # The planted text is shown, escaped, rather than dropped.
    assert "&lt;script&gt;alert(" in html and "onerror=alert(" in html.replace("&#39;", "'")
    assert "oops &lt;b&gt;not bold&lt;/b&gt;" in html
    assert "file created &lt;img src=z onerror=alert(" in html.replace("&#39;", "'")  # the file name, as text


def test_markdown_text_escapes_everything_a_renderer_reads():
    import mistune

    text = "# head\n- item\n1. one\n    code?\n<b>x</b> *em* _u_ `c` [a](b) ![i](j) $m$ \\ &amp; | ~~s~~"
    escaped = markdown_text(text)
    rendered = mistune.html(escaped)
    assert "<b>" not in rendered and "<em>" not in rendered and "<h1>" not in rendered and "<li>" not in rendered
    assert "<code>" not in rendered and "<a " not in rendered and "<img" not in rendered and "<pre>" not in rendered
    assert "&lt;b&gt;x&lt;/b&gt;" in rendered and "&amp;amp;" in rendered and "$m$" in rendered
    # A terminal escape is shown as its visible form, and renders as exactly that text.
    assert mistune.html(markdown_text("a\x1b]0;title\x07b\nline two", single_line=True)).strip() == \
        "<p>a\\x1b]0;title\\x07b\\nline two</p>"
    assert mistune.html(markdown_text("one\ntwo")).strip() == "<p>one<br />\ntwo</p>"


def test_a_missing_session_names_the_sessions_there_are(planted, tmp_path):
    with pytest.raises(NotebookError) as caught:
        export_notebook(planted, tmp_path / "x.ipynb", "no-such-session")
    line = caught.value.one_line()
    assert "no-such-session" in line and "sess-nb" in line and "sess-other" in line and "\n" not in line
    assert not (tmp_path / "x.ipynb").exists()


def test_a_tampered_log_is_refused_unless_asked_and_then_marked(planted, tmp_path):
    db = sqlite3.connect(planted.audit_db)
    db.execute("UPDATE entries SET payload = replace(payload, 'notebook-marker-out', 'notebook-marker-NEW') "
               "WHERE kind = 'exec.output'")
    db.commit()
    db.close()
    out = tmp_path / "tampered.ipynb"
    with pytest.raises(NotebookError) as caught:
        export_notebook(planted, out, "sess-nb")
    assert "did not verify" in caught.value.one_line() and not out.exists()
    summary = export_notebook(planted, out, "sess-nb", allow_unverified=True)
    assert not summary.verified and summary.verification_error
    nb = nbformat.read(str(out), as_version=4)
    nbformat.validate(nb)
    first = nb.cells[0]
    assert first.metadata.workbench.kind == "verification-warning" and "did NOT verify" in first.source
    assert nb.metadata.workbench.log_verified is False
    assert "notebook-marker-NEW" in json.dumps([c.get("outputs", []) for c in nb.cells])  # what the log holds now


def test_cli_exports_refuses_and_says_one_line(planted, tmp_path, workbench_cmd):
    out = tmp_path / "cli.ipynb"
    ok = subprocess.run([*workbench_cmd, "export", "notebook", "-p", str(planted.root), "--session", "sess-nb",
                         "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "wrote" in ok.stdout and "2 executions" in ok.stdout and "log verified" in ok.stdout
    nbformat.validate(nbformat.read(str(out), as_version=4))
    missing = subprocess.run([*workbench_cmd, "export", "notebook", "-p", str(planted.root), "--session", "nope",
                              "--out", str(tmp_path / "m.ipynb")], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "sess-nb" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    wrong = subprocess.run([*workbench_cmd, "export", "notebook", "-p", str(planted.root), "--session", "sess-nb",
                            "--out", str(tmp_path / "m.pdf")], capture_output=True, text=True, timeout=120)
    assert wrong.returncode != 0 and ".ipynb" in wrong.stderr and "Traceback" not in wrong.stderr


def test_truncation_timeouts_and_images_not_shown_are_stated(project, tmp_path):
    ws = project.workspace
    changed = artifact(ws, "changed.png", png(), "image/png")
    (ws / "changed.png").write_bytes(png(4, 4))  # overwritten after the run: not what it produced
    gone = artifact(ws, "gone.png", png(), "image/png")
    (ws / "gone.png").unlink()
    long_out = "".join(f"line {n}\n" for n in range(200))
    sid = "sess-notes"
    body = execution(sid, "ex-long", "for n in range(200): print(f'line {n}')", long_out, 0, 1,
                     artifacts=[changed, gone])
    capped = execution(sid, "ex-cap", "print('x' * 10**9)", "xxxx", None, 2, timed_out=True,
                       stdout={"total_bytes": 10**9, "kept_bytes": 4, "sha256": "a" * 64, "truncated": True})
    append(project, [ev(sid, "session.started", {"trigger": "user:alice"}, 0, "user:alice"), *body, *capped])
    out = tmp_path / "notes.ipynb"
    export_notebook(project, out, sid)
    nb = nbformat.read(str(out), as_version=4)
    nbformat.validate(nb)
    long_cell, cap_cell = [c for c in nb.cells if c.cell_type == "code"]
    note = long_cell.outputs[-1].data["text/plain"]
    assert "stdout: the notebook shows the first 60 lines" in note and f"of {len(long_out):,} in the log" in note
    assert "image changed.png not shown: the file in workspace/ has changed since" in note
    assert "image gone.png not shown: the file is no longer in workspace/" in note
    assert not [o for o in long_cell.outputs if "image/png" in o.get("data", {})]
    note = cap_cell.outputs[-1].data["text/plain"]
    assert "timed out" in note and "the sandbox kept the first" in note and "a" * 64 in note
    assert cap_cell.metadata.workbench.timed_out is True


def test_a_timeline_item_the_exporter_does_not_know_is_named_not_a_crash():
    from dataclasses import dataclass

    import nbformat.v4 as nbf

    from workbench.report.notebook import item_cell

    @dataclass
    class EnvironmentRecorded:  # what a newer collector might add to a session's timeline
        time: datetime

    cell = item_cell(nbf, EnvironmentRecorded(T0), [(7, "ab" * 32)])
    assert "EnvironmentRecorded" in cell.source and cell.metadata.workbench.entries == [{"seq": 7, "hash": "ab" * 32}]
    nbformat.validate(nbf.new_notebook(cells=[cell]))

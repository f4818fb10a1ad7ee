"""Attack tests: what code leaves in the workspace never makes the host read, write, list or hang on a host file.

Each trap is planted from inside a real sandbox execution (a symlink to a host file holding a secret, a
symlinked folder, a planted `.NAME.wb-tmp` symlink to a host victim file, a FIFO, a link to /dev/zero, a
sparse 8 GB file). Then the agent loop, driven by a scripted model, reads, writes and lists through its file
tools, and the test asserts: the secret is in no observation, no prompt, no event and no audit entry; the
victim file is unchanged; nothing hung (pytest-timeout); memory stayed bounded; each refusal is a one-line
observation and a `file.refused` event; and the next execution still works. The same for a report whose
artifact became a symlink, and for a memory folder holding a symlinked note (planted on the host, since
code cannot reach `.workbench/`: that is the received-project case).
"""

from __future__ import annotations

import json
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest

from tests.agent.fakes import ScriptedLLM
from tests.sandbox.conftest import make_settings, run, still_works

pytestmark = [pytest.mark.engine, pytest.mark.timeout(60)]

SECRET = "wb-host-secret-5d1c9e-do-not-leak"
VICTIM = "victim file, original content\n"
ACTOR = "agent:test/scripted"


def act(action: str, **fields) -> str:
    return json.dumps({"thought": "t", "action": action, **fields})


def give_up() -> str:
    return act("finish", answer="", success=False)


class Bench:
    """A real project with a recorded session (the audit log on disk) and its real sandbox."""

    def __init__(self, root: Path):
        from workbench.project import Project
        from workbench.session import WorkSession

        self.project = Project.init(root / "project")
        self.session = WorkSession.open(self.project, actor=ACTOR, settings=make_settings(timeout=30))
        self.events = []
        self.session.bus.subscribe(self.events.append)
        self.box = self.session.sandbox
        self.workspace = self.project.workspace

    def plant(self, script: str) -> None:
        """Run shell code in the sandbox (the attacker's step); it must succeed."""
        result, _ = run(self.box, "shell", script)
        assert result.ok, (result.exit_code, result.stderr.kept)

    def agent(self, replies: list[str], **kwargs):
        from workbench.agent.loop import AgentLoop, Policy

        llm = ScriptedLLM(replies)
        loop = AgentLoop(llm, self.box, emit=lambda kind, payload: self.session.emit(kind, payload),
                         workspace=self.workspace, policy=Policy(executions="auto", installs="auto"), **kwargs)
        return llm, loop

    def of(self, kind: str) -> list:
        return [e for e in self.events if e.kind == kind]

    def recorded(self) -> str:
        """Every event this session published and every entry of the audit log, as text."""
        from workbench.audit import AuditLog

        published = "\n".join(json.dumps(dict(e.payload), default=str) for e in self.events)
        log = AuditLog.open(self.project)
        try:
            logged = "\n".join(json.dumps(e.payload, default=str) for e in log.entries())
        finally:
            log.close()
        return published + "\n" + logged

    def close(self) -> None:
        self.session.close()


@pytest.fixture
def bench(engine_ready, tmp_path):
    made = Bench(tmp_path)
    yield made
    made.close()


@pytest.fixture
def host(tmp_path):
    """Host files the attack aims at: a secret, a folder holding one, a victim to overwrite."""
    secret = tmp_path / "host-secret.txt"
    secret.write_text(SECRET + "\n")
    folder = tmp_path / "host-folder"
    folder.mkdir()
    (folder / "inside-host-folder.txt").write_text(SECRET + "\n")
    victim = tmp_path / "host-victim.txt"
    victim.write_text(VICTIM)
    return {"secret": secret, "folder": folder, "victim": victim}


def no_leak(bench: Bench, llm: ScriptedLLM) -> None:
    assert SECRET not in json.dumps(llm.prompts)
    assert SECRET not in bench.recorded()


def host_untouched(host) -> None:
    assert host["secret"].read_text() == SECRET + "\n"
    assert host["victim"].read_text() == VICTIM
    assert sorted(p.name for p in host["folder"].iterdir()) == ["inside-host-folder.txt"]


# --- read_file ------------------------------------------------------------------------------------------
def test_read_file_never_follows_a_planted_symlink(bench, host):
    bench.plant(f"ln -s {host['secret']} leak.txt && mkdir -p out && ln -s {host['folder']} out/linked "
                "&& ln -s /dev/zero zero")
    llm, loop = bench.agent([act("read_file", path="leak.txt"), act("read_file", path="/workspace/leak.txt"),
                             act("read_file", path="out/linked/inside-host-folder.txt"),
                             act("read_file", path="zero"), give_up()])
    started = time.monotonic()
    loop.run("read the files")
    assert time.monotonic() - started < 20
    seen = llm.observations()
    assert f"leak.txt is a symlink to {host['secret']}: not followed" in seen[0]
    assert f"leak.txt is a symlink to {host['secret']}: not followed" in seen[1]
    assert f"out/linked is a symlink to {host['folder']}: not followed" in seen[2]
    assert "zero is a symlink to /dev/zero: not followed" in seen[3]
    for text in seen[:4]:
        body = text.split("\n", 1)[1]
        assert "\n" not in body.strip(), "a refusal is one line"
    refused = bench.of("file.refused")
    assert [e.payload["path"] for e in refused] == ["leak.txt", "leak.txt", "out/linked/inside-host-folder.txt",
                                                    "zero"]
    assert refused[0].payload["kind"] == "symlink" and refused[0].payload["target"] == str(host["secret"])
    assert all(e.payload["tool"] == "read_file" and "not followed" in e.payload["message"] for e in refused)
    no_leak(bench, llm)
    host_untouched(host)
    still_works(bench.box)


def test_read_file_of_a_fifo_says_what_it_is_and_does_not_hang(bench, host):
    bench.plant("mkfifo pipe && mkdir -p sub && mkfifo sub/pipe2")
    llm, loop = bench.agent([act("read_file", path="pipe"), act("read_file", path="sub/pipe2"), give_up()])
    started = time.monotonic()
    loop.run("read the pipe")
    assert time.monotonic() - started < 20  # an open of a FIFO with no writer would block for ever
    seen = llm.observations()
    assert "pipe is a FIFO: not opened" in seen[0] and "sub/pipe2 is a FIFO: not opened" in seen[1]
    assert [e.payload["kind"] for e in bench.of("file.refused")] == ["fifo", "fifo"]
    still_works(bench.box)


def test_read_file_of_a_sparse_8_gb_file_is_bounded(bench, host):
    bench.plant("truncate -s 8G big.bin && printf 'HEAD-OF-THE-BIG-FILE' | dd of=big.bin conv=notrunc 2>/dev/null")
    llm, loop = bench.agent([act("read_file", path="big.bin"), give_up()])
    tracemalloc.start()
    started = time.monotonic()
    try:
        loop.run("read the big file")
        elapsed = time.monotonic() - started
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 10
    assert peak < 16 * 1024 * 1024, f"read_file used {peak:,} bytes of host memory"
    seen = llm.observations()[0]
    assert seen.startswith("Observation (step 1):\nread_file big.bin (8,589,934,592 bytes; only the first 64 KB of "
                           "8 GB were read; first 6,000 characters shown)")
    assert "HEAD-OF-THE-BIG-FILE" in seen
    still_works(bench.box)


# --- write_file -----------------------------------------------------------------------------------------
def test_write_file_never_writes_through_a_planted_symlink(bench, host):
    victim = host["victim"]
    # The old temporary name, the name itself, and a folder on the way: each a symlink to the host.
    bench.plant(f"ln -s {victim} .notes.txt.wb-tmp && ln -s {victim} report.txt && ln -s {host['folder']} outdir")
    llm, loop = bench.agent([act("write_file", path="notes.txt", content="agent notes"),
                             act("write_file", path="report.txt", content="agent report"),
                             act("write_file", path="outdir/new.txt", content="agent new"),
                             act("write_file", path="outdir/inside-host-folder.txt", content="overwrite"),
                             give_up()])
    loop.run("write the files")
    seen = llm.observations()
    ws = bench.workspace
    assert "write_file notes.txt: wrote 11 bytes" in seen[0]
    assert (ws / "notes.txt").read_text() == "agent notes" and not (ws / "notes.txt").is_symlink()
    assert (ws / ".notes.txt.wb-tmp").is_symlink()  # left as it was: never opened, never written through
    assert (f"write_file report.txt: wrote 12 bytes (report.txt is a symlink to {victim}: replaced by a regular "
            "file, not followed)") in seen[1]
    assert (ws / "report.txt").read_text() == "agent report" and not (ws / "report.txt").is_symlink()
    assert f"outdir is a symlink to {host['folder']}: not followed" in seen[2]
    assert f"outdir is a symlink to {host['folder']}: not followed" in seen[3]
    changed = {e.payload["path"]: e.payload for e in bench.of("file.changed") if e.payload.get("by") == "agent.write_file"}
    assert set(changed) == {"notes.txt", "report.txt"}
    assert changed["report.txt"]["replaced"] == f"report.txt is a symlink to {victim}"
    refused = bench.of("file.refused")
    assert [(e.payload["tool"], e.payload["path"]) for e in refused] == [
        ("write_file", "outdir/new.txt"), ("write_file", "outdir/inside-host-folder.txt")]
    host_untouched(host)
    no_leak(bench, llm)
    still_works(bench.box)
    result, _ = run(bench.box, "shell", "cat notes.txt report.txt")
    assert result.stdout.kept == b"agent notesagent report"  # the code sees what the agent wrote


# --- listing --------------------------------------------------------------------------------------------
def test_listing_shows_symlinks_as_links_and_never_enters_them(bench, host):
    bench.plant(f"mkdir -p data && echo 1 > data/a.csv && ln -s {host['folder']} data/elsewhere && "
                f"ln -s {host['secret']} key && mkfifo pipe && "
                "mkdir many && cd many && for i in $(seq 1 400); do : > f$i; done")
    llm, loop = bench.agent([act("read_file", path="."), act("read_file", path="data"),
                             act("read_file", path="missing.txt"), give_up()])
    started = time.monotonic()
    loop.run("list")
    assert time.monotonic() - started < 20
    top, data, missing = llm.observations()[:3]
    assert f"data/elsewhere -> {host['folder']}" in top and f"key -> {host['secret']}" in top
    assert "pipe (a FIFO)" in top and "data/a.csv" in top
    assert "possibly others (the listing stops after 200 entries)" in top  # bounded: 400 files in many/
    assert data.startswith("Observation (step 2):\nfiles in /workspace/data: data/a.csv, "
                           f"data/elsewhere -> {host['folder']}")
    assert "no such file" in missing
    assert not any("inside-host-folder" in text for text in llm.observations())  # never entered
    no_leak(bench, llm)
    host_untouched(host)
    still_works(bench.box)


# --- the report -----------------------------------------------------------------------------------------
def png(width: int = 24, height: int = 16) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes([(y * 8) % 256, 90, 160]) * width for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_report_does_not_embed_an_artifact_that_became_a_symlink(bench, host, tmp_path):
    from pypdf import PdfReader

    from workbench.report import render_report

    picture = png()
    # The host copy holds the very bytes the log recorded: following the link would pass the digest check.
    host_png = tmp_path / "host-picture.png"
    host_png.write_bytes(picture)
    result, _ = run(bench.box, "python", f"open('plot.png', 'wb').write({picture!r})")
    assert result.ok and [a.path for a in result.artifacts] == ["plot.png"]
    bench.plant(f"rm plot.png && ln -s {host_png} plot.png")
    still_works(bench.box)
    bench.close()
    out = tmp_path / "report.pdf"
    started = time.monotonic()
    render_report(bench.project, out)
    assert time.monotonic() - started < 40
    reader = PdfReader(str(out))
    assert sum(len(page.images) for page in reader.pages) == 0
    text = "".join("".join(page.extract_text() or "" for page in reader.pages).split())  # long lines wrap
    reason = f"image not shown: in workspace/, plot.png is a symlink to {host_png}: not followed, not embedded"
    assert "".join(reason.split()) in text


# --- memory notes ---------------------------------------------------------------------------------------
def test_memory_ignores_a_symlinked_note_and_a_fifo_note(bench, host):
    import os

    from workbench.memory import MemoryStore

    memory = bench.project.memory_dir
    memory.mkdir(parents=True, exist_ok=True)
    (memory / "revenue-password.md").symlink_to(host["secret"])
    os.mkfifo(memory / "revenue-pipe.md")
    (memory / "revenue-real.md").write_text("---\ntitle: Revenue file\n---\n\nThe revenue CSV uses semicolons.\n")
    store = MemoryStore.for_session(bench.session, embedder=None)
    try:
        assert [n.id for n in store.list()] == ["revenue-real"]
        llm, loop = bench.agent([act("search_memory", query="revenue password secret"), give_up()], memory=store)
        started = time.monotonic()
        outcome = loop.run("find the revenue password")
        assert time.monotonic() - started < 20
        assert "revenue-real" in llm.observations()[0]
        assert outcome.note_id is not None and (memory / f"{outcome.note_id}.md").is_file()  # memory still writes
    finally:
        store.close()
    ignored = bench.of("memory.ignored")
    assert sorted((e.payload["file"], e.payload["kind"]) for e in ignored) == [
        (".workbench/memory/revenue-password.md", "symlink"), (".workbench/memory/revenue-pipe.md", "fifo")]
    assert ignored[0].payload["message"].startswith("memory note revenue-p")
    assert (memory / "revenue-password.md").is_symlink()  # left alone, neither read nor replaced
    no_leak(bench, llm)
    host_untouched(host)
    still_works(bench.box)

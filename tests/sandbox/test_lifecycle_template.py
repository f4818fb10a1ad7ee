"""The execution lifecycle on its own (`workbench.sandbox.lifecycle.Execution`), without a container engine.

A real `Sandbox` over `FakeEngine` (nothing is executed through it) and a scripted transport: what the
template does with what any transport reports (events, notes, the file diff, the disk guard, the watchdog,
cancel, a launch that fails). That the two real transports agree is tested against the engine in
tests/sandbox/test_sessions.py (`test_one_off_and_warm_runs_note_the_same`).
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.sandbox.conftest import Recorder, make_settings
from workbench.sandbox.lifecycle import Ended, Execution, ExitFacts, Request, Transport

CLEAN_EXIT = ExitFacts(exit_code=0)


class Scripted(Transport):
    """Yields `chunks`, runs `during` (e.g. writes workspace files) while streaming, then ends with `facts`."""

    def __init__(self, chunks=(), facts=CLEAN_EXIT, during=None, fail_launch=None,
                 block=False, backstop=30.0):
        self.chunks, self.facts, self.during, self.fail_launch = list(chunks), facts, during, fail_launch
        self.block, self.limit = block, backstop
        self.calls: list[str] = []
        self.woken = threading.Event()

    def prepare(self):
        self.calls.append("prepare")

    def launch(self):
        self.calls.append("launch")
        if self.fail_launch is not None:
            raise self.fail_launch

    def stream(self):
        if self.during is not None:
            self.during()
        yield from self.chunks
        if self.block:
            self.woken.wait(30)

    def exit_facts(self):
        return self.facts

    def release(self):
        self.calls.append("release")

    def backstop(self):
        return self.limit

    def overdue(self):
        self.calls.append("overdue")
        self.woken.set()

    def cancel(self, live):
        self.calls.append("cancel")
        self.woken.set()

    def disk_low(self, live):
        self.calls.append("disk_low")
        self.woken.set()


@pytest.fixture
def box(project):
    from workbench.sandbox import BASE_IMAGE, Sandbox
    from workbench.sandbox.fake_engine import FakeEngine

    recorder = Recorder()
    sandbox = Sandbox.open(project, bus=recorder.bus, engine=FakeEngine(images=[BASE_IMAGE]),
                           settings=make_settings(workspace_quota="64k"), session_id="s", actor="user:t")
    sandbox.recorder = recorder
    yield sandbox
    sandbox.close()


def execute(box, transport, session=None, timeout=5.0):
    from workbench import languages

    request = Request(f"x{time.monotonic_ns()}", languages.get("python"), "print(1)", timeout, session)
    return Execution(box, request, transport).start()


def test_events_frame_the_execution_and_the_output_is_recorded(box):
    transport = Scripted(chunks=[("stdout", b"one\n"), ("stderr", b"two\n")], facts=ExitFacts(exit_code=3))
    live = execute(box, transport)
    chunks = list(live)
    result = live.result()
    assert [(c.stream, c.data) for c in chunks] == [("stdout", b"one\n"), ("stderr", b"two\n")]
    assert result.exit_code == 3 and result.stdout.kept == b"one\n" and result.stderr.kept == b"two\n"
    kinds = [e.kind for e in box.recorder.events if e.payload.get("execution_id") == result.execution_id]
    assert kinds[0] == "exec.started" and kinds[-1] == "exec.finished" and "exec.output" in kinds
    assert box.recorder.of("exec.finished", result.execution_id)[0].payload == result.to_payload()
    assert box.recorder.of("exec.started", result.execution_id)[0].payload["session"] is None
    assert transport.calls == ["prepare", "launch", "release"]


def test_notes_come_from_the_facts_and_the_session_notes_only_for_sessions(box):
    facts = ExitFacts(exit_code=137, timed_out=True, killed_by="timeout", state_lost=True, background_killed=2)
    one_off = execute(box, Scripted(facts=facts)).result()
    warm = execute(box, Scripted(facts=facts), session="w1").result()
    assert one_off.timed_out and one_off.killed_by == "timeout" and not one_off.session
    assert "stopped after the 5 s timeout" in one_off.notes
    assert "killed 2 background processes the cell left running" in " ".join(one_off.notes)
    assert not any("restarted" in note or "state was kept" in note for note in one_off.notes)
    assert "session 'w1' was restarted: its variables are gone" in warm.notes
    assert warm.notes[0] == one_off.notes[0]  # limits not enforced (FakeEngine, like rootless cgroup v1)
    oom = execute(box, Scripted(facts=ExitFacts(exit_code=137, killed_by="oom"))).result()
    assert any(note.startswith("killed: out of memory") for note in oom.notes)


def test_files_written_during_the_run_are_diffed_and_the_quota_noted_for_any_transport(box):
    workspace = box.project.workspace

    def write(name):
        return lambda: [(workspace / f"{name}-{i}.bin").write_bytes(b"x" * 40_000) for i in range(2)]

    results = [execute(box, Scripted(during=write("one"))).result(),
               execute(box, Scripted(during=write("warm")), session="w2").result()]
    for result in results:
        assert len(result.files) == 2 and all(f.change == "created" for f in result.files)
        assert "the workspace is over its quota of 64k" in result.notes
    assert results[0].notes == results[1].notes


def test_a_launch_that_fails_ends_the_execution_with_its_line(box):
    transport = Scripted(fail_launch=Ended(ExitFacts(error="the engine refused the execution: no")))
    result = execute(box, transport).result()
    assert result.exit_code is None and "the engine refused the execution: no" in result.notes
    assert transport.calls == ["prepare", "launch", "release"]
    broken = Scripted(fail_launch=RuntimeError("surprise"))
    result = execute(box, broken).result()
    assert any("could not start: surprise" in note for note in result.notes) and broken.calls[-1] == "release"
    assert len(box.recorder.of("exec.finished", result.execution_id)) == 1


def test_the_watchdog_calls_overdue_past_the_backstop(box):
    transport = Scripted(block=True, backstop=0.3, facts=ExitFacts(exit_code=137, killed_by="timeout"))
    started = time.monotonic()
    result = execute(box, transport).result()
    assert "overdue" in transport.calls and 0.25 < time.monotonic() - started < 10
    assert result.killed_by == "timeout"


def test_cancel_goes_to_the_transport(box):
    transport = Scripted(chunks=[("stdout", b"go\n")], block=True, facts=ExitFacts(exit_code=130, killed_by="user"))
    live = execute(box, transport)
    for chunk in live:
        if b"go" in chunk.data:
            live.cancel()
    assert live.result().killed_by == "user" and "cancel" in transport.calls


def test_the_disk_floor_stops_any_transport_and_says_why(project):
    from workbench.sandbox import BASE_IMAGE, Sandbox
    from workbench.sandbox.fake_engine import FakeEngine

    with Sandbox.open(project, engine=FakeEngine(images=[BASE_IMAGE]),
                      settings=make_settings(disk_floor="1000000t")) as box:
        for session in (None, "w3"):
            transport = Scripted(block=True, facts=ExitFacts(exit_code=137))
            result = execute(box, transport, session=session).result()
            assert "disk_low" in transport.calls and result.killed_by == "disk"
            assert any("disk_floor" in note for note in result.notes)

"""Collecting the report model from entries: odd logs never crash it, output is reassembled faithfully."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from workbench.report import model


@dataclass
class Entry:
    seq: int
    kind: str
    payload: Any = field(default_factory=dict)
    session_id: str = "s1"
    actor: str = "agent:wb/tiny-model"
    user: str = "user:alice"
    hash: str = "ab" * 32
    time: datetime = datetime(2025, 1, 1, tzinfo=UTC)


def entries(*specs):
    return [Entry(i, kind, payload, time=datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=i))
            for i, (kind, payload) in enumerate(specs)]


def test_execution_is_assembled_from_started_output_and_finished():
    m = model.collect(entries(
        ("session.started", {"trigger": "user:alice", "workbench_version": "0.1.0"}),
        ("exec.started", {"execution_id": "e1", "language": "python", "code": "print(1)",
                          "limits": {"memory": "2g"}}),
        ("exec.output", {"execution_id": "e1", "stream": "stdout", "text": "hel"}),
        ("exec.output", {"execution_id": "e1", "stream": "stdout", "text": "lo\n"}),
        ("exec.output", {"execution_id": "e1", "stream": "stderr", "text": "warn\n"}),
        ("exec.finished", {"execution_id": "e1", "exit_code": 4, "duration": 0.5,
                           "stdout": {"total_bytes": 6, "sha256": "f" * 64, "truncated": False, "kept_bytes": 6},
                           "files": [{"path": "out.csv", "change": "created", "sha256": "c" * 64, "size": 3}]}),
        ("session.finished", {"outcome": "finished"}),
    ))
    assert len(m.sessions) == 1 and m.sessions[0].trigger == "user:alice"
    (ex,) = m.executions
    assert ex.code == "print(1)" and ex.language == "python" and ex.exit_code == 4 and not ex.ok
    assert ex.stdout.text == "hello\n" and ex.stderr.text == "warn\n"
    assert ex.stdout.sha256 == "f" * 64
    assert ex.files[0].sha256 == "c" * 64 and "out.csv" in m.files
    assert m.models == ["tiny-model"]
    assert m.by_language["python"].failed == 1
    assert [s for s, _ in ex.entry_hashes] == [1, 2, 3, 4, 5]


def test_unknown_kinds_and_broken_payloads_do_not_crash():
    m = model.collect(entries(
        ("plugin.weird", {"x": 1}),
        ("exec.finished", {"execution_id": 5, "exit_code": "not a number", "duration": "NaN",
                           "stdout": "oops", "files": ["not an object", {"path": None}], "artifacts": None,
                           "notes": "one note"}),
        ("exec.output", {"stream": "stdout", "text": {"$bytes": "/w=="}}),  # no execution id, odd bytes
        ("exec.started", "not even a dict"),
        ("error", {}),
        ("package.installed", {"name": ["x"]}),
        ("task.finished", {"ok": "maybe"}),
        ("session.started", {"trigger": 42}),
        ("llm.action", {"model": "m2"}),
        ("", {}),
    ))
    assert m.unknown_kinds["plugin.weird"] == 1
    assert len(m.executions) == 3
    broken = m.executions[0]
    assert broken.exit_code is None and broken.duration is None and broken.notes == ["one note"]
    assert broken.files[0].path == "(no path)"
    assert m.executions[1].stdout.text == "\\xff"  # odd bytes are shown escaped, not dropped
    assert m.errors[0].message == "(no message)"
    assert m.sessions[0].trigger == "42"
    assert "m2" in m.models


def test_long_output_is_excerpted_and_the_rest_counted():
    text = "".join(f"line {i}\n" for i in range(500))
    m = model.collect(entries(
        ("exec.started", {"execution_id": "e", "language": "python", "code": "x"}),
        *[("exec.output", {"execution_id": "e", "stream": "stdout", "text": text[i:i + 100]})
          for i in range(0, len(text), 100)],
    ))
    out = m.executions[0].stdout
    assert out.cut
    assert out.shown_lines == model.EXCERPT_LINES
    assert out.text == "".join(f"line {i}\n" for i in range(model.EXCERPT_LINES))
    assert out.logged_chars == len(text)
    assert not m.executions[0].finished and m.executions[0].outcome == "no result recorded"


def test_a_single_huge_line_is_cut_by_characters():
    m = model.collect(entries(("exec.output", {"execution_id": "e", "stream": "stderr", "text": "x" * 50_000})))
    err = m.executions[0].stderr
    assert err.cut and err.shown_chars == model.EXCERPT_CHARS and err.logged_chars == 50_000


def test_heartbeat_session_details():
    m = model.collect(entries(("session.started", {"trigger": "heartbeat:nightly", "schedule": "nightly",
                                                   "cron": "0 2 * * *", "extra": "kept"})))
    s = m.sessions[0]
    assert (s.schedule, s.cron, s.details) == ("nightly", "0 2 * * *", {"extra": "kept"})

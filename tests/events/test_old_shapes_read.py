"""Logs written before the event contract (and by its first shapes) read the same through it.

The report and the TUI decode every payload through `workbench.events`; these entries hold the older
field names and shapes that logs in the field still carry, and what a reader shows of them must not change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from workbench import events
from workbench.report.model import AgentStep, ErrorNote, TaskNote, collect
from workbench.tui.services import summarize_payload

T0 = datetime(2025, 1, 2, 9, 0, tzinfo=UTC)


@dataclass
class Entry:
    seq: int
    kind: str
    payload: dict[str, Any] = field(default_factory=dict)
    time: datetime = T0
    session_id: str = "old1"
    actor: str = "agent:workbench/old-model"
    user: str = "user:alice"
    hash: str = "0" * 64


OLD_LOG = [
    Entry(0, "session.started", {"trigger": "user:alice", "workbench_version": "0.1"}),
    Entry(1, "task.started", {"goal": "count the rows"}),
    Entry(2, "llm.action", {"model": "old-model", "thought": "run it", "action": "execute", "language": "python"}),
    Entry(3, "exec.started", {"execution_id": "e1", "language": "python", "code": "print(3)"}),  # no session, limits
    Entry(4, "exec.output", {"execution_id": "e1", "stream": "stdout", "data": "3\n"}),  # `data`, not `text`
    Entry(5, "exec.finished", {"execution_id": "e1", "exit_code": 0, "duration": 0.5}),
    Entry(6, "error", {"error": "the model's answer was not valid JSON", "source": "agent"}),
    Entry(7, "task.finished", {"outcome": "done", "ok": True, "summary": "3 rows"}),
    Entry(8, "session.finished", {"outcome": "finished"}),
]


def test_the_report_reads_an_old_log_through_the_contract():
    model = collect(OLD_LOG)
    [run] = model.executions
    assert (run.language, run.code, run.exit_code, run.duration) == ("python", "print(3)", 0, 0.5)
    assert run.stdout.text == "3\n" and run.limits == {} and run.warm_session == ""
    assert "old-model" in model.models
    items = model.sessions[0].items
    assert [i.text for i in items if isinstance(i, TaskNote)] == ["count the rows", "done; succeeded: 3 rows"]
    assert [(s.action, s.thought) for s in items if isinstance(s, AgentStep)] == [("execute", "run it")]
    assert [e.message for e in items if isinstance(e, ErrorNote)] == ["agent: the model's answer was not valid JSON"]
    assert not model.unknown_kinds


def test_old_payloads_decode_to_their_version_and_the_audit_table_summarises_them():
    started, output = OLD_LOG[3].payload, OLD_LOG[4].payload
    assert events.ExecStarted.version_of(started) == 1 and events.ExecOutput.version_of(output) == 0
    assert summarize_payload("exec.started", started) == "python: print(3)"
    assert summarize_payload("exec.finished", OLD_LOG[5].payload) == "exit 0 in 0.50s"
    assert events.ExecOutput.decode(output).data == "3\n"

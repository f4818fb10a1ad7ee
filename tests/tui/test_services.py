"""The real `Services` reads of the audit log the TUI polls: the log's size, the tail, other processes' runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from workbench.audit import AuditLog
from workbench.events import Event
from workbench.tui.services import Services

APPEND = textwrap.dedent("""
    import sys
    from workbench.audit import AuditLog
    from workbench.events import Event
    from workbench.project import Project
    with AuditLog.open(Project.open(sys.argv[1])) as log:
        log.append(Event("exec.started", "svc0001", "heartbeat:nightly", {"execution_id": "e1"}))
        log.append(Event("exec.output", "svc0001", "heartbeat:nightly", {"execution_id": "e1", "text": "hi\\n"}))
        log.append(Event("exec.started", "cli0001", "user:someone", {"execution_id": "e2"}))
""")


def test_events_appended_by_another_process_are_read_from_where_we_left_off(project):
    services = Services()
    with AuditLog.open(project) as log:
        for i in range(5):
            log.append(Event("llm.action", "mine001", "agent:test", {"i": i}))
    start = services.audit_size(project)
    assert start == 5
    done = subprocess.run([sys.executable, "-c", APPEND, str(project.root)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    size, found = services.audit_events_from(project, start, actor_prefix="heartbeat:")
    assert size == 8 and services.audit_size(project) == 8
    assert [(e.kind, e.session_id) for e in found] == [("exec.started", "svc0001"), ("exec.output", "svc0001")]
    assert found[1].payload["text"] == "hi\n"
    assert services.audit_events_from(project, size, actor_prefix="heartbeat:") == (8, [])
    summary = services.audit_summary(project, recent=2)
    assert summary.entries == 8 and [row.seq for row in summary.recent] == [6, 7]

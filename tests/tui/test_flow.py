"""Responsiveness under an output flood, the file panel following the workspace, sessions that persist."""

from __future__ import annotations

import statistics

from workbench.config import Settings
from workbench.tui.widgets.output_panel import MAX_LINES, OutputPanel
from workbench.tui.widgets.steps_panel import StepCard, StepsPanel
from workbench.tui.widgets.task_input import TaskInput

from .conftest import SIZE, aio, settle
from .fakes import GOOD_REPORT, FakeServices, flood, key_latencies

MB = 1024 * 1024


@aio
async def test_keys_answered_within_100ms_while_100mb_stream(make):
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen.session is not None)
        output = app.screen.query_one(OutputPanel)
        await pilot.pause(0.3)  # let startup finish (the first frame, the file tree, the audit view)
        producer = flood(app.screen.session)
        latencies = []
        while producer.is_alive():
            latencies += await key_latencies(app, 5)
        await settle(pilot, lambda: any("exit 0" in line for line in output.lines))
        assert len(latencies) >= 50, "the flood ended before enough keys could be measured"
        latencies.sort()
        p95 = latencies[int(len(latencies) * 0.95)]
        summary = f"median {statistics.median(latencies) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, " \
                  f"slowest {latencies[-1] * 1000:.0f} ms over {len(latencies)} keys"
        assert p95 < 0.1, summary
        assert latencies[-1] < 0.2, summary
        assert output.line_count <= MAX_LINES
        assert output.total_bytes >= 100 * MB


@aio
async def test_file_panel_follows_a_file_created_by_code(make, demo):
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen.session is not None)
        tree = app.screen.query_one("#files-tree")
        await pilot.pause(0.3)  # the watcher starts on a thread
        app.screen.execute("python", "import os\nos.makedirs('out', exist_ok=True)\n"
                                     "open('table.csv', 'w').write('name,value\\nalpha,1\\nbeta,2\\n')\n")
        await settle(pilot, lambda: {"table.csv", "out"} <= {str(n.label) for n in tree.root.children})
        node = next(n for n in tree.root.children if str(n.label) == "table.csv")
        tree.move_cursor(node)
        tree.select_node(node)
        table = app.screen.query_one("#preview-table")
        await settle(pilot, lambda: table.row_count == 2)
        assert [str(c.label) for c in table.columns.values()] == ["name", "value"]
        (demo.workspace / "table.csv").unlink()  # changes made outside the sandbox show up too
        await settle(pilot, lambda: "table.csv" not in {str(n.label) for n in tree.root.children})


class RealAuditServices(FakeServices):
    """The real WorkSession and audit log (no engine needed: the test publishes the events)."""

    def open_session(self, project, settings):
        from workbench.session import WorkSession

        return WorkSession.open(project, settings=settings, trigger="tui")

    def audit_summary(self, project, session=None, verify=False, recent=60):
        return Services_audit_summary(self, project, session, verify, recent)

    def session_events(self, project, session_id, session=None):
        from workbench.tui.services import Services

        return Services.session_events(self, project, session_id, session)


def Services_audit_summary(self, project, session, verify, recent):  # noqa: N802 - the base method
    from workbench.tui.services import Services

    return Services.audit_summary(self, project, session, verify, recent)


@aio
async def test_reopening_shows_previous_sessions_and_their_steps(demo):
    from workbench.tui.app import make_app

    first = make_app(demo, services=RealAuditServices(report=GOOD_REPORT), settings=Settings(),
                     persist_theme=False)
    async with first.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: first.screen.session is not None)
        session = first.screen.session
        old_id = session.session_id
        session.emit("task.started", {"task": "count the rows"})
        session.emit("exec.started", {"execution_id": "e1", "language": "python", "code": "print(3)"})
        session.emit("exec.output", {"execution_id": "e1", "stream": "stdout", "text": "3\n"})
        session.emit("exec.finished", {"execution_id": "e1", "exit_code": 0, "duration": 0.5})
        session.emit("task.finished", {"success": True, "reason": "finished", "answer": "3 rows"})
        await settle(pilot, lambda: len(first.screen.query_one(StepsPanel).query(StepCard)) == 3)
        await first.action_quit()

    second = make_app(demo, services=RealAuditServices(report=GOOD_REPORT), settings=Settings(),
                      persist_theme=False)
    async with second.run_test(size=SIZE) as pilot:
        steps = second.screen.query_one(StepsPanel)
        await settle(pilot, lambda: len(steps.query(StepCard)) == 3)
        assert old_id in steps.border_title
        titles = [c.title for c in steps.query(StepCard)]
        assert titles[0] == "Task · count the rows" and titles[-1].startswith("✔ Done")
        sessions = second.screen.query_one("#audit-sessions")
        assert sessions.option_count == 2
        assert "count the rows" in second.screen.query_one(TaskInput).history

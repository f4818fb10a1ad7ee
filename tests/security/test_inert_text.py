"""Inert text everywhere: Rich markup and terminal escapes that the sandbox controls are shown, never
interpreted, on every surface Workbench draws: the TUI's widgets, the CLI's own lines and the PDF.

One corpus is fed through each surface. Each test checks three things:
  * nothing is interpreted: no action runs (the app is still running after a click on the planted text),
    nothing crashes (`[/x]` raised a MarkupError in DataTable), no link or title sequence is emitted;
  * nothing raw reaches the terminal: what the TUI would write for the screen (Textual's compositor output,
    its own SGR and cursor moves included) holds none of the planted sequences, and the CLI's output none;
  * the visible text shows them made visible: the literal `\\x1b]0;...` text, `[@click=app.quit]` as typed.

The file-name trap is planted by code in a real sandbox (marked `engine`) and shown in the tree, the Steps
pane, `workbench run`'s "files changed" line. The other surfaces are fed through the same events and
services the real ones produce (a session's bus, a schedule store, the audit log), with fakes only where
the value comes from (a package name an install reported, a warm session a runner listed).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from rich.console import Console

from tests.tui.conftest import aio, settle
from tests.tui.fakes import FakeServices
from workbench.config import Settings
from workbench.events import Event
from workbench.inert import is_inert, one_line, visible

CORPUS = (
    "[@click=app.quit]click[/]",
    "[/x]",
    "[bold]bold[/bold]",
    "[link=file:///etc/passwd]link[/link]",
    "\x1b]0;pwned-title\x07",  # OSC 0: retitles the window
    "\x1b]8;;file:///etc/passwd\x1b\\osc8\x1b]8;;\x1b\\",  # OSC 8: a hyperlink
    "\x1b]52;c;cHduZWQ=\x07",  # OSC 52: writes the clipboard
    "\x1b[2J",  # CSI: clears the screen
    "bare\x1besc",
    "c1\x9b31m",  # C1 CSI
    "bel\x07bel",
    "\u202eexe.txt",  # bidi override: shows as "txt.exe"
)
# What must never reach a terminal or a reader. Textual's own output uses CSI sequences (\x1b[...m, cursor
# moves) but none of these.
RAW = ("\x1b]0;", "\x1b]8;", "\x1b]52;", "\x1b[2J", "\x1besc", "\x9b", "\x07", "\u202e")
# File names cannot hold "/": the same traps, with the link and OSC 8 targets without slashes.
FILE_NAMES = (
    "[@click=app.quit]click.txt",
    "[bold]bold.txt",
    "[link=file:etc-passwd]link.txt",
    "\x1b]0;pwned-title\x07.txt",
    "\x1b]8;;file:etc-passwd\x1b\\osc8.txt",
    "\x1b]52;c;cHduZWQ=\x07.txt",
    "\x1b[2J.txt",
    "bare\x1besc.txt",
    "c1\x9b31m.txt",
    "bel\x07.txt",
    "\u202etxt.exe",
    "new\nline.txt",
)


def terminal(app) -> str:
    """What the app would write to the terminal to draw its current screen."""
    return app.screen._compositor.render_full_update().render_segments(app.console)


def assert_nothing_raw(text: str, where: str) -> None:
    found = [marker for marker in RAW if marker in text]
    assert not found, f"{where}: raw {found!r} would reach the terminal"


def rendered(renderable, width: int = 400) -> str:
    """A Rich renderable as the characters it would print (control characters kept as they are)."""
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None, legacy_windows=False)
    console.print(renderable)
    return console.export_text()


def shows_visible(text: str, items=CORPUS) -> list[str]:
    """The corpus items whose visible form is missing from `text`."""
    return [item for item in items if one_line(item) not in text]


def write_files_code(names) -> str:
    return ("import json\nfor name in json.loads(" + json.dumps(json.dumps(list(names))) + "):\n"
            "    open('/workspace/' + name, 'w').write('x')\n")


def csv_text(rows) -> str:
    handle = io.StringIO()
    csv.writer(handle, quoting=csv.QUOTE_ALL).writerows(rows)
    return handle.getvalue()


CSV_TEXT = csv_text([CORPUS, CORPUS, tuple(reversed(CORPUS))])  # the header is the corpus too


# --- the TUI, with the real sandbox: file names planted by code ------------------------------------------

@pytest.mark.engine
@pytest.mark.timeout(420)
@aio
async def test_file_names_from_a_real_sandbox_are_inert_in_the_tree_and_the_steps(engine_ready, demo):
    from tests.agent.fakes import ScriptedLLM
    from workbench.tui.app import make_app
    from workbench.tui.services import Services
    from workbench.tui.widgets.steps_panel import StepCard

    first, second = FILE_NAMES[:6], FILE_NAMES[6:]
    script = [json.dumps({"thought": "plant names", "action": "run_code", "language": "python",
                          "code": write_files_code(names)}) for names in (first, second)]
    script.append(json.dumps({"thought": "done", "action": "finish", "answer": "planted", "success": True}))
    services = Services(open_llm=lambda settings, on_status: ScriptedLLM(list(script)))
    app = make_app(demo, services=services, settings=Settings(), persist_theme=False)
    async with app.run_test(size=(220, 60)) as pilot:
        await settle(pilot, lambda: app.screen.session is not None, timeout=60)
        await pilot.press(*"plant the names", "enter")
        await settle(pilot, lambda: any(c.title.startswith(("✔ Done", "✘ Ended")) for c in app.screen.query(StepCard)),
                     timeout=300)
        for name in FILE_NAMES:  # planted by the sandbox, on the host disk as named
            assert (demo.workspace / name).is_file()
        tree = app.screen.query_one("#files-tree")
        await settle(pilot, lambda: len(tree.root.children) >= len(FILE_NAMES), timeout=30)
        labels = {node.label.plain for node in tree.root.children}
        assert not shows_visible("\n".join(labels), FILE_NAMES), labels
        assert all(is_inert(label) for label in labels), labels

        runs = [c for c in app.screen.query(StepCard) if c.title.startswith("Run python code")]
        assert len(runs) == 2
        for card, names in zip(runs, (first, second), strict=True):
            assert "files:" in card.result
            text = rendered(card._renderable())
            assert_nothing_raw(text, "the Steps card")
            assert not shows_visible(text, names), text
        await pilot.pause(0.3)
        assert_nothing_raw(terminal(app), "the main screen")

        # Clicking the planted `[@click=app.quit]` name runs nothing; selecting it previews the file.
        node = next(n for n in tree.root.children if n.label.plain.startswith("[@click=app.quit]"))
        tree.scroll_to(0, 0, animate=False)
        await pilot.pause(0.1)
        await pilot.click("#files-tree", offset=(6, node.line))
        await pilot.pause(0.3)
        assert app.is_running
        tree.select_node(node)
        preview = app.screen.query_one("#preview-text")
        await settle(pilot, lambda: str(preview.render()) == "x", timeout=10)
        assert_nothing_raw(terminal(app), "the main screen with a preview")
        await app.action_quit()


# --- the TUI, fed the sandbox's values through the real paths ---------------------------------------------

@aio
async def test_csv_cells_and_headers_are_plain_text_and_a_click_runs_nothing(make, demo):
    (demo.workspace / "trap.csv").write_text(CSV_TEXT)
    app = make()
    async with app.run_test(size=(220, 60)) as pilot:
        await settle(pilot, lambda: app.screen.session is not None)
        tree = app.screen.query_one("#files-tree")
        await settle(pilot, lambda: any(n.label.plain == "trap.csv" for n in tree.root.children))
        tree.select_node(next(n for n in tree.root.children if n.label.plain == "trap.csv"))
        table = app.screen.query_one("#preview-table")
        await settle(pilot, lambda: table.row_count == 2)  # `[/x]` in a header no longer crashes the app
        headers = [column.label.plain for column in table.columns.values()]
        assert headers == [one_line(c) for c in CORPUS]
        cells = [cell.plain for cell in table.get_row_at(0)]
        assert cells == [one_line(c) for c in CORPUS]
        assert "[@click=app.quit]click[/]" in headers  # the markup, as the file has it
        await settle(pilot, lambda: table.region.width > 10 and table.region.y > 0)  # laid out, on screen
        for offset in ((3, 0), (3, 1)):  # the header, then the first cell: both hold `[@click=app.quit]`
            await pilot.click("#preview-table", offset=offset)
            await pilot.pause(0.2)
            assert app.is_running, f"a click at {offset} ran the planted action"
        assert_nothing_raw(terminal(app), "the CSV preview")
        await app.action_quit()


@aio
async def test_text_preview_and_output_pane_show_escapes_made_visible(make, demo):
    from workbench import events
    from workbench.tui.widgets.output_panel import OutputPanel

    (demo.workspace / "corpus.txt").write_text("\n".join(CORPUS) + "\n")
    app = make()
    async with app.run_test(size=(220, 60)) as pilot:
        await settle(pilot, lambda: app.screen.session is not None)
        session = app.screen.session
        session.emit(events.EXEC_STARTED, {"execution_id": "e1", "language": "python", "code": "x"})
        for stream in ("stdout", "stderr"):
            session.emit(events.EXEC_OUTPUT, {"execution_id": "e1", "stream": stream,
                                              "text": "\n".join(CORPUS) + "\n"})
        session.emit(events.EXEC_FINISHED, {"execution_id": "e1", "exit_code": 0, "duration": 0.1,
                                            "notes": list(CORPUS)})
        output = app.screen.query_one(OutputPanel)
        await settle(pilot, lambda: any(line.startswith("■ exit 0") for line in output.lines))
        lines = "\n".join(output.lines)
        assert not shows_visible(lines), lines
        assert f"ERR│ {visible(CORPUS[4])}" in output.lines
        assert all(is_inert(line) for line in output.lines)

        tree = app.screen.query_one("#files-tree")
        await settle(pilot, lambda: any(n.label.plain == "corpus.txt" for n in tree.root.children))
        tree.select_node(next(n for n in tree.root.children if n.label.plain == "corpus.txt"))
        preview = app.screen.query_one("#preview-text")
        await settle(pilot, lambda: "pwned-title" in str(preview.render()))
        shown = str(preview.render())
        assert not shows_visible(shown), shown
        await pilot.pause(0.2)
        assert_nothing_raw(terminal(app), "the Output pane and the preview")
        assert app.is_running
        await app.action_quit()


@aio
async def test_steps_show_runner_replies_package_names_and_model_text_inert(make, demo):
    from workbench import events
    from workbench.tui.widgets.steps_panel import StepCard

    trap = " ".join(CORPUS)
    app = make()
    async with app.run_test(size=(220, 60)) as pilot:
        await settle(pilot, lambda: app.screen.session is not None)
        session = app.screen.session
        session.emit("task.started", {"task": trap})
        session.emit("llm.action", {"step": 1, "thought": trap, "action": {"action": "run_code",
                                                                           "language": "python", "code": trap}})
        session.emit(events.EXEC_STARTED, {"execution_id": "e2", "language": "python", "code": trap})
        session.emit(events.EXEC_FINISHED, {  # what a runner replied and the files it left
            "execution_id": "e2", "exit_code": trap, "duration": 0.5, "killed_by": trap,
            "files": [{"path": name, "change": trap} for name in FILE_NAMES[:6]]})
        session.emit("package.installed", {"name": trap, "version": trap, "manager": "pip"})
        session.emit("agent.observation", {"action": "read_file", "text": trap, "ok": True})
        session.emit("error", {"message": trap})
        session.emit("task.finished", {"success": False, "reason": trap, "answer": trap})
        await settle(pilot, lambda: any(c.title.startswith("✘ Ended") for c in app.screen.query(StepCard)))
        cards = list(app.screen.query(StepCard))
        assert len(cards) >= 6
        for card in cards:
            text = rendered(card._renderable())
            assert_nothing_raw(text, f"the card {card.title[:20]!r}")
            assert not shows_visible(text.replace("\n", " ")), (card.title[:30], text)
        await pilot.pause(0.2)
        assert_nothing_raw(terminal(app), "the Steps pane")
        assert app.is_running
        await app.action_quit()


@aio
async def test_notifications_and_install_toasts_are_plain(demo):
    from textual.widgets._toast import Toast

    from workbench.sandbox.types import InstalledPackage, InstallResult
    from workbench.tui.app import make_app

    trap = " ".join(CORPUS)

    class InstallingServices(FakeServices):
        def install(self, session, manager, packages):
            return InstallResult("pip", tuple(packages), (InstalledPackage(trap, trap, "pip"),), 0, trap, 0.1,
                                 refused=(trap,))

    app = make_app(demo, services=InstallingServices(), settings=Settings(), persist_theme=False)
    async with app.run_test(size=(220, 60), notifications=True) as pilot:
        await settle(pilot, lambda: app.screen.session is not None)
        app.notify(trap, title=trap)
        app.screen.install_packages("pip", ["anything"])
        await settle(pilot, lambda: any("Installed:" in str(t.render()) for t in app.screen.query(Toast)))
        toasts = [str(t.render()) for t in app.screen.query(Toast)]
        assert len(toasts) >= 2
        for shown in toasts:
            assert "[@click=app.quit]click[/]" in shown and "[/x]" in shown  # markup shown, not parsed
            assert not shows_visible(shown.replace("\n", " ")), shown
        await pilot.pause(0.2)
        assert_nothing_raw(terminal(app), "the toasts")
        assert app.is_running
        await app.action_quit()


@aio
async def test_the_approval_dialog_shows_the_model_s_action_inert(make):
    from workbench.tui.screens.approval import ApprovalScreen

    trap = "\n".join(CORPUS)
    app = make()
    async with app.run_test(size=(220, 60)) as pilot:
        await settle(pilot, lambda: app.screen.session is not None)
        for action in ({"action": "run_code", "language": "python", "thought": trap, "code": trap},
                       {"action": "install", "manager": "pip", "thought": trap, "packages": list(CORPUS)}):
            decided = []
            app.push_screen(ApprovalScreen(action), decided.append)
            await settle(pilot, lambda: isinstance(app.screen, ApprovalScreen) and bool(app.screen.query("#approval-code")))
            await pilot.pause(0.2)
            screen = terminal(app)
            assert_nothing_raw(screen, f"the approval dialog for {action['action']}")
            assert "[@click=app.quit]click[/]" in screen.replace("\xa0", " ") or \
                "[@click=app.quit]click[/]" in str(app.screen.query_one("#approval-thought").render())
            await pilot.press("n")
            await settle(pilot, lambda decided=decided: decided == [False])
        assert app.is_running
        await app.action_quit()


@aio
async def test_schedules_view_status_bar_and_audit_pane_are_inert(demo):
    from workbench.tui.app import make_app
    from workbench.tui.heartbeat_host import ScheduleRow
    from workbench.tui.screens.schedules import SchedulesScreen
    from workbench.tui.services import AuditSummary, EntryRow, SessionRow
    from workbench.tui.widgets.status_bar import StatusBar

    trap = " ".join(CORPUS)
    now = datetime.now(UTC)
    summary = AuditSummary(ok=False, entries=2, fingerprint="SHA256:abcd", error=trap,
                           sessions=(SessionRow("5e5510000001", now, now, 2, (f"heartbeat:{trap}",)),),
                           recent=(EntryRow(0, now, trap, trap, trap, trap), EntryRow(1, now, "x", "y", "z", trap)))
    app = make_app(demo, services=FakeServices(summary=summary), settings=Settings(), persist_theme=False)
    async with app.run_test(size=(220, 60)) as pilot:
        await settle(pilot, lambda: app.screen.session is not None)
        table = app.screen.query_one("#audit-entries")
        await settle(pilot, lambda: table.row_count == 2)
        cells = [getattr(cell, "plain", cell) for cell in table.get_row_at(0)]
        assert cells[-1] == one_line(trap)
        sessions = app.screen.query_one("#audit-sessions")
        assert is_inert(str(sessions.get_option_at_index(0).prompt))
        status = str(app.screen.query_one("#audit-status").render())
        assert not shows_visible(status), status
        bar = app.screen.query_one(StatusBar)
        bar.alert = trap
        bar.heartbeat = trap
        await pilot.pause(0.2)
        assert is_inert(str(bar.render()))
        assert_nothing_raw(terminal(app), "the audit pane and the status bar")

        rows = [ScheduleRow("nightly", "0 2 * * *", "UTC", "task", False, now, 1, now, "failed", trap)]
        app.push_screen(SchedulesScreen(rows, trap))
        await settle(pilot, lambda: isinstance(app.screen, SchedulesScreen))
        await pilot.pause(0.2)
        detail = str(app.screen.query_one("#schedules-detail").render())
        assert not shows_visible(detail.replace("\n", " ")), detail
        assert_nothing_raw(terminal(app), "the Schedules view")
        await pilot.press("escape")
        assert app.is_running
        await app.action_quit()


# --- the CLI's own lines ------------------------------------------------------------------------------------

def invoke(*args: str):
    from workbench.cli import cli

    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def assert_cli_inert(result, items=CORPUS) -> None:
    both = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert_nothing_raw(both, "the CLI")
    assert not shows_visible(both, items), both


def test_session_list_shows_runner_listed_names_on_their_own_lines(project, monkeypatch):
    from workbench.sandbox import kernels

    rows = [{"name": name, "language": trap, "state": "idle", "executions": 1, "idle": 3.0}
            for name, trap in zip(CORPUS, reversed(CORPUS), strict=True)]
    monkeypatch.setattr(kernels, "list_sessions", lambda project: rows)
    result = invoke("session", "list", "-p", str(project.root))
    assert result.exit_code == 0
    assert_cli_inert(result)
    assert len(result.output.strip().splitlines()) == len(CORPUS)  # a newline in a name forges no row


def test_install_lines_show_package_names_and_progress_inert(project, monkeypatch):
    import contextlib

    from workbench import session as session_module
    from workbench.sandbox.types import InstalledPackage, InstallResult

    class Box:
        def install(self, manager, packages, progress=None):
            for item in CORPUS:
                progress(f"Collecting {item}")
            installed = tuple(InstalledPackage(item, item, "pip") for item in CORPUS)
            return InstallResult("pip", tuple(packages), installed, 0, "", 0.1, refused=CORPUS,
                                 unreachable=CORPUS)

    class Work:
        sandbox = Box()

    monkeypatch.setattr(session_module.WorkSession, "open",
                        classmethod(lambda cls, *a, **k: contextlib.nullcontext(Work())))
    result = invoke("install", "-p", str(project.root), "--manager", "pip", "pkg")
    assert result.exit_code == 0, result.output
    assert_cli_inert(result)
    assert sum(line.startswith("installed ") for line in result.output.splitlines()) == len(CORPUS)


def test_heartbeat_memory_and_error_lines_are_inert(project):
    from workbench.heartbeat.schedule import Schedule
    from workbench.heartbeat.store import ScheduleStore

    trap = " ".join(CORPUS)
    store = ScheduleStore(project.state_db)
    try:
        now = datetime.now(UTC)
        store.add(Schedule(name="nightly", cron="0 2 * * *", timezone="UTC", kind="script", language="python",
                           code="print(1)"), now)
        run = store.start_run("nightly", now, now)
        store.finish_run(run, now, "failed", 1, None, trap)  # a run's detail quotes the sandbox's error
    finally:
        store.close()
    listing = invoke("heartbeat", "list", "-p", str(project.root))
    assert listing.exit_code == 0
    assert_cli_inert(listing)

    title = "\x1b]0;pwned-title\x07 [@click=app.quit]click[/] \u202e"  # listings shorten titles to 70
    added = invoke("memory", "add", "-p", str(project.root), trap, "--title", title, "--tag", "t")
    assert added.exit_code == 0, added.output
    notes = invoke("memory", "list", "-p", str(project.root))
    assert_nothing_raw(notes.output, "memory list")
    assert "[@click=app.quit]click[/]" in notes.output and "\\x1b]0;pwned-title\\x07" in notes.output
    assert "\\u202e" in notes.output

    from workbench.cli import main

    for bad in (["memory", "rm", "-p", str(project.root), trap], ["session", "restart", "-p", str(project.root), trap]):
        with pytest.raises(SystemExit) as exit_info:
            main(bad)
        assert exit_info.value.code != 0


def test_error_lines_are_one_line_and_inert(project, capsys):
    from workbench.cli import main

    trap = " ".join(CORPUS)
    with pytest.raises(SystemExit) as exit_info:
        main(["memory", "rm", "-p", str(project.root), trap])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert_nothing_raw(err, "an error line")
    assert len(err.strip().splitlines()) == 1 and "\\x1b]0;pwned-title\\x07" in err


@pytest.mark.engine
@pytest.mark.timeout(300)
def test_run_files_changed_line_from_a_real_sandbox_is_inert(engine_ready, project, monkeypatch):
    from tests.agent.fakes import ScriptedLLM
    from workbench.agent import llm

    script = [json.dumps({"thought": "plant", "action": "run_code", "language": "python",
                          "code": write_files_code(FILE_NAMES) + "print('\\n'.join(" + json.dumps(list(CORPUS))
                                  + "))\n"}),
              json.dumps({"thought": "done", "action": "finish", "answer": " ".join(CORPUS), "success": False})]
    monkeypatch.setattr(llm, "open_model", lambda *a, **k: ScriptedLLM(list(script)))
    result = invoke("run", "-p", str(project.root), "--approve", "auto", "plant the names")
    assert result.exit_code in (0, 1), result.output
    for name in FILE_NAMES:
        assert (project.workspace / name).is_file()
    assert_nothing_raw(result.output, "workbench run")
    changed = [line for line in result.output.splitlines() if "files changed:" in line]
    assert len(changed) == 1, result.output
    assert not shows_visible(changed[0], FILE_NAMES), changed[0]
    assert not shows_visible(result.output), result.output  # the output and the answer, made visible


# --- the PDF ------------------------------------------------------------------------------------------------

def test_the_pdf_shows_the_corpus_escaped_and_interprets_no_markup(project, tmp_path, monkeypatch):
    from tests.report.conftest import append, pdf_reader, pdf_text
    from workbench.report import environment, render_report

    monkeypatch.setattr(environment, "probe_engine", lambda project: environment.EngineFacts(
        True, "podman 9.9.9", "unix:///fake.sock", True, True, settings=environment.configured_limits(
            project.settings())))
    items = (*CORPUS, "<b>not bold</b>", "&amp; &lt;x&gt;", "<font name='Courier'>f</font>")
    trap = "\n".join(items)
    t0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    sid = "sess-\x1b]0;t\x07\u202eexe"  # the outline names each session by id and trigger

    def ev(kind, payload, offset, actor="agent:wb"):
        return Event(kind, sid, actor, payload, user="user:alice", time=t0 + timedelta(seconds=offset))

    append(project, [
        ev("session.started", {"trigger": f"user:{CORPUS[4]}{CORPUS[11]}", "project": "p", "project_id": "x",
                               "workbench_version": "0.1.0"}, 0, "user:alice"),
        ev("task.started", {"task": trap}, 1),
        ev("llm.action", {"step": 1, "thought": trap, "action": {"action": "run_code", "language": "python",
                                                                 "code": trap}}, 2),
        ev("exec.started", {"execution_id": "ex1", "language": "python", "code": trap}, 3),
        ev("exec.output", {"execution_id": "ex1", "stream": "stdout", "text": trap + "\n"}, 4),
        ev("exec.output", {"execution_id": "ex1", "stream": "stderr", "text": trap + "\n"}, 4.5),
        ev("exec.finished", {"execution_id": "ex1", "language": "python", "exit_code": 0, "duration": 0.2,
                             "timed_out": False, "killed_by": None, "limits_enforced": True, "notes": list(items),
                             "stdout": {"total_bytes": 1, "sha256": "a" * 64, "truncated": False, "kept_bytes": 1},
                             "stderr": {"total_bytes": 1, "sha256": "b" * 64, "truncated": False, "kept_bytes": 1},
                             "files": [{"path": name, "change": "created", "sha256": "c" * 64, "size": 1}
                                       for name in FILE_NAMES], "artifacts": []}, 5),
        ev("package.installed", {"name": trap, "version": trap, "manager": "pip"}, 6),
        ev("error", {"message": trap}, 7),
        ev("task.finished", {"success": False, "reason": "gave_up", "answer": trap}, 8),
        ev("session.finished", {"outcome": "finished"}, 9, "user:alice"),
    ])
    out = tmp_path / "report.pdf"
    summary = render_report(project, out)
    assert summary.verified
    text = pdf_text(out)
    assert_nothing_raw(text, "the PDF text")
    flat = text.replace("\n", "")
    for needle in ("[@click=app.quit]click[/]", "[/x]", "[bold]bold[/bold]", "\\x1b]0;pwned-title\\x07",
                   "\\x1b[2J", "c1\\x9b31m", "bel\\x07bel", "\\u202eexe.txt", "\\x1b]52;c;cHduZWQ=\\x07",
                   "<b>not bold</b>", "&amp; &lt;x&gt;", "<font name='Courier'>f</font>"):
        assert needle in flat, needle  # shown as the log holds it: no markup taken from it
    reader = pdf_reader(out)

    def titles(outline):
        for item in outline:
            yield from titles(item) if isinstance(item, list) else [item.title]

    shown = [*titles(reader.outline), *(str(v) for v in (reader.metadata or {}).values())]
    for title in shown:
        assert_nothing_raw(title, "the PDF outline and metadata")
    assert any(title.startswith("Session sess-\\x1b]0;t\\x07\\u202eexe") for title in shown), shown

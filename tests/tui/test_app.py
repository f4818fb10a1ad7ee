"""The workstation driven with the Pilot: panes, session, direct exec, stop, approvals, errors, palette."""

from __future__ import annotations

import json

from workbench.config import Settings
from workbench.tui.app import COMMANDS, WorkbenchApp
from workbench.tui.screens.approval import ApprovalScreen
from workbench.tui.screens.error import ErrorScreen
from workbench.tui.widgets.audit_panel import AuditPanel
from workbench.tui.widgets.output_panel import OutputPanel
from workbench.tui.widgets.status_bar import StatusBar
from workbench.tui.widgets.steps_panel import StepCard, StepsPanel

from .conftest import SIZE, aio, settle
from .fakes import FIXED_SESSION, NO_ENGINE_REPORT, FakeServices


def output_text(app: WorkbenchApp) -> str:
    return "\n".join(app.screen.query_one(OutputPanel).lines)


def cards(app: WorkbenchApp) -> list[StepCard]:
    return list(app.screen.query_one(StepsPanel).query(StepCard))


@aio
async def test_panes_titles_status_and_session(make):
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen.query_one(StatusBar).session == FIXED_SESSION)
        titles = {pane.border_title for pane in app.screen.query(".pane")}
        assert titles == {"Steps", "Output", "Files", "Audit"}
        bar = app.screen.query_one(StatusBar)
        await settle(pilot, lambda: bar.engine != "checking…")
        assert bar.engine == "podman 5.0.0" and bar.isolation == "rootless" and bar.limits == "enforced"
        assert "SmolLM2" in bar.model
        assert app.theme == "workbench-dark"
        for key, pane in (("f3", "output"), ("f4", "files-tree"), ("f5", "audit-sessions"), ("f2", "steps")):
            await pilot.press(key)
            assert app.focused is not None and app.focused.id == pane


@aio
async def test_palette_offers_every_action(make):
    wanted = {"New session", "Stop", "Approve", "Deny", "Install package", "Run code directly", "Verify audit",
              "Export report", "Choose model", "Switch theme", "Open file in $EDITOR"}
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        titles = {command.title for command in app.get_system_commands(app.screen)}
        assert wanted <= titles
        for _, _, action in COMMANDS:  # every palette entry names an action the main screen has
            name = action.split("(")[0]
            assert hasattr(app.screen, f"action_{name}"), name
        await pilot.press("ctrl+p")
        await pilot.press(*"verify audit")
        await pilot.press("enter")
        await pilot.pause(0.2)


@aio
async def test_direct_exec_streams_output_and_records_a_step(make, demo):
    app = make()
    code = "import sys\nprint('hello from code')\nprint('warning here', file=sys.stderr)\n" \
           "open('made.txt', 'w').write('x')\n"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen.session is not None)
        await pilot.press("ctrl+r")
        await settle(pilot, lambda: app.screen.__class__.__name__ == "ExecPrompt")
        app.screen.query_one("TextArea").text = code
        await pilot.press("ctrl+r")
        await settle(pilot, lambda: any("exit 0" in line for line in app.screen.query_one(OutputPanel).lines))
        text = output_text(app)
        assert "hello from code" in text
        assert "ERR│ warning here" in text
        card = cards(app)[-1]
        assert card.has_class("-ok") and "you" in card.title and "made.txt" in card.result
        assert (demo.workspace / "made.txt").exists()


@aio
async def test_stop_kills_running_code(make):
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen.session is not None)
        app.screen.execute("python", "import time\nprint('started', flush=True)\ntime.sleep(60)\n")
        await settle(pilot, lambda: "started" in output_text(app))
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: "killed (user)" in output_text(app))
        assert cards(app)[-1].has_class("-failed")
        assert app.screen._execution is None


SCRIPT = [
    json.dumps({"thought": "Write the file", "action": "run_code", "language": "python",
                "code": "print('agent ran')\nopen('result.csv', 'w').write('a,b\\n1,2\\n')"}),
    json.dumps({"thought": "done", "action": "finish", "answer": "wrote result.csv", "success": True}),
]


@aio
async def test_task_shows_steps_output_and_file(demo):
    from workbench.tui.app import make_app

    services = FakeServices(replies=list(SCRIPT))
    app = make_app(demo, services=services, settings=Settings(), persist_theme=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen.session is not None)
        await pilot.press(*"make result.csv", "enter")
        await settle(pilot, lambda: any(c.title.startswith("✔ Done") for c in cards(app)))
        titles = [c.title for c in cards(app)]
        assert titles[0] == "Task · make result.csv"
        assert any(t.startswith("Run python code") for t in titles)
        assert "agent ran" in output_text(app)
        tree = app.screen.query_one("#files-tree")
        await settle(pilot, lambda: any(str(n.label) == "result.csv" for n in tree.root.children))


async def _run_with_approval(demo, key: str) -> list[StepCard]:
    from workbench.tui.app import make_app

    services = FakeServices(replies=list(SCRIPT))
    settings = Settings(agent={"approval": "ask"})
    app = make_app(demo, services=services, settings=settings, persist_theme=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen.session is not None)
        await pilot.press(*"make result.csv", "enter")
        await settle(pilot, lambda: isinstance(app.screen, ApprovalScreen)
                     and bool(app.screen.query("#approval-code-text")))  # pushed, and composed (slow under load)
        code = json.loads(SCRIPT[0])["code"]
        assert app.screen.code_shown == code  # the code, in full, in the dialog
        lines = [strip.text for strip in app.screen.query_one("#approval-code-text").render_lines(
            app.screen.query_one("#approval-code-text").region.reset_offset)]
        assert any("open('result.csv'" in line for line in lines)
        await pilot.press(key)
        await settle(pilot, lambda: not app.screen.agent_running if hasattr(app.screen, "agent_running")
                     else False)
        return cards(app)


@aio
async def test_approve_runs_the_code(demo):
    titles = [c.title for c in await _run_with_approval(demo, "y")]
    assert "Approved by you" in titles
    assert (demo.workspace / "result.csv").exists()


@aio
async def test_deny_does_not_run_the_code(demo):
    titles = [c.title for c in await _run_with_approval(demo, "n")]
    assert "Denied by you" in titles
    assert not (demo.workspace / "result.csv").exists()


@aio
async def test_missing_engine_shows_the_error_screen(make):
    app = make(services=FakeServices(report=NO_ENGINE_REPORT))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, ErrorScreen) and len(app.screen.query(".problem")) == 2)
        text = "\n".join(line.text for widget in app.screen.query(".problem")
                         for line in widget.render_lines(widget.region.reset_offset))
        assert "no container engine" in text and "make setup" in text
        assert "no GGUF model" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, ErrorScreen)


@aio
async def test_audit_panel_shows_sessions_and_verification(make):
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        panel = app.screen.query_one(AuditPanel)
        await settle(pilot, lambda: panel.query_one("#audit-sessions").option_count == 2)
        widget = panel.query_one("#audit-status")
        status = " ".join(line.text for line in widget.render_lines(widget.region.reset_offset))
        assert "verified" in status and "SHA256:abcd1234" in status


@aio
async def test_installs_and_refused_egress_show_as_steps(make):
    from workbench.events import Event

    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen.session is not None)
        sid = app.screen.session.session_id
        steps = app.screen.query_one(StepsPanel)
        steps.clear_steps()
        steps.add_event(Event("install.egress", sid, "user:tester",
                              {"manager": "pip", "reached": ["pypi.org:443"], "refused": ["evil.example:443"],
                               "unreachable": ["cdn.lan:443: could not connect: timed out"]}))
        steps.add_event(Event("install.egress", sid, "user:tester", {"reached": ["pypi.org:443"], "refused": []}))
        steps.add_event(Event("package.installed", sid, "user:tester",
                              {"name": "tabulate", "version": "0.10.0", "manager": "pip"}))
        await pilot.pause(0.1)
        shown = [(card.title, card.body) for card in cards(app)]
    assert shown[0][0] == "Install network" and "evil.example:443" in shown[0][1]
    assert "could not reach cdn.lan:443" in shown[0][1]
    assert shown[1] == ("Installed · tabulate 0.10.0 (pip)", "")  # an install with nothing refused adds no card


@aio
async def test_database_connections_show_as_network_lines_refusals_highlighted(make):
    from workbench.events import Event

    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen.session is not None)
        sid = app.screen.session.session_id
        steps = app.screen.query_one(StepsPanel)
        steps.clear_steps()
        steps.add_event(Event("net.connection", sid, "user:tester",
                              {"database": "sales", "role": "analyst", "credential": "wh", "duration": 0.25,
                               "bytes_up": 94, "bytes_down": 522, "refused": ""}))
        steps.add_event(Event("net.connection", sid, "user:tester",
                              {"database": "hr\x1b[31m", "refused": 'Workbench: the database "hr" is not allowed'}))
        await pilot.pause(0.1)
        shown = [(card.title, card.body, card.has_class("-failed")) for card in cards(app)]
    assert shown[0] == ("Network · database sales as analyst · 0.25 s · 94 B up, 522 B down", "", False)
    assert shown[1][0].startswith("Network · database hr") and "\x1b" not in shown[1][0] and shown[1][2]
    assert "is not allowed" in shown[1][1]


@aio
async def test_the_audit_pane_follows_a_log_that_grows_elsewhere(make):
    services = FakeServices()
    app = make(services=services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen._audit_entries is not None)
        await pilot.pause(2.5)
        reads = services.summary_reads
        assert reads >= 1
        services.size_override = services.summary.entries + 7  # another process appended
        await settle(pilot, lambda: services.summary_reads > reads, timeout=6)


@aio
async def test_an_install_approval_says_where_the_install_may_reach(demo):
    from workbench.tui.app import make_app

    install = json.dumps({"thought": "needs tabulate", "action": "install", "manager": "pip",
                          "packages": ["tabulate"]})
    services = FakeServices(replies=[install])
    settings = Settings(agent={"approve_installs": "ask"},
                        install={"pip_index_url": "https://mirror.lan/simple", "allow_hosts": "files.lan:8443"})
    app = make_app(demo, services=services, settings=settings, persist_theme=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen.session is not None)
        await pilot.press(*"tabulate it", "enter")
        await settle(pilot, lambda: isinstance(app.screen, ApprovalScreen) and bool(app.screen.query("#approval-reach")))
        reach = str(app.screen.query_one("#approval-reach").render())
        assert reach == "This install may reach: files.lan:8443, mirror.lan:443"
        await pilot.press("n")

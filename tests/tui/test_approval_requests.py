"""Another program asks the open TUI for an approval (workbench.approvals): the agent's own dialog, inert
text, never the event loop blocked; and an MCP call recorded by another process is followed into the panes
like a scheduled run made elsewhere."""

from __future__ import annotations

import asyncio
import time

from workbench import approvals
from workbench.events import Event
from workbench.tui.screens.approval import ApprovalScreen

from .conftest import SIZE, aio, settle
from .fakes import FakeServices

HOSTILE = "[@click=app.quit]evil[/]\x1b]0;owned\x07"


def listening(app) -> bool:
    listener = getattr(app.main, "approvals", None)
    return listener is not None and listener.state == "listening"


async def ask_in_thread(root, request, timeout=30.0):
    return await asyncio.to_thread(approvals.ask, root, request, timeout)


def title_of(app) -> str:
    return str(app.screen.query_one("#approval-title").render())


@aio
async def test_a_request_from_another_program_shows_the_agents_dialog_and_yes_approves(make, demo):
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: listening(app))
        request = approvals.Request("execute", client=HOSTILE, language="python", code=f"print(42)  # {HOSTILE}")
        asked = asyncio.create_task(ask_in_thread(demo.root, request))
        await settle(pilot, lambda: isinstance(app.screen, ApprovalScreen)
                     and bool(app.screen.query("#approval-code-text")))
        # The client's name and code are shown as they are: no markup parsed, no escape sent.
        title = title_of(app)
        assert "The MCP client" in title and "[@click=app.quit]evil[/]" in title and "\x1b" not in title
        assert "\\x1b" in title
        assert app.screen.code_shown.startswith("print(42)")
        assert app.is_running  # the event loop answered while the requester waited on its thread
        await pilot.press("y")
        decision = await asked
    assert decision.approved and decision.by.startswith("user:") and decision.outcome == "approved"


@aio
async def test_no_in_the_dialog_refuses_and_an_install_says_where_it_may_reach(make, demo):
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: listening(app))
        request = approvals.Request("install", client="goose", manager="pip", packages=("tabulate",))
        asked = asyncio.create_task(ask_in_thread(demo.root, request))
        await settle(pilot, lambda: isinstance(app.screen, ApprovalScreen) and bool(app.screen.query("#approval-reach")))
        assert "'goose' wants to install" in title_of(app)
        await pilot.press("n")
        decision = await asked
    assert decision.outcome == "refused" and not decision.approved and "said no" in decision.reason


@aio
async def test_a_requester_that_gives_up_takes_the_dialog_away(make, demo):
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: listening(app))
        started = time.monotonic()
        asked = asyncio.create_task(ask_in_thread(demo.root, approvals.Request("write_file", client="zed",
                                                                               path="notes.txt"), timeout=1.5))
        await settle(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        decision = await asked
        assert decision.outcome == "timeout" and "within 1.5 s" in decision.reason
        assert time.monotonic() - started < 10
        await settle(pilot, lambda: not isinstance(app.screen, ApprovalScreen))


@aio
async def test_only_the_first_tui_of_a_project_listens_and_a_closed_one_leaves_no_listener(make, demo):
    first = make()
    async with first.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: listening(first))
        second = make(services=FakeServices())
        async with second.run_test(size=SIZE) as pilot2:
            await settle(pilot2, lambda: second.main.approvals is not None
                         and second.main.approvals.state == "elsewhere")
    deadline = time.monotonic() + 5
    while (approvals.folder(demo.root) / approvals.SOCKET_NAME).exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    decision = await ask_in_thread(demo.root, approvals.Request("execute", client="c", code="1"))
    assert decision.outcome == "no-tui" and decision.waited < 1


@aio
async def test_an_mcp_call_recorded_by_another_process_is_followed_into_the_panes(make, demo):
    from workbench.tui.widgets.output_panel import OutputPanel
    from workbench.tui.widgets.steps_panel import StepsPanel

    services = FakeServices()
    app = make(services=services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen.session is not None)
        await pilot.pause(2.5)  # a first poll: what was in the log before is not replayed

        def ev(kind, **payload):
            return Event(kind, "mcpsession01", f"mcp:{HOSTILE}", payload)

        services.foreign = [ev("session.started", trigger="mcp"),
                            ev("approval.decided", what="execute", requester=f"mcp:{HOSTILE}", outcome="approved",
                               approved=True, by="user:tester"),
                            ev("exec.started", execution_id="m1", language="python"),
                            ev("exec.output", execution_id="m1", stream="stdout", text="42\n"),
                            ev("exec.finished", execution_id="m1", exit_code=0, duration=0.1),
                            ev("mcp.call", tool="execute", outcome="ok"),
                            ev("session.finished")]
        output = app.screen.query_one(OutputPanel)
        steps = app.screen.query_one(StepsPanel)
        await settle(pilot, lambda: any(line.strip() == "42" for line in output.lines), timeout=8)
        await settle(pilot, lambda: steps.border_title.startswith("Steps · MCP call from ")
                     and steps.border_title.endswith("· finished"))
        assert "\x1b" not in steps.border_title and "\\x1b" in steps.border_title
        from workbench.tui.widgets.steps_panel import StepCard

        [card] = [c for c in app.main.query(StepCard) if c.title.startswith("Approved by user:tester · execute")]
        assert card.title.endswith(f"for mcp:{HOSTILE}")  # kept as it is: the card renders it inert
        rendered = " ".join(strip.text for strip in card.render_lines(card.region.reset_offset))
        assert "\x1b" not in rendered and "[@click=app.quit]evil[/]" in rendered

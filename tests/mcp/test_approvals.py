"""Approval under `ask` for an MCP client: the official SDK's client calls `workbench mcp` (a child process),
and a real Workbench TUI of the same project, run headless with the Pilot in this process, answers."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time

import pytest
from mcp import Client, StdioServerParameters
from mcp.types import Implementation

from tests.mcp.conftest import CLIENT_NAME, entries, stdio_client
from tests.tui.conftest import SIZE, settle
from tests.tui.fakes import FakeServices
from workbench import approvals
from workbench.config import Settings
from workbench.tui.screens.approval import ApprovalScreen
from workbench.tui.services import Services


@pytest.fixture
def asks(mcp_project):
    """The user's own config (trusted) says executions ask; installs ask by default."""
    from workbench.paths import ensure_dir, user_config_dir, user_config_file

    ensure_dir(user_config_dir())
    user_config_file().write_text('[agent]\napproval = "ask"\n')
    return mcp_project


def client_for(workbench_cmd, root, *extra: str) -> Client:
    if not extra:
        return stdio_client(workbench_cmd, root)
    params = StdioServerParameters(command=workbench_cmd[0],
                                   args=[*workbench_cmd[1:], "mcp", "-p", str(root), *extra], env=dict(os.environ))
    return Client(params, client_info=Implementation(name=CLIENT_NAME, version="1.0"), read_timeout_seconds=300)


class LoggedServices(FakeServices):
    """The TUI's fakes, but its Audit pane and the following of other processes read the real log."""

    audit_summary = Services.audit_summary
    audit_size = Services.audit_size
    audit_events_from = Services.audit_events_from
    session_events = Services.session_events


def tui(project, services=None):
    from workbench.tui.app import make_app

    return make_app(project, services=services or FakeServices(), settings=Settings(), persist_theme=False)


def listening(app) -> bool:
    return app.main.approvals is not None and app.main.approvals.state == "listening"


def decisions(project):
    return [e for e in entries(project) if e.kind == "approval.decided"]


def run_async(main):
    asyncio.run(main())


def test_an_execute_waits_for_yes_in_the_open_tui_then_runs_and_the_log_shows_the_approval(
        workbench_cmd, asks, engine_ready):
    project = asks
    found = {}

    async def main():
        from workbench.tui.widgets.output_panel import OutputPanel
        from workbench.tui.widgets.steps_panel import StepCard, StepsPanel

        app = tui(project, LoggedServices())
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, lambda: listening(app) and app.main._audit_entries is not None)
            async with client_for(workbench_cmd, project.root) as client:
                call = asyncio.create_task(client.call_tool("execute", {"language": "python", "code": "print(6 * 7)"}))
                await settle(pilot, lambda: isinstance(app.screen, ApprovalScreen), timeout=90)
                found["title"] = str(app.screen.query_one("#approval-title").render())
                found["code"] = app.screen.code_shown
                assert not call.done()  # it waits for the person
                await pilot.press("y")
                found["reply"] = await asyncio.wait_for(call, 300)
            # The call, as the server logged it, shows up in the panes like a scheduled run made elsewhere.
            steps, output = app.main.query_one(StepsPanel), app.main.query_one(OutputPanel)
            await settle(pilot, lambda: steps.border_title.startswith(f"Steps · MCP call from {CLIENT_NAME}")
                         and any(line.strip() == "42" for line in output.lines), timeout=15)
            found["cards"] = [card.title for card in app.main.query(StepCard)]

    run_async(main)
    assert CLIENT_NAME in found["title"] and "wants to run code" in found["title"]
    assert found["code"] == "print(6 * 7)"
    assert any(t.startswith("Approved by user:") and t.endswith(f"execute for mcp:{CLIENT_NAME}")
               for t in found["cards"]), found["cards"]
    reply = found["reply"]
    assert not reply.is_error, reply.content[0].text
    assert reply.structured_content["exit_code"] == 0 and reply.structured_content["stdout"].strip() == "42"
    [decision] = decisions(project)
    assert decision.payload["outcome"] == "approved" and decision.payload["approved"] is True
    assert decision.payload["by"].startswith("user:") and decision.payload["requester"] == f"mcp:{CLIENT_NAME}"
    assert decision.actor == f"mcp:{CLIENT_NAME}" and decision.payload["details"]["language"] == "python"
    log = entries(project, decision.session_id)
    kinds = [e.kind for e in log]
    assert kinds.index("approval.decided") < kinds.index("exec.started") < kinds.index("exec.finished")
    assert [e.payload["outcome"] for e in log if e.kind == "mcp.call"] == ["ok"]


def test_an_approved_executions_new_destination_asks_too_and_a_no_is_a_403(workbench_cmd, asks, engine_ready):
    """Under `ask`, code an MCP client runs is asked about each new destination it reaches through the
    project's network policy, as the agent's own code is: the TUI shows the destination, a no never reaches
    the origin, and both answers are on the record."""
    import subprocess

    from tests.network.http_server import Origin

    project = asks
    origin = Origin()
    found = {}
    try:
        allowed = subprocess.run([*workbench_cmd, "network", "allow", "-p", str(project.root),
                                  f"http://127.0.0.1:{origin.port}/"], capture_output=True, text=True, timeout=120)
        assert allowed.returncode == 0, allowed.stderr
        code = ("import urllib.request, urllib.error\ntry:\n"
                f"    urllib.request.urlopen('http://127.0.0.1:{origin.port}/data')\n"
                "except urllib.error.HTTPError as e:\n    print(e.code)\n")

        async def main():
            app = tui(project)
            async with app.run_test(size=SIZE) as pilot:
                await settle(pilot, lambda: listening(app))
                async with client_for(workbench_cmd, project.root) as client:
                    call = asyncio.create_task(client.call_tool("execute", {"language": "python", "code": code}))
                    await settle(pilot, lambda: isinstance(app.screen, ApprovalScreen), timeout=90)
                    await pilot.press("y")
                    await settle(pilot, lambda: isinstance(app.screen, ApprovalScreen)
                                 and "reach the network" in str(app.screen.query_one("#approval-title").render()),
                                 timeout=90)
                    found["asked"] = app.screen.action_data
                    await pilot.press("n")
                    found["reply"] = await asyncio.wait_for(call, 300)

        run_async(main)
    finally:
        origin.close()
    destination = f"127.0.0.1:{origin.port}"
    assert found["asked"]["destination"] == destination and found["asked"]["rule"].startswith("http://127.0.0.1")
    reply = found["reply"]
    assert not reply.is_error and reply.structured_content["stdout"].strip() == "403", reply.content[0].text
    assert origin.paths() == []  # refused before anything was sent
    first, second = decisions(project)
    assert (first.payload["what"], first.payload["outcome"]) == ("execute", "approved")
    assert (second.payload["what"], second.payload["outcome"]) == ("reach_the_network", "refused")
    assert second.payload["details"]["destination"] == destination and second.session_id == first.session_id
    refused = [e for e in entries(project, first.session_id) if e.kind == "net.request"]
    assert refused and "not approved" in refused[0].payload["refused"]


def test_no_in_the_tui_refuses_with_a_clear_message_and_nothing_runs(workbench_cmd, asks):
    project = asks
    found = {}

    async def main():
        app = tui(project)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, lambda: listening(app))
            async with client_for(workbench_cmd, project.root) as client:
                call = asyncio.create_task(client.call_tool("install", {"manager": "pip", "packages": ["tabulate"]}))
                await settle(pilot, lambda: isinstance(app.screen, ApprovalScreen), timeout=90)
                await pilot.press("n")
                found["reply"] = await asyncio.wait_for(call, 120)

    run_async(main)
    reply = found["reply"]
    assert reply.is_error and "install refused" in reply.content[0].text and "said no" in reply.content[0].text
    [decision] = decisions(project)
    assert decision.payload["outcome"] == "refused" and decision.payload["by"].startswith("user:")
    assert decision.payload["details"] == {"manager": "pip", "packages": ["tabulate"]}
    log = entries(project)
    assert not [e for e in log if e.kind.startswith(("package.", "exec."))]
    assert [e.payload["outcome"] for e in log if e.kind == "mcp.call"] == ["refused"]


def test_with_no_tui_open_a_call_is_refused_at_once_saying_how_to_open_one(workbench_cmd, asks):
    project = asks

    async def main():
        async with client_for(workbench_cmd, project.root) as client:
            started = time.monotonic()
            reply = await client.call_tool("execute", {"language": "python", "code": "print(42)"})
            return reply, time.monotonic() - started

    reply, took = asyncio.run(main())
    text = reply.content[0].text
    assert reply.is_error and "cannot be approved" in text and f"workbench {project.root}" in text
    assert took < 10  # no waiting for an answer nobody can give (it is the session's own time, mostly)
    [decision] = decisions(project)
    assert decision.payload["outcome"] == "no-tui" and decision.payload["waited"] < 1
    assert not [e for e in entries(project) if e.kind.startswith("exec.")]


def test_an_unanswered_request_times_out_refused_saying_so(workbench_cmd, asks):
    project = asks
    found = {}

    async def main():
        app = tui(project)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, lambda: listening(app))
            async with client_for(workbench_cmd, project.root, "--approval-timeout", "2") as client:
                call = asyncio.create_task(client.call_tool("write_file", {"path": "a.txt", "content": "x"}))
                await settle(pilot, lambda: isinstance(app.screen, ApprovalScreen), timeout=90)
                found["reply"] = await asyncio.wait_for(call, 60)
                await settle(pilot, lambda: not isinstance(app.screen, ApprovalScreen))  # withdrawn

    run_async(main)
    reply = found["reply"]
    assert reply.is_error and "no answer from the Workbench TUI within 2 s" in reply.content[0].text
    assert not (project.workspace / "a.txt").exists()
    [decision] = decisions(project)
    assert decision.payload["outcome"] == "timeout" and 2 <= decision.payload["waited"] < 10


def test_a_planted_socket_that_would_say_yes_is_ignored(workbench_cmd, asks, tmp_path):
    """Someone puts a symlink where the TUI's socket goes, to a listener that approves everything."""
    project = asks
    fake_path = str(tmp_path / "fake.sock")
    fake = socket.socket(socket.AF_UNIX)
    fake.bind(fake_path)
    fake.listen(4)
    connections = []

    def approve_everything():
        fake.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = fake.accept()
            except TimeoutError:
                continue
            connections.append(conn)
            line = conn.recv(1 << 20).split(b"\n")[0]
            import json

            request_id = json.loads(line)["id"]
            conn.sendall(json.dumps({"id": request_id, "approved": True, "by": "user:forged"}).encode() + b"\n")

    stop = threading.Event()
    thread = threading.Thread(target=approve_everything, daemon=True)
    thread.start()
    where = approvals.folder(project.root)
    os.symlink(fake_path, where / approvals.SOCKET_NAME)
    try:
        async def main():
            async with client_for(workbench_cmd, project.root) as client:
                return await client.call_tool("execute", {"language": "python",
                                                          "code": "open('/workspace/ran', 'w').write('1')"})

        reply = asyncio.run(main())
    finally:
        stop.set()
        thread.join(5)
        fake.close()
    assert reply.is_error and "not a socket a Workbench TUI of yours made" in reply.content[0].text
    assert connections == []  # never even connected to
    assert not (project.workspace / "ran").exists()
    [decision] = decisions(project)
    assert decision.payload["outcome"] == "unsafe" and decision.payload["by"] == ""

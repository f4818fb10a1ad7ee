"""`workbench mcp -p DIR` over stdio, driven by the official MCP SDK's client (a client no one here wrote)."""

from __future__ import annotations

import os

import anyio
import pytest

from tests.mcp.conftest import CLIENT_NAME, entries, stdio_client

TOOLS = {"execute", "install", "list_files", "read_file", "write_file", "audit_verify", "export_report"}


def run(coroutine_function):
    return anyio.run(coroutine_function)


def test_initialize_and_list_tools_and_resources(workbench_cmd, mcp_project):
    async def main():
        async with stdio_client(workbench_cmd, mcp_project.root) as client:
            listed = await client.list_tools()
            templates = await client.list_resource_templates()
            return client.server_info, {t.name: t for t in listed.tools}, templates

    info, tools, templates = run(main)
    assert info is not None and info.name == "workbench"
    assert set(tools) == TOOLS
    assert set(tools["execute"].input_schema["required"]) == {"language", "code"}
    assert {"session", "timeout"} <= set(tools["execute"].input_schema["properties"])
    assert tools["install"].input_schema["properties"]["packages"]["type"] == "array"
    assert {t.uri_template for t in templates.resource_templates} == {"workspace://{+path}", "audit://tail{?count}"}


def test_files_stay_in_the_workspace_and_every_call_is_audited_with_the_mcp_trigger(workbench_cmd, mcp_project,
                                                                                      tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("do not touch")
    os.symlink(outside, mcp_project.workspace / "planted")  # a folder symlink, as sandboxed code could make
    os.symlink(outside / "secret.txt", mcp_project.workspace / "link.txt")

    async def main():
        async with stdio_client(workbench_cmd, mcp_project.root) as client:
            replies = {
                "write": await client.call_tool("write_file", {"path": "data/notes.txt", "content": "hello mcp"}),
                "read": await client.call_tool("read_file", {"path": "data/notes.txt"}),
                "list": await client.call_tool("list_files", {}),
                "outside": await client.call_tool("write_file", {"path": "../escape.txt", "content": "x"}),
                "absolute": await client.call_tool("write_file", {"path": "/etc/escape.txt", "content": "x"}),
                "through": await client.call_tool("write_file", {"path": "planted/secret.txt", "content": "owned"}),
                "read_through": await client.call_tool("read_file", {"path": "link.txt"}),
                "at_link": await client.call_tool("write_file", {"path": "link.txt", "content": "replaced"}),
            }
            resource = await client.read_resource("workspace://data/notes.txt")
            tail = await client.read_resource("audit://tail?count=5")
            return replies, resource, tail

    replies, resource, tail = run(main)
    assert not replies["write"].is_error and "wrote 9 bytes" in replies["write"].content[0].text
    assert not replies["read"].is_error and "hello mcp" in replies["read"].content[0].text
    assert "data/notes.txt" in replies["list"].structured_content["files"]
    assert "planted -> " + str(outside) in replies["list"].structured_content["files"]
    for refused in ("outside", "absolute", "through", "read_through"):
        assert replies[refused].is_error, refused
    assert "outside /workspace" in replies["outside"].content[0].text
    assert "symlink" in replies["through"].content[0].text and "not followed" in replies["read_through"].content[0].text
    # A symlink at the name itself is replaced by a regular file, never written through.
    assert not replies["at_link"].is_error and "not followed" in replies["at_link"].content[0].text
    assert (outside / "secret.txt").read_text() == "do not touch" and not (tmp_path / "escape.txt").exists()
    assert not (mcp_project.workspace / "link.txt").is_symlink()
    assert resource.contents[0].blob == "aGVsbG8gbWNw"  # base64 of "hello mcp"
    assert "session.started" in tail.contents[0].text

    log = entries(mcp_project)
    calls = [e for e in log if e.kind == "mcp.call"]
    assert [c.payload["tool"] for c in calls][:8] == ["write_file", "read_file", "list_files", "write_file",
                                                      "write_file", "write_file", "read_file", "write_file"]
    assert [c.payload["outcome"] for c in calls][:8] == ["ok", "ok", "ok", "refused", "refused", "refused",
                                                         "refused", "ok"]
    assert all(c.actor == f"mcp:{CLIENT_NAME}" and c.payload["client"] == CLIENT_NAME for c in calls)
    started = [e for e in log if e.kind == "session.started"]
    assert started and all(e.payload["trigger"] == "mcp" and e.actor == f"mcp:{CLIENT_NAME}" for e in started)
    refusals = [e for e in log if e.kind == "file.refused"]
    assert {e.payload["tool"] for e in refusals} == {"write_file", "read_file"}
    changed = [e for e in log if e.kind == "file.changed"]
    assert {e.payload["path"] for e in changed} == {"data/notes.txt", "link.txt"}


def test_an_install_is_refused_when_the_policy_asks_and_no_tui_can_answer(workbench_cmd, mcp_project):
    async def main():
        async with stdio_client(workbench_cmd, mcp_project.root) as client:
            return await client.call_tool("install", {"manager": "pip", "packages": ["tabulate"]})

    reply = run(main)
    assert reply.is_error
    text = reply.content[0].text
    assert 'approve_installs = "ask"' in text and "cannot be approved" in text and "workbench install" in text
    calls = [e for e in entries(mcp_project) if e.kind == "mcp.call"]
    assert [(c.payload["tool"], c.payload["outcome"]) for c in calls] == [("install", "refused")]
    assert calls[0].payload["arguments"] == {"manager": "pip", "packages": ["tabulate"]}
    assert not [e for e in entries(mcp_project) if e.kind.startswith("package.")]  # nothing started


def test_a_restricted_project_cannot_widen_its_policy_for_mcp_callers(workbench_cmd, mcp_project):
    # Edited behind Workbench's back: the project is untrusted, so a widening key is ignored (as in the CLI)
    # and a tightening one applies.
    config = mcp_project.state_dir / "config.toml"
    config.write_text('[agent]\napprove_installs = "auto"\napproval = "ask"\n')
    from workbench import trust

    assert not trust.state(mcp_project).trusted

    async def main():
        async with stdio_client(workbench_cmd, mcp_project.root) as client:
            install = await client.call_tool("install", {"manager": "pip", "packages": ["tabulate"]})
            execute = await client.call_tool("execute", {"language": "python", "code": "print(42)"})
            write = await client.call_tool("write_file", {"path": "x.txt", "content": "x"})
            return install, execute, write

    install, execute, write = run(main)
    assert install.is_error and 'approve_installs = "ask"' in install.content[0].text
    assert execute.is_error and '[agent] approval = "ask"' in execute.content[0].text
    assert write.is_error and not (mcp_project.workspace / "x.txt").exists()


def test_bad_calls_are_mcp_errors_and_the_server_goes_on(workbench_cmd, mcp_project):
    async def main():
        async with stdio_client(workbench_cmd, mcp_project.root) as client:
            wrong_type = await client.call_tool("install", {"manager": 3, "packages": "tabulate"})
            unknown = await client.call_tool("no_such_tool", {})
            language = await client.call_tool("execute", {"language": "cobol", "code": "x"})
            manager = await client.call_tool("install", {"manager": "nope", "packages": ["x"]})
            verify = await client.call_tool("audit_verify", {})
            return wrong_type, unknown, language, manager, verify

    wrong_type, unknown, language, manager, verify = run(main)
    assert wrong_type.is_error and "validation error" in wrong_type.content[0].text
    assert unknown.is_error and "no_such_tool" in unknown.content[0].text
    assert language.is_error and "cobol" in language.content[0].text
    assert manager.is_error and "unknown package manager" in manager.content[0].text
    assert not verify.is_error and verify.structured_content["ok"] is True
    assert verify.structured_content["entries"] > 0
    outcomes = [(e.payload["tool"], e.payload["outcome"]) for e in entries(mcp_project) if e.kind == "mcp.call"]
    assert outcomes == [("execute", "error"), ("install", "error"), ("audit_verify", "ok")]


@pytest.mark.engine
def test_python_prints_42_and_a_warm_session_keeps_a_variable(workbench_cmd, mcp_project, engine_ready):
    async def main():
        async with stdio_client(workbench_cmd, mcp_project.root) as client:
            once = await client.call_tool("execute", {"language": "python", "code": "print(6 * 7)"})
            first = await client.call_tool("execute", {"language": "python", "code": "kept = 41", "session": "mcp"})
            second = await client.call_tool("execute", {"language": "python", "code": "print(kept + 1)",
                                                        "session": "mcp"})
            failing = await client.call_tool("execute", {"language": "python", "code": "import sys; sys.exit(3)"})
            return once, first, second, failing

    once, first, second, failing = run(main)
    for reply in (once, first, second):
        assert not reply.is_error, reply.content[0].text
    assert once.structured_content["exit_code"] == 0 and once.structured_content["stdout"] == "42\n"
    assert once.structured_content["stdout_truncated"] is False and "exit code 0" in once.content[0].text
    assert second.structured_content["stdout"] == "42\n" and second.structured_content["session"] == "mcp"
    assert failing.structured_content["exit_code"] == 3 and not failing.is_error  # the code's own failure
    log = entries(mcp_project)
    by_seq = {e.seq: e for e in log}
    for reply in (once, second, failing):
        seq = reply.structured_content["audit_seq"]
        assert by_seq[seq].kind == "exec.finished"
        assert by_seq[seq].payload["execution_id"] == reply.structured_content["execution_id"]
        assert by_seq[seq].actor == f"mcp:{CLIENT_NAME}"
        assert f"audit seq {seq}" in reply.content[0].text
    assert by_seq[once.structured_content["audit_seq"]].payload["exit_code"] == 0


def test_an_open_tui_finds_the_calls_in_the_log_as_it_finds_heartbeat_runs(workbench_cmd, mcp_project):
    # The TUI learns of other processes' work by polling the audit log (its size for the Audit pane, and
    # events by actor prefix for followed runs): the same reads find an MCP call, with its trigger.
    from workbench.tui.services import Services

    services = Services()
    before = services.audit_size(mcp_project)

    async def main():
        async with stdio_client(workbench_cmd, mcp_project.root) as client:
            await client.call_tool("list_files", {})

    run(main)
    size, found = services.audit_events_from(mcp_project, before, None, "mcp:")
    assert size > before
    assert [e.kind for e in found] == ["session.started", "mcp.call", "session.finished"]
    assert found[0].payload["trigger"] == "mcp" and found[0].payload["command"] == "mcp list_files"
    assert all(e.actor == f"mcp:{CLIENT_NAME}" for e in found)


def test_export_report_writes_the_pdf_into_the_workspace_and_never_through_a_symlink(workbench_cmd, mcp_project,
                                                                                     tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, mcp_project.workspace / "reports-link")

    async def main():
        async with stdio_client(workbench_cmd, mcp_project.root) as client:
            await client.call_tool("write_file", {"path": "a.txt", "content": "something to report"})
            written = await client.call_tool("export_report", {"path": "reports/audit.pdf"})
            through = await client.call_tool("export_report", {"path": "reports-link/audit.pdf"})
            not_pdf = await client.call_tool("export_report", {"path": "reports/audit.txt"})
            return written, through, not_pdf

    written, through, not_pdf = run(main)
    assert not written.is_error, written.content[0].text
    assert written.structured_content["verified"] is True and written.structured_content["pages"] >= 1
    assert (mcp_project.workspace / "reports" / "audit.pdf").read_bytes().startswith(b"%PDF")
    assert through.is_error and "symlink" in through.content[0].text and not list(outside.iterdir())
    assert not_pdf.is_error and ".pdf" in not_pdf.content[0].text


def test_a_garbage_line_on_stdin_does_not_stop_the_server_from_answering_the_next_request(workbench_cmd, mcp_project):
    import json
    import subprocess

    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
    stdin = "this is not json\n" + json.dumps(initialize) + "\n"
    result = subprocess.run([*workbench_cmd, "mcp", "-p", str(mcp_project.root)], input=stdin, capture_output=True,
                            text=True, timeout=60, env=dict(os.environ))
    replies = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    # The SDK drops a line that is not JSON (it has no id to answer); stdout stays pure JSON-RPC.
    assert all(r.get("jsonrpc") == "2.0" for r in replies)
    answered = [r for r in replies if r.get("id") == 1]
    assert answered and answered[0]["result"]["serverInfo"]["name"] == "workbench"
    assert result.returncode == 0  # stdin closed: the server ends cleanly


def test_a_missing_project_is_one_line(workbench_cmd, tmp_path):
    import subprocess

    result = subprocess.run([*workbench_cmd, "mcp", "-p", str(tmp_path / "nope")], capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "nope" in result.stderr

"""`workbench mcp --http 127.0.0.1:PORT`: streamable HTTP on loopback behind a bearer token, driven by the
official MCP SDK's client."""

from __future__ import annotations

import json
import stat
import subprocess
import urllib.error
import urllib.request

import anyio
import pytest

from tests.mcp.conftest import CLIENT_NAME, entries, token

INITIALIZE = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}).encode()


def post(url: str, authorization: str | None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if authorization is not None:
        headers["Authorization"] = authorization
    request = urllib.request.Request(url, data=INITIALIZE, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(2000).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def test_a_request_without_the_token_or_with_a_wrong_one_gets_401(http_server):
    assert post(http_server.url, None)[0] == 401
    status, body = post(http_server.url, "Bearer not-the-token")
    assert status == 401 and "unauthorized" in body
    assert post(http_server.url, f"Basic {token()}")[0] == 401  # the token, but not as a bearer
    assert post(http_server.url, f"Bearer {token()}")[0] == 200


def test_the_token_is_stored_owner_only_in_the_user_config_folder(http_server):
    from workbench import paths
    from workbench.mcp.token import token_path

    path = token_path()
    assert path.parent == paths.user_config_dir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(token()) >= 32


def leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


def test_the_sdk_client_without_the_token_cannot_connect(http_server, mcp_project):
    from mcp import MCPError

    async def main():
        async with http_server.client(None) as client:
            await client.list_tools()

    with pytest.raises(BaseException) as raised:  # the SDK's error for the 401, inside its task groups
        anyio.run(main)
    assert any(isinstance(leaf, MCPError) for leaf in leaves(raised.value)), repr(raised.value)
    assert not [e for e in entries(mcp_project) if e.kind.startswith(("mcp.", "session."))]


def test_the_sdk_client_with_the_token_lists_tools_and_is_refused_an_install(http_server, mcp_project):
    async def main():
        async with http_server.client(token()) as client:
            tools = await client.list_tools()
            install = await client.call_tool("install", {"manager": "pip", "packages": ["tabulate"]})
            write = await client.call_tool("write_file", {"path": "over-http.txt", "content": "hi"})
            return client.server_info, tools, install, write

    info, tools, install, write = anyio.run(main)
    assert info.name == "workbench"
    assert {t.name for t in tools.tools} >= {"execute", "install", "write_file", "audit_verify"}
    assert install.is_error and "cannot be approved" in install.content[0].text
    assert not write.is_error
    calls = [e for e in entries(mcp_project) if e.kind == "mcp.call"]
    assert [(c.payload["tool"], c.payload["outcome"], c.payload["transport"]) for c in calls] == [
        ("install", "refused", "http"), ("write_file", "ok", "http")]
    assert all(c.actor == f"mcp:{CLIENT_NAME}" for c in calls)


@pytest.mark.engine
def test_python_prints_42_and_a_warm_session_keeps_a_variable_over_http(http_server, engine_ready):
    async def main():
        async with http_server.client(token()) as client:
            once = await client.call_tool("execute", {"language": "python", "code": "print(42)"})
            await client.call_tool("execute", {"language": "python", "code": "kept = 41", "session": "web"})
            later = await client.call_tool("execute", {"language": "python", "code": "print(kept + 1)",
                                                       "session": "web"})
            return once, later

    once, later = anyio.run(main)
    assert once.structured_content["stdout"] == "42\n" and once.structured_content["exit_code"] == 0
    assert later.structured_content["stdout"] == "42\n"
    assert isinstance(once.structured_content["audit_seq"], int)


@pytest.mark.parametrize("address", ["0.0.0.0:8765", "192.168.1.10:8765", "example.com:8765", "[::]:8765"])
def test_a_non_loopback_address_is_refused_in_one_line(workbench_cmd, mcp_project, address):
    result = subprocess.run([*workbench_cmd, "mcp", "-p", str(mcp_project.root), "--http", address],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "loopback only" in result.stderr


def test_a_malformed_address_is_refused_in_one_line(workbench_cmd, mcp_project):
    result = subprocess.run([*workbench_cmd, "mcp", "-p", str(mcp_project.root), "--http", "localhost"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "HOST:PORT" in result.stderr and result.stderr.count("\n") == 1


def test_print_token_shows_the_token_the_server_made(workbench_cmd, http_server):
    printed = subprocess.run([*workbench_cmd, "mcp", "--print-token"], capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0 and printed.stdout.strip() == token()


def test_malformed_json_rpc_is_an_error_and_the_server_goes_on(http_server):
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "Authorization": f"Bearer {token()}"}
    request = urllib.request.Request(http_server.url, data=b'{"jsonrpc": "2.0", "id": 1, "method": ', headers=headers,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, body = response.status, response.read(2000).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read().decode(errors="replace")
    assert status == 400 and "Parse error" in body
    assert http_server.process.poll() is None
    assert post(http_server.url, f"Bearer {token()}")[0] == 200


def test_a_request_under_another_host_name_is_refused_even_with_the_token(http_server):
    # DNS rebinding: a web page whose name resolves to 127.0.0.1 makes the browser send its own Host header.
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "Authorization": f"Bearer {token()}", "Host": "attacker.example:80"}
    request = urllib.request.Request(http_server.url, data=INITIALIZE, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    assert status in (400, 403, 421)


def test_concurrent_calls_each_get_their_session_and_the_log_still_verifies(http_server, mcp_project):
    async def main():
        async with http_server.client(token()) as client:
            replies = []

            async def one(index: int) -> None:
                replies.append(await client.call_tool("write_file", {"path": f"c/{index}.txt", "content": str(index)}))

            async with anyio.create_task_group() as group:
                for index in range(6):
                    group.start_soon(one, index)
            return replies, await client.call_tool("audit_verify", {})

    replies, verify = anyio.run(main)
    assert len(replies) == 6 and not any(r.is_error for r in replies)
    assert verify.structured_content["ok"] is True, verify.content[0].text
    calls = [e for e in entries(mcp_project) if e.kind == "mcp.call" and e.payload["tool"] == "write_file"]
    assert len({c.session_id for c in calls}) == 6
    assert sorted(p.name for p in (mcp_project.workspace / "c").iterdir()) == [f"{i}.txt" for i in range(6)]

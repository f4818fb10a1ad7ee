"""Fixtures for driving `workbench mcp` with the official MCP SDK's client, as another agent would.

The server always runs as the installed `workbench` command in a child process (stdio, or streamable
HTTP on 127.0.0.1 and a free port), with this test's isolated user folders in its environment.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.types import Implementation

from tests.conftest import need

CLIENT_NAME = "tests-mcp-client"


@pytest.fixture
def mcp_project(tmp_path):
    from workbench.project import Project

    return Project.init(tmp_path / "proj")


@pytest.fixture
def engine_ready():
    from workbench.config import Settings
    from workbench.sandbox import BASE_IMAGE, image_present, probe

    found = probe(Settings())
    need(found.reachable, f"a container engine ({found.error}; run packaging/setup-engine.sh)")
    need(image_present(settings=Settings()), f"the base image {BASE_IMAGE} (run: workbench setup)")
    return found


def stdio_client(workbench_cmd: list[str], project_root: Path, name: str = CLIENT_NAME) -> Client:
    params = StdioServerParameters(command=workbench_cmd[0], args=[*workbench_cmd[1:], "mcp", "-p", str(project_root)],
                                   env=dict(os.environ))
    return Client(params, client_info=Implementation(name=name, version="1.0"), read_timeout_seconds=300)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class HttpServer:
    def __init__(self, process: subprocess.Popen, port: int):
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}/mcp"

    def client(self, token: str | None, name: str = CLIENT_NAME) -> Client:
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        headers = {"Authorization": f"Bearer {token}"} if token is not None else None
        transport = streamable_http_client(self.url, http_client=create_mcp_http_client(headers=headers))
        return Client(transport, client_info=Implementation(name=name, version="1.0"), read_timeout_seconds=300)


@pytest.fixture
def http_server(workbench_cmd, mcp_project) -> Iterator[HttpServer]:
    port = free_port()
    process = subprocess.Popen([*workbench_cmd, "mcp", "-p", str(mcp_project.root), "--http", f"127.0.0.1:{port}"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the server exited {process.returncode}: {process.stderr.read().decode()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise AssertionError("the server did not listen within 60 s") from None
            time.sleep(0.1)
    try:
        yield HttpServer(process, port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def token() -> str:
    from workbench.mcp.token import token_path

    return token_path().read_text().strip()


def entries(project, session: str | None = None):
    from workbench.audit import AuditLog

    with AuditLog.open(project) as log:
        return list(log.entries(session=session))

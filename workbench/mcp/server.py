"""The MCP server: Workbench's tools and resources for other agents, on the official MCP Python SDK.

    build(project, transport="stdio").run_stdio_async()     # `workbench mcp -p DIR`
    serve_http(project, "127.0.0.1", 8765)                  # `workbench mcp -p DIR --http 127.0.0.1:8765`

Tools: execute, install, list_files, read_file, write_file, audit_verify, export_report (what each does,
and how it is recorded and approved: `workbench.mcp.calls`). Resources: workspace files
(`workspace://{+path}`) and the audit log's tail (`audit://tail{?count}`). The SDK validates each call's
arguments against the tool's schema, so a wrong type or an unknown tool is an MCP error and the server
goes on. Tool functions are plain functions: the SDK runs them on worker threads, so a long execution
does not hold up other requests.

Over HTTP the server listens on loopback only, and every request must carry the bearer token of
`workbench.mcp.token` (401 otherwise, before the SDK sees it).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from workbench import __version__
from workbench.errors import UsageError
from workbench.mcp import token as tokens
from workbench.mcp.calls import Caller, Reply, Tools
from workbench.project import Project

INSTRUCTIONS = (
    "Workbench runs code in a project's offline, rootless container sandbox and records every call in a "
    "signed, hash-chained audit log. Files live in /workspace (paths relative to it). Use `execute` with "
    "`session` set to keep variables between calls; `install` adds packages from the project's sources.")


def client_of(ctx: Context[Any, Any], transport: str) -> Caller:
    """Who is calling: the name from the client's initialize request (or its request envelope)."""
    name = "unknown"
    try:
        params = ctx.session.client_params
        if params is not None and params.client_info is not None and params.client_info.name:
            name = params.client_info.name
    except (AttributeError, ValueError):
        pass
    return Caller(client=name, transport=transport)


def result(reply: Reply) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=reply.text)], structured_content=reply.data,
                          is_error=not reply.ok)


def build(project: Project, transport: str = "stdio", approval_timeout: float | None = None) -> MCPServer:
    """An MCPServer whose tools and resources act on `project` (a call that asks for approval waits at most
    `approval_timeout` seconds for the open TUI: `workbench.approvals`)."""
    tools = Tools(project, approval_timeout)
    server: MCPServer = MCPServer("workbench", title="Workbench", version=__version__, instructions=INSTRUCTIONS,
                                  log_level="WARNING")
    writes = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
    reads = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(annotations=writes)
    def execute(ctx: Context, language: Annotated[str, Field(description="python, r, shell, sql, ... (see "
                                                                         "workbench doctor)")],
                code: Annotated[str, Field(description="The code to run.")],
                session: Annotated[str | None, Field(description="A warm session's name: its variables "
                                                                 "persist between calls.")] = None,
                timeout: Annotated[float | None, Field(description="Seconds (default: the project's)")] = None,
                ) -> CallToolResult:
        """Run code in the project's sandbox (no network). Returns the exit code, stdout and stderr (saying
        when they were truncated) and the audit seq of the execution's record."""
        return result(tools.execute(client_of(ctx, transport), language, code, session, timeout))

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True))
    def install(ctx: Context, manager: Annotated[str, Field(description="pip, r, apt, conda, ...")],
                packages: Annotated[list[str], Field(description="Package specs, e.g. ['tabulate==0.9.0']")],
                ) -> CallToolResult:
        """Install packages into the project (they persist). Asks for approval by default, as in Workbench."""
        return result(tools.install(client_of(ctx, transport), manager, packages))

    @server.tool(annotations=reads)
    def list_files(ctx: Context, path: Annotated[str, Field(description="A folder in the workspace")] = "",
                   ) -> CallToolResult:
        """List the workspace's files (folders end in /, symlinks show their target and are never entered)."""
        return result(tools.list_files(client_of(ctx, transport), path))

    @server.tool(annotations=reads)
    def read_file(ctx: Context, path: Annotated[str, Field(description="A file in the workspace")],
                  ) -> CallToolResult:
        """Read a workspace file (symlinks and special files are refused, long files are cut and say so)."""
        return result(tools.read_file(client_of(ctx, transport), path))

    @server.tool(annotations=writes)
    def write_file(ctx: Context, path: Annotated[str, Field(description="A file in the workspace")],
                   content: Annotated[str, Field(description="The text to write")]) -> CallToolResult:
        """Write a text file in the workspace (never through a symlink, never outside the workspace)."""
        return result(tools.write_file(client_of(ctx, transport), path, content))

    @server.tool(annotations=reads)
    def audit_verify(ctx: Context) -> CallToolResult:
        """Verify the project's audit log: the hash chain, the Merkle tree and every signed checkpoint."""
        return result(tools.audit_verify(client_of(ctx, transport)))

    @server.tool(annotations=writes)
    def export_report(ctx: Context, path: Annotated[str, Field(description="Where in the workspace "
                                                                           "(.pdf)")] = "reports/audit-report.pdf",
                      ) -> CallToolResult:
        """Write the PDF compliance report of the audit log into the workspace."""
        return result(tools.export_report(client_of(ctx, transport), path))

    @server.resource("workspace://{+path}", name="workspace-file", mime_type="application/octet-stream",
                     description="A file in the project's workspace (read through the confined walk).")
    def workspace_file(path: str, ctx: Context) -> bytes:
        return tools.workspace_file(client_of(ctx, transport), path)

    @server.resource("audit://tail{?count}", name="audit-tail", mime_type="text/plain",
                     description="The audit log's last entries (seq, time, kind, actor, session).")
    def audit_tail(ctx: Context, count: int = 50) -> str:
        return tools.audit_tail(client_of(ctx, transport), count)

    return server


def check_loopback(host: str) -> str:
    """`host` when it is a loopback address (or localhost); a one-line UsageError otherwise."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(f"--http {host}: the MCP server listens on loopback only (127.0.0.1, ::1 or localhost)",
                         "put a reverse proxy with its own authentication in front of it to reach it from elsewhere")
    return host.strip("[]")


class BearerGate:
    """ASGI middleware: an HTTP request without `Authorization: Bearer <token>` gets 401 and goes no further."""

    def __init__(self, app: Any, token: str):
        self.app = app
        self.token = token

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
            if not tokens.matches(self.token, headers.get("authorization")):
                body = b'{"error":"unauthorized: send Authorization: Bearer <the token in workbench\'s mcp-token>"}'
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def http_app(project: Project, host: str, token: str, approval_timeout: float | None = None) -> Any:
    """The ASGI app: the token gate in front of the SDK's app, which checks Host and Origin headers against
    loopback names (DNS rebinding: a web page cannot make a browser talk to it under another name)."""
    from mcp.server.transport_security import TransportSecuritySettings

    server = build(project, transport="http", approval_timeout=approval_timeout)
    names = ["127.0.0.1", "localhost", "[::1]", f"[{host}]" if ":" in host else host]
    security = TransportSecuritySettings(enable_dns_rebinding_protection=True,
                                         allowed_hosts=[f"{name}:*" for name in names],
                                         allowed_origins=[f"http://{name}:*" for name in names])
    return BearerGate(server.streamable_http_app(host=host, transport_security=security), token)


def serve_http(project: Project, host: str, port: int, on_ready: Any = None,
               approval_timeout: float | None = None) -> None:
    """Serve over streamable HTTP at http://HOST:PORT/mcp until interrupted."""
    import anyio
    import uvicorn

    host = check_loopback(host)
    app = http_app(project, host, tokens.load_or_create(), approval_timeout)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    if on_ready is not None:
        on_ready(host, port)
    anyio.run(uvicorn.Server(config).serve)

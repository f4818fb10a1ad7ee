"""`workbench mcp`: serve the project's sandbox, files and audit log to other agents over MCP.

Over stdio (the default) the client starts this command and speaks MCP on its stdin/stdout, so nothing
else may be printed there: Workbench's own lines go to stderr. With `--http HOST:PORT` it serves
streamable HTTP at http://HOST:PORT/mcp, on loopback only, and each request must carry the bearer token
stored in the user's config folder (`--print-token` shows it and where it lives). A call that needs
approval waits for a yes in the project's open TUI, at most `--approval-timeout` seconds.
"""

from __future__ import annotations

from pathlib import Path

import click

from workbench.cli.common import one_line, open_project, project_option, say
from workbench.errors import UsageError


def parse_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--http {value!r} is not HOST:PORT", "e.g. --http 127.0.0.1:8765")
    return host, int(port)


@click.command()
@project_option
@click.option("--http", "address", metavar="HOST:PORT",
              help="Serve streamable HTTP on this loopback address instead of stdio (needs the bearer token).")
@click.option("--print-token", is_flag=True, help="Print the HTTP bearer token (made on first use) and exit.")
@click.option("--approval-timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="How long a call that needs approval waits for a yes in the open TUI (default 120).")
def mcp(project_dir: Path, address: str | None, print_token: bool, approval_timeout: float | None) -> None:
    """Serve this project over MCP (stdio by default) for agents such as Claude Desktop, Goose or Zed."""
    from workbench.mcp import token

    if print_token:
        say(token.load_or_create())
        say(f"(stored in {token.token_path()})", err=True)
        return
    if address is not None:
        from workbench.mcp.server import check_loopback

        host, port = parse_address(address)
        check_loopback(host)  # refuse before anything opens
    project = open_project(project_dir)  # warns on stderr when restricted; settings are restricted then
    if address is None:
        import anyio

        from workbench.mcp.server import build

        anyio.run(build(project, transport="stdio", approval_timeout=approval_timeout).run_stdio_async)
        return
    from workbench.mcp.server import serve_http

    def ready(bound_host: str, bound_port: int) -> None:
        say(f"workbench: MCP over HTTP at http://{one_line(bound_host)}:{bound_port}/mcp for "
            f"{one_line(str(project.root))}; bearer token in {token.token_path()}", err=True)

    serve_http(project, host, port, on_ready=ready, approval_timeout=approval_timeout)

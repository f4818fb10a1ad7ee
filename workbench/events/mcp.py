"""The payload of a call another agent made through Workbench's MCP server (`workbench mcp`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.events import contract as C
from workbench.events import kinds as K
from workbench.events.contract import Payload
from workbench.events.declared import declare


@declare
@dataclass(frozen=True, slots=True)
class McpCall(Payload):
    """One tool call or resource read by an MCP client, after it ended: which `tool`, from which `client`
    (the name it gave in its initialize request) over which `transport` (stdio, http), its small
    `arguments` (code and file contents are in the exec and file events beside it), and its `outcome`:
    ok, failed (the tool ran and said no), refused (approval or the workspace's confinement said no) or
    error (bad input). `message` is the one-line reason when it was not ok."""

    KIND = K.MCP_CALL

    tool: str = C.text(required=True)
    client: str = C.text()
    transport: str = C.text()
    outcome: str = C.text()
    arguments: dict[str, Any] = C.mapping()
    message: str | None = C.text(None, omit=True)

"""Workbench as an MCP server for other agents (Claude Desktop, Goose, Zed, ...): `workbench mcp`.

`server` builds the official SDK's `MCPServer` and serves it over stdio or loopback streamable HTTP (with
a bearer token from `token`); `calls` is what each tool does, one audited work session per call.
"""

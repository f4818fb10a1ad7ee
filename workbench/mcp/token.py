"""The bearer token the MCP server's HTTP transport asks for: made once, kept in the user's config folder.

The file is `<user config>/mcp-token` (platformdirs, as the rest of Workbench; `WORKBENCH_CONFIG_DIR`
moves it), mode 0600 in a 0700 folder, created with O_EXCL so two servers starting at once agree on one
token. A client sends it as `Authorization: Bearer <token>`; anything else gets 401.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from workbench import paths
from workbench.errors import WorkbenchError

TOKEN_FILE = "mcp-token"


def token_path() -> Path:
    return paths.user_config_dir() / TOKEN_FILE


def load_or_create() -> str:
    """The token, made (32 random bytes, URL-safe) and stored 0600 on first use."""
    path = token_path()
    paths.ensure_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return read(path)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(token + "\n")
    return token


def read(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise WorkbenchError(f"cannot read the MCP token {path}: {exc.strerror or exc}",
                             f"remove {path} and start `workbench mcp --http` again to make a new one") from None
    with os.fdopen(fd, encoding="ascii", errors="replace") as handle:
        if os.fstat(handle.fileno()).st_mode & 0o077:
            os.fchmod(handle.fileno(), 0o600)  # someone loosened it: the token is a password
        token = handle.read(256).strip()
    if len(token) < 16:
        raise WorkbenchError(f"the MCP token in {path} is empty or too short",
                             f"remove {path} and start `workbench mcp --http` again to make a new one")
    return token


def matches(expected: str, authorization: str | None) -> bool:
    """Whether an `Authorization` header carries the token (compared in constant time)."""
    if not authorization:
        return False
    scheme, _, value = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), expected.encode())

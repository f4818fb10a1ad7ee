"""Where the container engine is: the endpoints worth trying, in the documented order.

First match wins:
  1. `$DOCKER_HOST`                     (unix://, tcp:// or ssh://: a remote engine is allowed)
  2. `settings.engine.host`
  3. `$XDG_RUNTIME_DIR/podman/podman.sock`  rootless Podman, the target on a user's machine
  4. `/run/podman/podman.sock`              rootful Podman (CI runs as root)
  5. `/var/run/docker.sock`                 Docker
Nothing here assumes the engine is local. The sandbox does: it bind-mounts the project's workspace, which
must therefore be on the engine's machine (documented in `workbench.sandbox.sandbox`).
"""

from __future__ import annotations

import os
from pathlib import Path

from workbench.config import Settings

ROOTFUL_PODMAN = "unix:///run/podman/podman.sock"
DOCKER = "unix:///var/run/docker.sock"


def normalise(endpoint: str) -> str:
    """A bare socket path as a unix:// URL; anything else as given."""
    return f"unix://{endpoint}" if endpoint.startswith("/") else endpoint


def socket_path(endpoint: str) -> Path | None:
    """The socket file of a unix:// endpoint; None for a network one."""
    return Path(endpoint[len("unix://"):]) if endpoint.startswith("unix://") else None


def explicit(settings: Settings | None) -> str:
    """The endpoint the user named ($DOCKER_HOST or engine.host), or ""."""
    return os.environ.get("DOCKER_HOST") or (settings.engine.host if settings is not None else "")


def candidate_endpoints(settings: Settings | None = None) -> list[str]:
    """Every endpoint worth trying, in the documented order (duplicates dropped)."""
    found: list[str] = []
    if os.environ.get("DOCKER_HOST"):
        found.append(os.environ["DOCKER_HOST"])
    if settings is not None and settings.engine.host:
        found.append(settings.engine.host)
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR") or (f"/run/user/{os.getuid()}" if os.getuid() else "")
    if runtime_dir:
        found.append(f"unix://{runtime_dir}/podman/podman.sock")
    found += [ROOTFUL_PODMAN, DOCKER]
    return list(dict.fromkeys(normalise(e) for e in found))


def find_endpoint(settings: Settings | None = None) -> str:
    """The endpoint to use: an explicit one as given; otherwise the first socket that exists."""
    named = explicit(settings)
    if named:
        return normalise(named)
    for endpoint in candidate_endpoints(settings):
        path = socket_path(endpoint)
        if path is None or path.exists():
            return endpoint
    return candidate_endpoints(settings)[-1]

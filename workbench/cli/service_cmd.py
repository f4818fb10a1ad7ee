"""`workbench service`: the project's sandbox service (see `workbench.service`): is it running, stop it."""

from __future__ import annotations

import socket
from pathlib import Path

import click

from workbench.cli.common import project_option, say


def _connect(project_dir: Path) -> tuple[socket.socket | None, str]:
    from workbench.service import wire
    from workbench.service.client import Call, project_root

    root = project_root(str(project_dir))
    try:
        call = Call(root, {})
        return (call.try_connect() if wire.check_socket(call.folder) else None), call.folder
    except wire.Unusable as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def service() -> None:
    """The project's sandbox service: a background process that keeps the engine connection and a running
    container, so `workbench exec` costs one exec. It starts on the first `workbench exec` and ends after
    WORKBENCH_SERVICE_IDLE seconds (default 300) without a call. WORKBENCH_SERVICE=0 or `exec --no-service`
    runs without it."""


@service.command("status")
@project_option
def service_status(project_dir: Path) -> None:
    """Say whether the project's service runs (its pid and its folder)."""
    from workbench.service import wire

    sock, folder = _connect(project_dir)
    if sock is None:
        say(f"not running ({folder})")
        return
    pid, _uid, _gid = wire.peer(sock)
    sock.close()
    say(f"running: pid {pid} ({folder})")


@service.command("stop")
@project_option
def service_stop(project_dir: Path) -> None:
    """End the project's service now (running executions are cancelled; its container is removed)."""
    from workbench.service import wire

    sock, _folder = _connect(project_dir)
    if sock is None:
        say("no service was running")
        return
    frames = wire.Frames(sock)
    try:
        frames.send(b"Q")
        frames.recv()
    except (OSError, EOFError, ValueError):
        pass
    finally:
        sock.close()
    say("stopped")

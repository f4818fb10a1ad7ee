"""The service's one idle one-off container, handed from one call's sandbox to the next.

In-process, each `workbench exec` opens a `Sandbox` that creates a container at its first execution and
removes it at its close (about a third of a second of engine work). In the service, each call still opens
its own `Sandbox` the usual way (its own bus, session, actor, settings, image lookup, stale-container
sweep and `sandbox.started` event), but over the service's engine connection, and it starts with the
container the previous call left, when that container was made for the same image, settings and
container code (`key`), with its /tmp (the code's HOME) emptied before the call's first execution. At its close the container is kept for the next call instead of removed, when no
execution of the call is still running in it (the one-off slot is free: the wrapper that ran the code has
ended, and with it every process the code started). Anything else is removed as before: a container of
another key (the config, the image or Workbench changed), a second idle one, one whose call failed.

A kept container that stopped or was killed in the meantime is replaced by `Sandbox.ensure_running`
at the next execution, as inside one in-process session.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from workbench.config import Settings
from workbench.events import EventBus
from workbench.project import Project
from workbench.sandbox import Sandbox
from workbench.sandbox import container as container_code
from workbench.sandbox.engine import Engine

log = logging.getLogger(__name__)


class SharedEngine:
    """The service's engine connection, lent to one call's sandbox: its `close` leaves it open."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def close(self) -> None:
        """The service closes the connection when it ends, not each call."""


@dataclass(frozen=True)
class Idle:
    key: str
    container: str
    oom_kill_count: int


def key(sandbox: Sandbox) -> str:
    """What a container was made from: a container is reused only for the same image, settings and code."""
    settings: Settings = sandbox.settings
    # whether the session serves databases: a container made without the /run/workbench/pg mount is no
    # use to a session whose policy now allows one (the policy lives beside the settings, not in them)
    databases = str(getattr(sandbox, "databases", None) is not None)
    databases += str(getattr(sandbox, "http", None) is not None)  # and whether it sits behind the HTTP proxy
    text = "\0".join([sandbox.project.id, sandbox.image, settings.model_dump_json(), container_code.digest(),
                      databases])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


SWEEP_SECONDS = 30.0  # how often the service looks for containers crashed processes left (in-process: every open)


class PooledSandbox(Sandbox):
    """A call's sandbox in the service: at its close, its container goes back to the pool when reusable."""

    pool: Pool | None = None
    last_sweep = [0.0]  # the service's last sweep for stale containers (one service per process)

    def remove_stale(self) -> int:
        """The sweep `Sandbox.open` makes, at most every SWEEP_SECONDS in the service (two engine calls,
        a tenth of a call's time): what it removes is left by processes that died, which is rare, and it
        records nothing."""
        now = time.monotonic()
        if now - self.last_sweep[0] < SWEEP_SECONDS:
            return 0
        self.last_sweep[0] = now
        return super().remove_stale()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.give_back(self)
        super().close()


class Pool:
    def __init__(self, engine: Engine):
        self.engine = SharedEngine(engine)
        self.lock = threading.Lock()
        self.idle: Idle | None = None

    def open_sandbox(self, project: Project, *, bus: EventBus | None = None, session_id: str | None = None,
                     actor: str | None = None, settings: Settings | None = None) -> Sandbox:
        """`Sandbox.open` for one call (a `workbench.session.SandboxOpener`), over the shared engine,
        with the idle container when it fits."""
        sandbox = PooledSandbox.open(project, bus=bus, session_id=session_id, actor=actor, settings=settings,
                                     engine=self.engine)  # type: ignore[arg-type]
        sandbox.pool = self
        wanted = key(sandbox)
        with self.lock:
            idle, self.idle = self.idle, None
        if idle is not None and idle.key == wanted:
            sandbox.container, sandbox.oom_kill_count = idle.container, idle.oom_kill_count
            sandbox.scrub_tmp = True  # this call is a session of its own: nothing the last one left in /tmp
        elif idle is not None:  # made for another config, image or code: stale
            self.remove(idle.container)
        return sandbox

    def give_back(self, sandbox: Sandbox) -> None:
        container = sandbox.container
        if container is None:
            return
        if not sandbox.one_at_a_time.acquire(blocking=False):
            return  # an execution still runs in it (the call failed midway): Sandbox.close removes it
        sandbox.one_at_a_time.release()
        with self.lock:
            if self.idle is not None:
                return  # one idle container is enough: this one is removed by Sandbox.close
            self.idle = Idle(key(sandbox), container, sandbox.oom_kill_count)
        sandbox.container = None

    def remove(self, container: str) -> None:
        try:
            self.engine.remove(container, force=True)
        except Exception as exc:  # noqa: BLE001 - the next sweep by label removes it
            log.warning("could not remove container %s: %s", container[:12], exc)

    def close(self) -> None:
        """At the service's end: the idle container goes, then the engine connection."""
        with self.lock:
            idle, self.idle = self.idle, None
        if idle is not None:
            self.remove(idle.container)
        self.engine.engine.close()

"""A session's database access: PgBouncer, the relay in front of it, and the mount the container gets.

`DatabaseAccess.open` does nothing for a project whose policy has no `postgres://` rule (no PgBouncer, no
mount: the container is exactly as without this module). With rules it starts PgBouncer
(`workbench.network.pgbouncer`) and the relay (`workbench.network.pgrelay`) for the session, and
`container_mounts()` is the one mount the sandbox adds to its containers, one-off and warm alike: the
project's `.workbench/pg/` folder, read-only, at /run/workbench/pg. `close()` stops both with the session.

The folder is stable (never replaced): a warm-session container outlives the process that made it and
keeps its mount of this very folder, so the next session's relay socket appears in it. Between sessions
there is no socket there and a connection is refused ("No such file"), which is the point: no session,
no database. The folder belongs to the uid code runs as on the host (0700), and its socket is 0600, so
only the sandbox and Workbench reach it.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.events.bus import Event, EventBus
from workbench.events.database import NetConnection
from workbench.events.kinds import EXEC_FINISHED, EXEC_STARTED
from workbench.languages import Language
from workbench.network.pgbouncer import DatabaseAccessError, PgBouncer, Target, targets
from workbench.network.pgrelay import Connection, Relay
from workbench.sandbox.spec import ContainerSpec, Mount

MOUNT = "/run/workbench/pg"  # what code names: psql "host=/run/workbench/pg dbname=DBNAME"
FOLDER = "pg"  # in the project's .workbench/

Emit = Callable[[NetConnection], None]


def host_folder(state_dir: Path, owner: tuple[int, int] | None, name: str = FOLDER) -> Path:
    """`.workbench/pg` (or `name`: the HTTP proxy's `http`), made if missing, 0700 and owned by `owner`
    (code's host uid) when given. A symlink or file in its place (a received project's) is removed, never
    followed."""
    folder = state_dir / name
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        os.unlink(folder)
        st = None
    if st is None:
        os.mkdir(folder, 0o700)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, 0o700)
        if owner is not None:
            os.fchown(fd, *owner)
    finally:
        os.close(fd)
    return folder


def policy_rules(project_root: Path) -> list[object]:
    """The project's `postgres://` rules (an untrusted project's policy is the policy module's to drop)."""
    from workbench.network.rules import load_policy

    return list(load_policy(project_root).databases)


def vault_secret(name: str) -> str:
    from workbench.network.secrets import get_secret

    return get_secret(name)


class DatabaseAccess:
    """PgBouncer and its relay for one session; `None` from `open` when there is nothing to serve.

    When PgBouncer cannot serve (it is not installed, a rule's secret is not in the vault, it would not
    start), the session still opens and every other language runs as usual: `problem` is that one line,
    the relay answers each database connection with it (a FATAL error code sees, and a refused
    `net.connection`), and `--lang sql --db` says it before running anything."""

    def __init__(self, folder: Path, found: list[Target], bouncer: PgBouncer | None, relay: Relay,
                 problem: str = "", unsubscribe: Callable[[], None] | None = None):
        self.folder, self.targets, self.bouncer, self.relay = folder, found, bouncer, relay
        self.problem = problem
        self.unsubscribe = unsubscribe

    @classmethod
    def open(cls, state_dir: Path, project_root: Path, emit: Emit, owner: tuple[int, int] | None = None, *,
             rules: Iterable[object] | None = None, secret: Callable[[str], str] | None = None,
             bus: EventBus | None = None) -> DatabaseAccess | None:
        """`bus`: the session's, whose exec.started / exec.finished say which execution a connection is
        part of."""
        found = targets(policy_rules(project_root) if rules is None else rules)
        if not found:
            return None
        running = Running()
        unsubscribe = bus.subscribe(running.see, kinds=[EXEC_STARTED, EXEC_FINISHED]) if bus else None
        bouncer: PgBouncer | None = None
        problem = ""
        try:
            bouncer = PgBouncer(found, secret or vault_secret).start()
        except WorkbenchError as exc:  # an unknown secret, PgBouncer missing or failing: said, not fatal
            problem = exc.one_line()
        try:
            folder = host_folder(state_dir, owner)
            upstream = bouncer.socket_path if bouncer is not None else None
            relay = Relay(folder, upstream, found, _reporter(emit), owner, refusal=problem,
                          running=running.now).start()
        except BaseException:
            if bouncer is not None:
                bouncer.stop()
            if unsubscribe is not None:
                unsubscribe()
            raise
        return cls(folder, found, bouncer, relay, problem, unsubscribe)

    def container_mounts(self) -> tuple[Mount, ...]:
        return (Mount(str(self.folder), MOUNT, read_only=True),)

    def databases(self) -> list[str]:
        return [t.dbname for t in self.targets]

    def close(self) -> None:
        if self.unsubscribe is not None:
            self.unsubscribe()
        try:
            self.relay.stop()
        finally:
            if self.bouncer is not None:
                self.bouncer.stop()


class Running:
    """The executions started and not yet finished, in the order they started (from the session's bus)."""

    def __init__(self) -> None:
        self.ids: dict[str, None] = {}
        self.lock = threading.Lock()

    def see(self, event: Event) -> None:
        execution = str(event.payload.get("execution_id", ""))
        with self.lock:
            if event.kind == EXEC_STARTED and execution:
                self.ids[execution] = None
            else:
                self.ids.pop(execution, None)

    def now(self) -> str:
        with self.lock:
            return next(reversed(self.ids), "")


def with_access(spec: ContainerSpec, access: DatabaseAccess | None) -> ContainerSpec:
    """The sandbox's hook: `spec` with the database socket's folder mounted when the session has access."""
    return spec if access is None else spec.with_mounts(*access.container_mounts())


def _reporter(emit: Emit) -> Callable[[Connection, float], None]:
    def report(conn: Connection, duration: float) -> None:
        emit(NetConnection(database=conn.database, role=conn.role, credential=conn.credential,
                           duration=round(duration, 6), bytes_up=conn.bytes_up, bytes_down=conn.bytes_down,
                           refused=conn.refused, execution_id=conn.execution_id))

    return report


# `--lang sql --db NAME`: psql on /run/workbench/pg, output as a table (like sqlite3 -box). Not in the
# languages registry: it runs only with a database the session serves, so the agent's grammar and the
# pickers never offer it bare. psql is Debian's postgresql-client, installed into the project image on
# its first use like any language's apt packages (the base image stays as it is).
POSTGRES = Language(
    "postgres", ".sql", ("psql", "-X", "-v", "ON_ERROR_STOP=1", "-P", "pager=off", "-P", "border=2",
                         "-P", "linestyle=unicode", "-d", f"host={MOUNT} dbname={{database}}", "-f", "{file}"),
    "PostgreSQL through the session's PgBouncer, output as a table", apt=("postgresql-client",),
    highlight="sql")
SQL_NAMES = ("sql", "sqlite")


def language_for(access: DatabaseAccess | None, language: str, database: str | None) -> str | Language:
    """The language an execution runs as: `language`, or with `--db NAME` psql on that database, once NAME
    is a database the session serves. One line saying what to do otherwise."""
    from workbench.errors import UsageError
    from workbench.inert import one_line

    if database is None:
        return language
    if language not in SQL_NAMES:
        raise UsageError(f"--db goes with --lang sql, not {one_line(language)!r}")
    if access is None:
        raise UsageError("the project's network policy allows no PostgreSQL database",
                         "workbench network allow -p DIR postgres://HOST[:PORT]/DBNAME --credential NAME")
    if database not in access.databases():
        raise UsageError(f"the database {one_line(database)!r} is not in the project's network policy "
                         f"(allowed: {', '.join(access.databases())})", "see: workbench network list")
    if access.problem:
        raise DatabaseAccessError(access.problem)
    return POSTGRES

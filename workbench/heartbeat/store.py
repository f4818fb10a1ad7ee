"""Schedules and their runs, kept in the project's `.workbench/state.db` (SQLite, WAL).

Schema changes are named steps recorded with `PRAGMA user_version`, so a project made by an older
Workbench opens.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from workbench.errors import UsageError, WorkbenchError
from workbench.heartbeat.schedule import Schedule
from workbench.wal import enable_wal

MIGRATIONS: list[tuple[str, str]] = [
    ("create heartbeat tables", """
        CREATE TABLE IF NOT EXISTS heartbeat_schedules (
            name TEXT PRIMARY KEY, cron TEXT NOT NULL, timezone TEXT NOT NULL, kind TEXT NOT NULL,
            task TEXT NOT NULL, language TEXT NOT NULL, code TEXT NOT NULL, timeout REAL NOT NULL,
            missed TEXT NOT NULL, approval TEXT NOT NULL, paused INTEGER NOT NULL,
            created TEXT NOT NULL, created_by TEXT NOT NULL,
            anchor TEXT NOT NULL            -- fire times are computed after this moment
        );
        CREATE TABLE IF NOT EXISTS heartbeat_runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT, schedule TEXT NOT NULL, due TEXT NOT NULL,
            started TEXT NOT NULL, finished TEXT, outcome TEXT NOT NULL, exit_code INTEGER,
            session_id TEXT, detail TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX IF NOT EXISTS heartbeat_runs_by_schedule ON heartbeat_runs(schedule, id);
    """),
]
# heartbeat tables use their own version key so other users of state.db keep theirs
VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER)"


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    schedule: str
    due: datetime
    started: datetime
    finished: datetime | None
    outcome: str  # running | succeeded | failed | timed-out | skipped | error
    exit_code: int | None
    session_id: str | None
    detail: str


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class ScheduleStore:
    def __init__(self, db_path: Path):
        self.db_path = db_path
        try:
            self._db = sqlite3.connect(db_path, timeout=30, isolation_level=None, check_same_thread=False)
            enable_wal(lambda sql: str(self._db.execute(sql).fetchone()[0]), (sqlite3.OperationalError,))
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise WorkbenchError(f"cannot open the schedule store {db_path}: {exc}") from exc

    def _migrate(self) -> None:
        self._db.execute(VERSION_TABLE)
        row = self._db.execute("SELECT version FROM schema_versions WHERE component='heartbeat'").fetchone()
        version = row[0] if row else 0
        for number, (_name, sql) in enumerate(MIGRATIONS, start=1):
            if number > version:
                with self._transaction():
                    for statement in _split(sql):
                        self._db.execute(statement)
                    self._db.execute("INSERT OR REPLACE INTO schema_versions VALUES ('heartbeat', ?)", (number,))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _own_change(self):
        """Workbench's own change to the schedules keeps a trusted project trusted (workbench.trust): this
        store is the one way Workbench writes them, so it is where trust follows them."""
        from workbench.project import own_change_of

        return own_change_of(self.db_path)

    # --- schedules -------------------------------------------------------------------------------
    def add(self, schedule: Schedule, now: datetime) -> None:
        try:
            with self._own_change(), self._transaction():
                self._db.execute(
                    "INSERT INTO heartbeat_schedules VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (schedule.name, schedule.cron, schedule.timezone, schedule.kind, schedule.task,
                     schedule.language, schedule.code, schedule.timeout, schedule.missed, schedule.approval,
                     int(schedule.paused), _iso(schedule.created or now), schedule.created_by, _iso(now)))
        except sqlite3.IntegrityError as exc:
            raise UsageError(f"a schedule named {schedule.name!r} exists already",
                             "choose another --name or remove it first") from exc

    def get(self, name: str) -> Schedule:
        row = self._db.execute("SELECT * FROM heartbeat_schedules WHERE name=?", (name,)).fetchone()
        if row is None:
            raise UsageError(f"no schedule named {name!r}", "see: workbench heartbeat list")
        return _schedule(row)

    def all(self) -> list[Schedule]:
        return [_schedule(r) for r in self._db.execute("SELECT * FROM heartbeat_schedules ORDER BY name")]

    def remove(self, name: str) -> None:
        self.get(name)
        with self._own_change(), self._transaction():
            self._db.execute("DELETE FROM heartbeat_schedules WHERE name=?", (name,))

    def set_paused(self, name: str, paused: bool, now: datetime) -> None:
        self.get(name)
        with self._transaction():
            # resuming re-anchors, so a long pause is not a pile of missed runs
            if paused:
                self._db.execute("UPDATE heartbeat_schedules SET paused=1 WHERE name=?", (name,))
            else:
                self._db.execute("UPDATE heartbeat_schedules SET paused=0, anchor=? WHERE name=?",
                                 (_iso(now), name))

    def anchor(self, name: str) -> datetime:
        row = self._db.execute("SELECT anchor FROM heartbeat_schedules WHERE name=?", (name,)).fetchone()
        if row is None:
            raise UsageError(f"no schedule named {name!r}")
        return datetime.fromisoformat(row[0])

    def set_anchor(self, name: str, moment: datetime) -> None:
        with self._transaction():
            self._db.execute("UPDATE heartbeat_schedules SET anchor=? WHERE name=?", (_iso(moment), name))

    # --- runs ------------------------------------------------------------------------------------
    def start_run(self, name: str, due: datetime, now: datetime) -> int:
        with self._transaction():
            cursor = self._db.execute(
                "INSERT INTO heartbeat_runs (schedule, due, started, outcome) VALUES (?,?,?, 'running')",
                (name, _iso(due), _iso(now)))
            self._db.execute("UPDATE heartbeat_schedules SET anchor=? WHERE name=?", (_iso(due), name))
        return int(cursor.lastrowid)

    def finish_run(self, run_id: int, now: datetime, outcome: str, exit_code: int | None,
                   session_id: str | None, detail: str) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE heartbeat_runs SET finished=?, outcome=?, exit_code=?, session_id=?, detail=? WHERE id=?",
                (_iso(now), outcome, exit_code, session_id, detail[:2000], run_id))

    def record_skipped(self, name: str, due: datetime, now: datetime, detail: str) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT INTO heartbeat_runs (schedule, due, started, finished, outcome, detail) "
                "VALUES (?,?,?,?, 'skipped', ?)", (name, _iso(due), _iso(now), _iso(now), detail))
            self._db.execute("UPDATE heartbeat_schedules SET anchor=? WHERE name=?", (_iso(due), name))

    def last_run(self, name: str) -> Run | None:
        row = self._db.execute("SELECT * FROM heartbeat_runs WHERE schedule=? ORDER BY id DESC LIMIT 1",
                               (name,)).fetchone()
        return _run(row) if row else None

    def runs(self, name: str | None = None) -> list[Run]:
        if name is None:
            rows = self._db.execute("SELECT * FROM heartbeat_runs ORDER BY id")
        else:
            rows = self._db.execute("SELECT * FROM heartbeat_runs WHERE schedule=? ORDER BY id", (name,))
        return [_run(r) for r in rows]

    def close(self) -> None:
        self._db.close()


def _split(sql: str) -> list[str]:
    return [statement.strip() for statement in sql.split(";") if statement.strip()]


def _schedule(row: tuple) -> Schedule:
    (name, cron, timezone, kind, task, language, code, timeout, missed, approval, paused, created,
     created_by, _anchor) = row
    return Schedule(name=name, cron=cron, timezone=timezone, kind=kind, task=task, language=language, code=code,
                    timeout=timeout, missed=missed, approval=approval, paused=bool(paused),
                    created=datetime.fromisoformat(created), created_by=created_by)


def _run(row: tuple) -> Run:
    run_id, schedule, due, started, finished, outcome, exit_code, session_id, detail = row
    return Run(run_id, schedule, datetime.fromisoformat(due), datetime.fromisoformat(started), _time(finished),
               outcome, exit_code, session_id, detail)

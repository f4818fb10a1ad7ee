"""A schedule: when to run (a cron expression in a time zone) and what (an agent task or a fixed script).

Cron expressions are parsed by croniter, which also handles daylight-saving changes: a time that does
not exist on the day clocks spring forward fires at the first valid minute after it. A time that occurs
twice when they fall back fires once for schedules on specific hours (croniter alone would fire twice;
`Schedule.next_after` adds the rule).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from workbench.errors import UsageError

Kind = Literal["task", "script"]
MissedPolicy = Literal["run-once", "skip"]
ApprovalMode = Literal["auto", "deny"]  # never "ask": nobody is there at 3 a.m.

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def parse_timezone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UsageError(f"unknown time zone {name!r}", "use an IANA name such as Europe/Berlin or UTC") from exc


def validate_cron(expression: str) -> str:
    expression = " ".join(expression.split())
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise UsageError(f"invalid cron expression {expression!r}",
                         "five fields: minute hour day-of-month month day-of-week, e.g. '0 7 * * 1-5'")
    return expression


def local_timezone_name() -> str:
    """The machine's IANA zone name when it can be found, else UTC."""
    try:
        from pathlib import Path

        link = Path("/etc/localtime").resolve()
        if "zoneinfo/" in str(link):
            return str(link).split("zoneinfo/", 1)[1]
    except OSError:
        pass
    return "UTC"


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    cron: str
    timezone: str
    kind: Kind
    task: str = ""  # for kind == "task"
    language: str = ""  # for kind == "script"
    code: str = ""
    timeout: float = 900.0
    missed: MissedPolicy = "run-once"
    approval: ApprovalMode = "auto"
    paused: bool = False
    created: datetime | None = None
    created_by: str = ""

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise UsageError(f"invalid schedule name {self.name!r}",
                             "use letters, digits, '.', '_' or '-' (up to 64)")
        validate_cron(self.cron)
        parse_timezone(self.timezone)
        if self.kind == "task" and not self.task.strip():
            raise UsageError("an agent schedule needs --task")
        if self.kind == "script" and (not self.language or not self.code):
            raise UsageError("a script schedule needs --lang and --code FILE")
        if self.timeout <= 0:
            raise UsageError("--timeout must be positive")

    @property
    def actor(self) -> str:
        return f"heartbeat:{self.name}"

    @property
    def zone(self) -> tzinfo:
        return parse_timezone(self.timezone)

    def next_after(self, moment: datetime) -> datetime:
        """The first fire time strictly after `moment` (aware), in the schedule's zone."""
        if moment.tzinfo is None:
            raise ValueError("moment must be timezone-aware")
        local = moment.astimezone(self.zone)
        fires = croniter(self.cron, local)
        candidate = fires.get_next(datetime)
        if self._fixed_hours:
            # When clocks fall back, the same wall-clock time happens twice; a job set for specific
            # hours runs once that day (as classic cron does), jobs on every hour keep their rhythm.
            while candidate.replace(tzinfo=None) <= local.replace(tzinfo=None):
                candidate = fires.get_next(datetime)
        return candidate

    @property
    def _fixed_hours(self) -> bool:
        hour_field = self.cron.split()[1]
        return not hour_field.startswith("*")

    def with_paused(self, paused: bool) -> Schedule:
        return replace(self, paused=paused)

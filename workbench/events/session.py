"""Payloads of a session's frame and of errors."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.events import contract as C
from workbench.events import kinds as K
from workbench.events.contract import Payload
from workbench.events.declared import declare


@declare
@dataclass(frozen=True, slots=True)
class SessionStarted(Payload):
    """A session opened. `command` names the CLI command that opened it; a scheduled run adds its
    `schedule`, `cron`, `due`, `kind` and `created_by` (each left out where it does not apply)."""

    KIND = K.SESSION_STARTED

    trigger: str = C.text()
    project: str = C.text()
    project_id: str = C.text()
    workbench_version: str = C.text()
    command: str | None = C.text(None, omit=True)
    schedule: str | None = C.text(None, omit=True)
    cron: str | None = C.text(None, omit=True)
    due: str | None = C.text(None, omit=True)
    kind: str | None = C.text(None, omit=True)
    created_by: str | None = C.text(None, omit=True)


@declare
@dataclass(frozen=True, slots=True)
class SessionFinished(Payload):
    KIND = K.SESSION_FINISHED

    outcome: str = C.text()


@declare
@dataclass(frozen=True, slots=True)
class Error(Payload):
    """Something the record must show. Each producer says what it can: `where` (memory, llm, a tool,
    `pip install`), `what` it was doing, the agent's `step`, or for a scheduled run its `source`
    (heartbeat), `schedule`, `outcome` and `detail`; `message` is the one-line error."""

    KIND = K.ERROR

    message: str | None = C.text(None, omit=True)
    where: str | None = C.text(None, omit=True)
    what: str | None = C.text(None, omit=True)
    step: int | None = C.integer(omit=True)
    source: str | None = C.text(None, omit=True)
    schedule: str | None = C.text(None, omit=True)
    outcome: str | None = C.text(None, omit=True)
    detail: str | None = C.text(None, omit=True)
    error: str | None = C.text(None, legacy=True)  # the first logs' name for `message`
    text: str | None = C.text(None, legacy=True)  # likewise

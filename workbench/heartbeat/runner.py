"""Run one schedule, unattended, sandboxed and audited like any other run.

A script schedule runs its code in the project's sandbox; an agent schedule runs the agent loop with
the approval mode the schedule names (never interactive). Either way the work session's actor is
`heartbeat:<name>`, so the audit log and the report say who triggered it. `watch`, when given, is handed
the run's event bus as soon as the session is open (the TUI streams the run's output live through it) and
returns a function that stops watching, called when the run ends.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from workbench import events
from workbench.events import EventBus
from workbench.heartbeat.schedule import Schedule
from workbench.heartbeat.scheduler import RunOutcome
from workbench.project import Project
from workbench.session import WorkSession

Watch = Callable[[EventBus], Callable[[], None]]


def run_schedule(project: Project, schedule: Schedule, due: datetime, watch: Watch | None = None) -> RunOutcome:
    details = {"schedule": schedule.name, "cron": schedule.cron, "due": due.isoformat(),
               "kind": schedule.kind, "created_by": schedule.created_by}
    with WorkSession.open(project, actor=schedule.actor, trigger=schedule.actor, details=details) as session:
        stop_watching = watch(session.bus) if watch is not None else None
        try:
            return _run(session, schedule)
        finally:
            if stop_watching is not None:
                stop_watching()


def _run(session: WorkSession, schedule: Schedule) -> RunOutcome:
    """One run, then what a failure leaves behind."""
    if schedule.kind == "script":
        outcome = _run_script(session, schedule)
    else:
        outcome = _run_task(session, schedule)
    if outcome.outcome != "succeeded":
        session.emit(events.ERROR, events.Error(source="heartbeat", schedule=schedule.name, outcome=outcome.outcome,
                                                detail=outcome.detail))
        if schedule.kind == "script":  # an agent run already ends with its own session note
            _remember_failure(session, schedule, outcome)
    return outcome


def _run_script(session: WorkSession, schedule: Schedule) -> RunOutcome:
    result = session.sandbox.execute(schedule.language, schedule.code, timeout=schedule.timeout).result()
    if result.timed_out:
        return RunOutcome("timed-out", result.exit_code, session.session_id,
                          f"stopped after the {schedule.timeout:g} s timeout")
    if result.ok:
        return RunOutcome("succeeded", result.exit_code, session.session_id, "")
    tail = result.stderr.text().strip().splitlines()[-1:] or [""]
    return RunOutcome("failed", result.exit_code, session.session_id,
                      f"exit {result.exit_code}{': ' + tail[0][:200] if tail[0] else ''}")


def _run_task(session: WorkSession, schedule: Schedule) -> RunOutcome:
    from workbench.heartbeat import agent_bridge

    return agent_bridge.run_task(session, schedule)


def _remember_failure(session: WorkSession, schedule: Schedule, outcome: RunOutcome) -> None:
    """Leave a note in memory, where memory exists, so the next session knows the run failed."""
    try:
        from workbench.memory import MemoryStore

        store = MemoryStore.for_session(session)
        store.add(f"Scheduled run '{schedule.name}' {outcome.outcome}: {outcome.detail}",
                  title=f"heartbeat {schedule.name} {outcome.outcome}", tags=("heartbeat", "failure"),
                  session=session.session_id)
    except Exception as exc:  # memory is a courtesy here; the audit log already holds the failure
        session.emit(events.ERROR, events.Error(
            source="heartbeat", schedule=schedule.name,
            detail=f"could not write the failure note: {type(exc).__name__}: {exc}"))

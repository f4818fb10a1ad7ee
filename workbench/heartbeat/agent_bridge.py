"""Run an agent task for a schedule: the same `run_task` as `workbench run`, with no human to ask.

The schedule's approval mode replaces the prompt: `auto` approves every action (they all run in the
sandbox anyway), `deny` refuses whatever the project's policy would have asked about. The schedule's
timeout can only shorten the agent's wall clock.
"""

from __future__ import annotations

from workbench.agent.llm import open_model
from workbench.agent.outcome import summarize
from workbench.agent.runner import run_task as run_agent_task
from workbench.heartbeat.schedule import Schedule
from workbench.heartbeat.scheduler import RunOutcome
from workbench.session import WorkSession


def run_task(session: WorkSession, schedule: Schedule) -> RunOutcome:
    model = open_model(session.settings.model)
    try:  # the loop runs on this thread, so the model is closed only after it returned
        outcome = run_agent_task(session, schedule.task, model, approve=lambda _action: schedule.approval == "auto",
                                 wall_clock=schedule.timeout)
    finally:
        model.close()
    if outcome.success:
        return RunOutcome("succeeded", 0, session.session_id, outcome.answer[:500])
    state = "timed-out" if outcome.reason == "wall_clock" else "failed"
    return RunOutcome(state, 1, session.session_id, summarize(outcome))

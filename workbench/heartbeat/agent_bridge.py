"""Run an agent task for a schedule: the same loop as `workbench run`, with no human to ask.

The schedule's approval mode replaces the prompt: `auto` approves every action (they all run in the
sandbox anyway), `deny` refuses whatever the project's policy would have asked about.
"""

from __future__ import annotations

from workbench.agent.llm import open_model
from workbench.agent.loop import AgentLoop, Budgets, Policy, summarize
from workbench.heartbeat.schedule import Schedule
from workbench.heartbeat.scheduler import RunOutcome
from workbench.session import WorkSession


def run_task(session: WorkSession, schedule: Schedule) -> RunOutcome:
    settings = session.settings
    model = open_model(settings.model)
    try:
        agent = settings.agent
        policy = Policy(executions=agent.approval, installs=agent.approve_installs)
        budgets = Budgets(max_steps=agent.max_steps, max_tokens=agent.max_tokens,
                          wall_clock=min(agent.wall_clock, schedule.timeout), exec_timeout=settings.sandbox.timeout)
        actor = f"agent:workbench/{model.name}"
        loop = AgentLoop(model, session.sandbox, emit=lambda kind, payload: session.emit(kind, payload, actor=actor),
                         workspace=session.project.workspace, budgets=budgets, policy=policy,
                         approve=lambda _action: schedule.approval == "auto")
        outcome = loop.run(schedule.task)
    finally:
        model.close()
    if outcome.success:
        return RunOutcome("succeeded", 0, session.session_id, outcome.answer[:500])
    state = "timed-out" if outcome.reason == "wall_clock" else "failed"
    return RunOutcome(state, 1, session.session_id, summarize(outcome))

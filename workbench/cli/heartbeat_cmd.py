"""`workbench heartbeat`: scheduled, unattended runs."""

from __future__ import annotations

import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import click

from workbench.cli.common import one_line, open_project, project_option, say
from workbench.errors import UsageError
from workbench.events import current_user


def _store(project_dir: Path):
    from workbench.heartbeat.store import ScheduleStore

    project = open_project(project_dir)
    return project, ScheduleStore(project.state_db)


@click.group()
def heartbeat() -> None:
    """Scheduled, unattended agent runs and scripts (cron expressions with time zones)."""


@heartbeat.command()
@project_option
@click.option("--name", help="A short name (default: derived from the task or the file).")
@click.option("--cron", required=True, help='Five cron fields, e.g. "0 7 * * 1-5".')
@click.option("--tz", "timezone", help="IANA time zone of the cron fields (default: this machine's).")
@click.option("--task", help="An agent task to run.")
@click.option("--lang", "language", help="With --code: the script's language.")
@click.option("--code", "code_file", type=click.Path(path_type=Path), help="A script file to run instead of a task.")
@click.option("--timeout", type=float, default=900.0, show_default=True, help="Seconds a run may take.")
@click.option("--missed", type=click.Choice(["run-once", "skip"]), default="run-once", show_default=True,
              help="What to do about fire times missed while no scheduler ran.")
@click.option("--approve", "approval", type=click.Choice(["auto", "deny"]),
              help="Non-interactive approval for agent runs: run everything, or deny what would ask. "
                   "Required for tasks when the project asks for approval.")
def add(project_dir: Path, name: str | None, cron: str, timezone: str | None, task: str | None,
        language: str | None, code_file: Path | None, timeout: float, missed: str, approval: str | None) -> None:
    """Add a schedule: an agent --task, or a script (--lang L --code FILE)."""
    from workbench.heartbeat.schedule import Schedule, local_timezone_name

    if bool(task) == bool(code_file):
        raise UsageError("give either --task or --lang with --code FILE")
    code = ""
    if code_file is not None:
        try:
            code = code_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {code_file}: {getattr(exc, 'strerror', None) or exc}") from exc
        if not language:
            raise UsageError("--code needs --lang")
    project, store = _store(project_dir)
    if language:
        from workbench import languages

        languages.get(language, project.settings())  # the project's [languages] count too
    if task and approval is None:
        settings = project.settings()
        if "ask" in (settings.agent.approval, settings.agent.approve_installs):
            raise UsageError("this schedule would need approval at run time, with nobody there to give it",
                             "add --approve auto (run everything) or --approve deny (refuse what would ask)")
        approval = "auto"
    default_name = (code_file.stem if code_file else "-".join((task or "").lower().split()[:3]))
    schedule = Schedule(name=name or "".join(c for c in default_name if c.isalnum() or c in "-_.") or "schedule",
                        cron=cron, timezone=timezone or local_timezone_name(),
                        kind="task" if task else "script", task=task or "", language=language or "", code=code,
                        timeout=timeout, missed=missed, approval=approval or "auto", created_by=current_user())
    now = datetime.now(UTC)
    store.add(schedule, now)
    say(f"added {one_line(schedule.name)}: next run {_local(schedule.next_after(now))}")


def _local(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M %Z") if moment else "-"


@heartbeat.command(name="list")
@project_option
def list_(project_dir: Path) -> None:
    """List schedules with their next run, last run and its outcome."""
    _project, store = _store(project_dir)
    schedules = store.all()
    if not schedules:
        say("no schedules (add one with: workbench heartbeat add --cron ... --task ...)")
        return
    now = datetime.now(UTC)
    failing = []
    say(f"{'NAME':<20} {'CRON':<16} {'NEXT RUN':<24} {'LAST RUN':<24} OUTCOME")
    for schedule in schedules:
        last = store.last_run(schedule.name)
        next_run = "paused" if schedule.paused else _local(schedule.next_after(max(now, store.anchor(schedule.name))))
        outcome = last.outcome if last else "never run"
        if last and last.outcome in ("failed", "timed-out", "error"):
            failing.append(f"{one_line(schedule.name)} ({one_line(last.outcome)}"
                           f"{': ' + one_line(last.detail) if last.detail else ''})")
        # Names, crons and run details are the project's (and a run's errors quote the sandbox): one line each.
        say(f"{one_line(schedule.name):<20} {one_line(schedule.cron):<16} {next_run:<24} "
            f"{_local(last.started) if last else '-':<24} {one_line(outcome)}")
    if failing:
        say(f"{len(failing)} schedule(s) failed their last run: {'; '.join(failing)}")


@heartbeat.command()
@project_option
@click.argument("name")
def remove(project_dir: Path, name: str) -> None:
    """Remove a schedule (its past runs stay in the audit log)."""
    _project, store = _store(project_dir)
    store.remove(name)
    say(f"removed {one_line(name)}")


@heartbeat.command()
@project_option
@click.argument("name")
def pause(project_dir: Path, name: str) -> None:
    """Pause a schedule."""
    _project, store = _store(project_dir)
    store.set_paused(name, True, datetime.now(UTC))
    say(f"paused {one_line(name)}")


@heartbeat.command()
@project_option
@click.argument("name")
def resume(project_dir: Path, name: str) -> None:
    """Resume a paused schedule (fire times during the pause are not made up)."""
    _project, store = _store(project_dir)
    store.set_paused(name, False, datetime.now(UTC))
    say(f"resumed {one_line(name)}")


@heartbeat.command()
@click.option("-p", "--project", "project_dirs", multiple=True, type=click.Path(path_type=Path),
              help="A project to schedule (repeatable; default: this folder).")
@click.option("--once", is_flag=True, help="Run what is due now, then exit.")
def run(project_dirs: tuple[Path, ...], once: bool) -> None:
    """The scheduler: wake at the right times and run due schedules (one scheduler per project)."""
    from workbench.heartbeat.runner import run_schedule
    from workbench.heartbeat.scheduler import Scheduler, SchedulerLock, run_forever

    projects = [open_project(p) for p in (project_dirs or (Path("."),))]
    locks = [SchedulerLock(p) for p in projects]
    try:
        for lock in locks:
            lock.acquire()

        def report(schedule, outcome) -> None:
            say(f"{datetime.now().strftime('%H:%M:%S')} {one_line(schedule.name)}: {one_line(outcome.outcome)}"
                f"{' - ' + one_line(outcome.detail) if outcome.detail else ''}")

        schedulers = [Scheduler(p, run_schedule, on_run=report) for p in projects]
        if once:
            for scheduler in schedulers:
                scheduler.tick()
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        say(f"heartbeat: scheduling {len(projects)} project(s); ctrl+c stops")
        run_forever(schedulers, stop)
    finally:
        for lock in locks:
            lock.release()
    sys.exit(0)

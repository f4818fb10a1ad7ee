"""`workbench trust`: trust a project folder you received, so its own settings and schedules apply."""

from __future__ import annotations

from pathlib import Path

import click

from workbench.cli.common import project_option, say
from workbench.project import Project


@click.command()
@project_option
@click.option("--revoke", is_flag=True, help="Forget the trust: the project opens restricted again.")
@click.option("--status", "show_status", is_flag=True, help="Only say whether it is trusted, and why not.")
def trust(project_dir: Path, revoke: bool, show_status: bool) -> None:
    """Trust a project: its config may then widen limits, sources and the model, and its schedules run.

    A project you did not create on this machine, or whose .workbench/config.toml or schedules changed
    outside Workbench, is restricted: its config may only tighten, its schedules do not run. Read what it
    asks for (`workbench trust --status -p DIR`, `workbench doctor -p DIR`) before you trust it."""
    from workbench import trust as trust_record

    project = Project.open(project_dir)
    state = trust_record.state(project)
    if show_status:
        _settings, ignored = project.settings_and_ignored()
        say(f"{project.root}: {'trusted' if state.trusted else state.reason}")
        for change in state.changes:
            say(f"  changed: {change}")
        for line in ignored:
            say(f"  ignored: {line}")
        if not state.trusted and state.schedules:
            say(f"  will not run: {', '.join(state.schedules)}")
        raise SystemExit(0 if state.trusted else 1)
    if revoke:
        found = trust_record.revoke(project)
        say(f"{project.root}: {'no longer trusted' if found else 'was not trusted'}; it opens restricted")
        return
    _settings, ignored = project.settings_and_ignored()
    trust_record.trust(project)
    applied = f"; now applied: {', '.join(n.split(' ', 1)[0] for n in ignored)}" if ignored else ""
    runs = f"; its schedules may run: {', '.join(state.schedules)}" if state.schedules else ""
    say(f"trusted {project.root}{applied}{runs}")

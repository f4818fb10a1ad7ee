"""`workbench heartbeat`."""

from __future__ import annotations

import click

from workbench.cli.common import not_available


@click.group()
def heartbeat() -> None:
    """Scheduled, unattended agent runs and scripts."""


@heartbeat.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def add() -> None:
    """Add a schedule."""
    not_available("workbench heartbeat add", "scheduled runs land with issue 10")


@heartbeat.command(name="list", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def list_() -> None:
    """List schedules with their next run."""
    not_available("workbench heartbeat list", "scheduled runs land with issue 10")


@heartbeat.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def remove() -> None:
    """Remove a schedule."""
    not_available("workbench heartbeat remove", "scheduled runs land with issue 10")


@heartbeat.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def run() -> None:
    """Run the scheduler."""
    not_available("workbench heartbeat run", "scheduled runs land with issue 10")

"""`workbench memory`."""

from __future__ import annotations

import click

from workbench.cli.common import not_available

_SETTINGS = {"ignore_unknown_options": True, "allow_extra_args": True}


@click.group()
def memory() -> None:
    """Markdown notes kept across sessions, searchable by meaning."""


@memory.command(context_settings=_SETTINGS)
def add() -> None:
    """Add a note."""
    not_available("workbench memory add", "memory lands with issue 9")


@memory.command(name="list", context_settings=_SETTINGS)
def list_() -> None:
    """List notes."""
    not_available("workbench memory list", "memory lands with issue 9")


@memory.command(context_settings=_SETTINGS)
def search() -> None:
    """Search notes."""
    not_available("workbench memory search", "memory lands with issue 9")


@memory.command(context_settings=_SETTINGS)
def rm() -> None:
    """Delete a note."""
    not_available("workbench memory rm", "memory lands with issue 9")

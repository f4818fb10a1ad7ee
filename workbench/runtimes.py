"""Moved to `workbench.languages` (the languages registry). This shim keeps the sandbox's call sites working
until they move; new code imports `workbench.languages`."""

from __future__ import annotations

from workbench.languages import Language as Runtime
from workbench.languages import get

__all__ = ["Runtime", "command", "get"]


def command(runtime: Runtime, *, file: str, python: str = "python3", database: str = "/workspace/data.db"
            ) -> list[str]:
    return runtime.command(file=file, python=python, database=database)

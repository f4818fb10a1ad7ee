"""Languages the sandbox runs: each is the command that runs a file of code inside the container.

Adding a language is one entry in `RUNTIMES`. Placeholders in `argv`, filled by the sandbox:
  {file}      the code file, as the container sees it
  {python}    /workspace/.venv/bin/python when the project has that venv (so `pip` installs persist),
              else the image's python3
  {database}  /workspace/<sandbox.sql_database>
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.errors import UsageError


@dataclass(frozen=True, slots=True)
class Runtime:
    name: str
    extension: str  # of the code file (tracebacks and R's source() show it)
    argv: tuple[str, ...]
    description: str = ""


RUNTIMES: dict[str, Runtime] = {
    "python": Runtime("python", ".py", ("{python}", "-u", "{file}"), "Python 3 (the project venv when present)"),
    "r": Runtime("r", ".R", ("Rscript", "--no-save", "--no-restore", "{file}"), "R via Rscript"),
    "shell": Runtime("shell", ".sh", ("bash", "{file}"), "bash"),
    "sql": Runtime("sql", ".sql", ("sqlite3", "-bail", "-header", "-box", "{database}", ".read {file}"),
                   "SQLite on the workspace database, output as a table"),
}

ALIASES = {"py": "python", "python3": "python", "R": "r", "bash": "shell", "sh": "shell", "sqlite": "sql"}


def get(language: str) -> Runtime:
    """The runtime for `language` (or one of its aliases); a UsageError naming the choices otherwise."""
    name = ALIASES.get(language, language)
    try:
        return RUNTIMES[name]
    except KeyError:
        raise UsageError(f"unknown language {language!r}; choose one of: {', '.join(RUNTIMES)}") from None


def command(runtime: Runtime, *, file: str, python: str = "python3", database: str = "/workspace/data.db"
            ) -> list[str]:
    values = {"file": file, "python": python, "database": database}
    return [part.format(**values) for part in runtime.argv]

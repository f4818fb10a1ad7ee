"""Errors a user can act on.

Every failure that reaches the command line is a `WorkbenchError`: one line saying what is wrong and,
where there is one, the command or setting that fixes it. The CLI prints it without a traceback and
exits with the error's `exit_code`.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """A failure the user can act on; `hint` says how."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = " ".join(self.message.split())
        return f"{text} ({self.hint})" if self.hint else text


class UsageError(WorkbenchError):
    """Bad arguments or input from the user."""

    exit_code = 2


class ConfigError(WorkbenchError):
    """A settings file that cannot be read or does not validate."""

    exit_code = 2


class ProjectError(WorkbenchError):
    """A project folder that is missing, unreadable or from an unknown version."""

    exit_code = 2


class NotAvailableYet(WorkbenchError):
    """A command from the design contract whose implementation has not landed."""

    exit_code = 2


class EngineUnavailable(WorkbenchError):
    """The container engine cannot be reached or is missing a part (socket, image)."""

    exit_code = 3

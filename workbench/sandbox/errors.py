"""Sandbox failures with their own exit codes, so scripts can tell them from the code's own exit status.

    2    bad input: unknown language, missing code file, both -c and FILE       (UsageError)
    3    the container engine cannot be reached                                (EngineUnavailable)
    4    the sandbox image is missing: run `workbench setup`                    (ImageMissing)
    124  the execution hit its timeout and was killed                           (ExecutionTimedOut)
    125  the engine could not start the execution (e.g. the PID limit was hit) (ExecutionNotStarted)
    1    (install) the package manager failed                                  (InstallFailed)
    5    (install) a configured package source is missing or does not answer    (SourceUnreachable)
    137  the execution was killed for using more memory than its limit         (the code's own status)
Otherwise `workbench exec` exits with the code's exit status.
"""

from __future__ import annotations

from workbench.errors import EngineUnavailable, WorkbenchError


class ImageMissing(EngineUnavailable):
    exit_code = 4


class ExecutionTimedOut(WorkbenchError):
    exit_code = 124


class ExecutionNotStarted(WorkbenchError):
    exit_code = 125


class InstallFailed(WorkbenchError):
    exit_code = 1


class SourceUnreachable(WorkbenchError):
    """A configured package source ([install] in the settings) is missing, does not answer, or cannot be
    reached from the install container (exit 5)."""

    exit_code = 5

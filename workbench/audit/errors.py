"""Failures of the audit log, as one-line `WorkbenchError`s the CLI prints without a traceback."""

from __future__ import annotations

from workbench.errors import WorkbenchError


class AuditError(WorkbenchError):
    """The audit log is missing, unreadable or not an audit log (exit 1)."""

    exit_code = 1


class SigningKeyError(AuditError):
    """The signing key cannot be created, read or stored."""


class CheckpointFormatError(AuditError):
    """A checkpoint (signed note) text that does not parse."""

    exit_code = 2

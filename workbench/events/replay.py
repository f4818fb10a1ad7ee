"""The payload of a replay: one recorded execution run again, and what came out the same or not.

A replay runs under its own session (trigger `replay`), so its own `exec.started` / `exec.output` /
`exec.finished` are in the log as any execution's are; `replay.compared` then ties each replayed execution to
the recorded one and says whether it reproduced (`workbench.replay`).
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.events import contract as C
from workbench.events import kinds as K
from workbench.events.contract import Payload
from workbench.events.declared import declare


@declare
@dataclass(frozen=True, slots=True)
class ReplayCompared(Payload):
    """A recorded execution replayed (or not). `status` is `reproduced` (stdout, stderr, exit code and the
    output files' hashes all the same), `differs`, or `not_replayed` (an input or the image could not be
    restored); `differences` are one line each, naming what differs (`stdout`, `stderr`, `exit code`, a file,
    an input). `environment` is the recorded environment digest and `replay_environment` the one the replay
    ran with (they differ where the packages or the image did); `replay_execution_id` is the replay's own
    execution (empty when it did not run)."""

    KIND = K.REPLAY_COMPARED

    execution_id: str = C.text(required=True)
    session: str = C.text()
    status: str = C.text()
    replay_execution_id: str = C.text()
    differences: tuple[str, ...] = C.items()
    environment: str | None = C.text(None, omit=True)
    replay_environment: str | None = C.text(None, omit=True)

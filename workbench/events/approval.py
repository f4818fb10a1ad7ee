"""The payload of an approval another process asked the open TUI for (`workbench.approvals`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.events import contract as C
from workbench.events import kinds as K
from workbench.events.contract import Payload
from workbench.events.declared import declare


@declare
@dataclass(frozen=True, slots=True)
class ApprovalDecided(Payload):
    """What was asked (`what`: execute, install, write_file, export_report, reach_the_network, with its
    `details`: language and code digest, manager and packages, path, or destination and rule), for whom
    (`requester`, e.g. `mcp:<client>`), and how it ended: `outcome` approved, refused (the person said no),
    no-tui, timeout, unsafe (a planted socket or folder) or error; `by` the TUI's `user:<login>` when a
    person answered; `waited` seconds."""

    KIND = K.APPROVAL_DECIDED

    what: str = C.text(required=True)
    requester: str = C.text()
    outcome: str = C.text(required=True)
    approved: bool = C.flag(False)
    by: str = C.text()
    reason: str | None = C.text(None, omit=True)
    waited: float | None = C.number()
    request_id: str = C.text()
    details: dict[str, Any] = C.mapping()

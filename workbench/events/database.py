"""The payload of one database connection code made through the host-side PgBouncer (`net.connection`)."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.events import contract as C
from workbench.events import kinds as K
from workbench.events.contract import Payload
from workbench.events.declared import declare


@declare
@dataclass(frozen=True, slots=True)
class NetConnection(Payload):
    """One connection from the sandbox to a PostgreSQL database, after it ended: the `database` it asked
    for, the `role` PgBouncer logged in as and the `credential` (the vault secret's name, never its value)
    that role's password came from, how long it was open (`duration`, seconds) and the bytes it sent
    (`bytes_up`) and received (`bytes_down`), counted at Workbench's relay in front of PgBouncer.
    `refused` is the one-line reason when it never reached the database (a name the policy does not
    allow, the database refusing the credential); "" when it did. `execution_id` is the execution that
    was running when it opened (one-off executions run one at a time; of warm cells running side by
    side, the latest started), "" when none was."""

    KIND = K.NET_CONNECTION

    database: str = C.text(required=True)
    role: str = C.text()
    credential: str = C.text()
    duration: float | None = C.number()
    bytes_up: int | None = C.integer()
    bytes_down: int | None = C.integer()
    refused: str = C.text()
    execution_id: str = C.text()

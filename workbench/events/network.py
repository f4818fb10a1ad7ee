"""The payloads of the HTTP policy proxy's record: one request code made (`net.request`) and a secret found in
an execution's output (`secret.leak`)."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.events import contract as C
from workbench.events import kinds as K
from workbench.events.contract import Payload
from workbench.events.declared import declare


@declare
@dataclass(frozen=True, slots=True)
class NetRequest(Payload):
    """One HTTP request code sent through the session's policy proxy, after it ended: the `destination`
    (host:port as the code named it), `method`, `path` (without the query string, which may carry data),
    the `status` the code got (the origin's, or the proxy's own 403/400/502), the bytes each way counted at
    the proxy, `duration` (seconds), the `rule` it matched (its URL) or `refused` (the one-line reason),
    the `credential` injected (the secret's name, never its value) and the `execution_id` running then."""

    KIND = K.NET_REQUEST

    destination: str = C.text(required=True)
    method: str = C.text()
    path: str = C.text()
    status: int | None = C.integer()
    bytes_up: int | None = C.integer()
    bytes_down: int | None = C.integer()
    duration: float | None = C.number()
    rule: str = C.text()
    refused: str = C.text()
    credential: str = C.text()
    execution_id: str = C.text()


@declare
@dataclass(frozen=True, slots=True)
class SecretLeak(Payload):
    """An injected secret's value was found in an execution's output and redacted from what is kept:
    `secret` names it (never the value), `stream` is stdout or stderr, `count` how many times."""

    KIND = K.SECRET_LEAK

    secret: str = C.text(required=True)
    execution_id: str = C.text()
    stream: str = C.text()
    count: int | None = C.integer()

"""The leak scan: an injected secret's value is never kept in the record, wherever it turns up.

A session whose proxy injects secrets has its sandbox's events pass through `RedactingBus` before they
reach the session's bus (and so the audit log, the TUI and the agent's observation, which are all made
from them). Every string in a payload is searched for each secret's value; a match is replaced by
`[secret NAME redacted]` and recorded as a `secret.leak` event naming the secret and where it was found
(an execution's stdout or stderr, or the event kind: code that quotes the secret, say), never the value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from workbench.events import contract
from workbench.events.kinds import EXEC_OUTPUT, SECRET_LEAK
from workbench.events.network import SecretLeak

MIN_LENGTH = 4  # a shorter value would match ordinary text everywhere; such a secret is not scanned for


def marker(name: str) -> str:
    return f"[secret {name} redacted]"


def redact_text(text: str, secrets: Mapping[str, str]) -> tuple[str, dict[str, int]]:
    """`text` with each secret's value replaced, and how many times each was found."""
    found: dict[str, int] = {}
    for name, value in sorted(secrets.items(), key=lambda item: -len(item[1])):  # longest first
        if len(value) >= MIN_LENGTH and value in text:
            found[name] = text.count(value)
            text = text.replace(value, marker(name))
    return text, found


def _walk(value: Any, secrets: Mapping[str, str], found: dict[str, int]) -> Any:
    if isinstance(value, str):
        text, hits = redact_text(value, secrets)
        for name, count in hits.items():
            found[name] = found.get(name, 0) + count
        return text
    if isinstance(value, dict):
        return {key: _walk(item, secrets, found) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(item, secrets, found) for item in value]
    return value


class RedactingBus:
    """Stands in for the session's bus in the sandbox: `emit` redacts, everything else is the bus's own."""

    def __init__(self, bus: Any, secrets: Callable[[], Mapping[str, str]]):
        self._bus = bus
        self._secrets = secrets

    def redact_result(self, result: Any) -> Any:
        """An execution's result (what the CLI, the TUI and the agent's observation are made from) with
        each secret's value replaced in its code and kept output (its hashes stay those of what ran)."""
        secrets = self._secrets()
        if not secrets:
            return result
        changes: dict[str, Any] = {"code": redact_text(result.code, secrets)[0]}
        for stream in ("stdout", "stderr"):
            summary = getattr(result, stream)
            text, found = redact_text(summary.kept.decode("utf-8", errors="surrogateescape"), secrets)
            if found:
                changes[stream] = dataclasses.replace(summary, kept=text.encode("utf-8", errors="surrogateescape"))
        return dataclasses.replace(result, **changes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bus, name)

    def emit(self, kind: str, session_id: str, actor: str,
             payload: contract.Payload | Mapping[str, Any] | None = None, user: str | None = None) -> Any:
        secrets = self._secrets()
        if not secrets or kind == SECRET_LEAK or payload is None:
            return self._bus.emit(kind, session_id, actor, payload, user)
        data = payload.encode() if isinstance(payload, contract.Payload) else dict(payload)
        found: dict[str, int] = {}
        cleaned = _walk(data, secrets, found)
        if not found:
            return self._bus.emit(kind, session_id, actor, payload, user)
        event = self._bus.emit(kind, session_id, actor, type(payload).decode(cleaned)
                               if isinstance(payload, contract.Payload) else cleaned, user)
        where = str(data.get("stream", "")) if kind == EXEC_OUTPUT else kind
        for name, count in found.items():
            self._bus.emit(SECRET_LEAK, session_id, actor, SecretLeak(
                secret=name, execution_id=str(data.get("execution_id", "")), stream=where, count=count), user)
        return event

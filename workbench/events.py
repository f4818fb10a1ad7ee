"""Everything that happens is an event.

The agent loop, the sandbox and the scheduler only *publish* events; the audit log and the UI only
*subscribe*. An `Event` is small, frozen and JSON-able so that the record a reviewer reads is exactly
what the user saw.
"""

from __future__ import annotations

import getpass
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

log = logging.getLogger(__name__)

# Kinds in use. Free-form strings are allowed (a plug-in may add its own), these are the common ones.
TASK_STARTED = "task.started"
TASK_FINISHED = "task.finished"
SESSION_STARTED = "session.started"
SESSION_FINISHED = "session.finished"
LLM_ACTION = "llm.action"
EXEC_STARTED = "exec.started"
EXEC_OUTPUT = "exec.output"
EXEC_FINISHED = "exec.finished"
PACKAGE_INSTALLED = "package.installed"
INSTALL_EGRESS = "install.egress"  # where an install reached, and what it was refused
FILE_CHANGED = "file.changed"
MEMORY_SAVED = "memory.saved"
ERROR = "error"


def utc_now() -> datetime:
    return datetime.now(UTC)


def current_user() -> str:
    """The login of the person at the keyboard, as `user:<login>`."""
    try:
        login = getpass.getuser()
    except Exception:  # no passwd entry (some containers): still say something true
        login = "unknown"
    return f"user:{login}"


def new_session_id() -> str:
    return uuid.uuid4().hex[:12]


def _freeze(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(payload))


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened.

    kind:       what happened (`exec.finished`, ...)
    session_id: the session it belongs to
    actor:      who did it: `agent:<name>/<model>`, `user:<login>` or `heartbeat:<schedule>`
    user:       the human on whose behalf it happened (`user:<login>`)
    payload:    JSON-able details; read-only
    time:       UTC time it happened
    """

    kind: str
    session_id: str
    actor: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    user: str = field(default_factory=current_user)
    time: datetime = field(default_factory=utc_now)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        if not isinstance(self.payload, MappingProxyType):
            object.__setattr__(self, "payload", _freeze(self.payload))
        if self.time.tzinfo is None:
            raise ValueError("event time must be timezone-aware (UTC)")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "session_id": self.session_id,
            "actor": self.actor,
            "user": self.user,
            "time": self.time.astimezone(UTC).isoformat(timespec="microseconds"),
            "payload": dict(self.payload),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        return cls(
            kind=data["kind"],
            session_id=data["session_id"],
            actor=data["actor"],
            user=data.get("user", "user:unknown"),
            payload=data.get("payload", {}),
            time=datetime.fromisoformat(data["time"]),
            id=data.get("id", uuid.uuid4().hex),
        )


Subscriber = Callable[[Event], None]


@dataclass(frozen=True, slots=True)
class Subscription:
    callback: Subscriber
    kinds: frozenset[str] | None
    prefixes: tuple[str, ...]

    def wants(self, kind: str) -> bool:
        if self.kinds is None and not self.prefixes:
            return True
        return (self.kinds is not None and kind in self.kinds) or kind.startswith(self.prefixes)


class EventBus:
    """An in-process publish/subscribe bus.

    Subscribers run synchronously in the publisher's thread, in subscription order. A subscriber that
    raises is logged and reported to the `on_subscriber_error` hook; the others still receive the event.
    Thread-safe: the sandbox publishes from worker threads while the UI subscribes.
    """

    def __init__(self, on_subscriber_error: Callable[[Subscriber, Event, BaseException], None] | None = None):
        self._subscriptions: tuple[Subscription, ...] = ()
        self._lock = threading.Lock()
        self._on_subscriber_error = on_subscriber_error

    def subscribe(self, callback: Subscriber, kinds: Iterable[str] | None = None) -> Callable[[], None]:
        """Call `callback` for each event (or only those whose kind is in `kinds`; `"exec.*"` matches a prefix).

        Returns a function that unsubscribes.
        """
        exact: set[str] = set()
        prefixes: list[str] = []
        for kind in kinds or ():
            (prefixes.append(kind[:-1]) if kind.endswith("*") else exact.add(kind))
        subscription = Subscription(callback, frozenset(exact) if exact else None, tuple(prefixes))
        with self._lock:
            self._subscriptions = (*self._subscriptions, subscription)

        def unsubscribe() -> None:
            with self._lock:
                self._subscriptions = tuple(s for s in self._subscriptions if s is not subscription)

        return unsubscribe

    def publish(self, event: Event) -> None:
        for subscription in self._subscriptions:  # a snapshot: subscribing during publish is safe
            if not subscription.wants(event.kind):
                continue
            try:
                subscription.callback(event)
            except Exception as exc:  # one broken subscriber must not silence the others
                log.exception("event subscriber %r failed on %s", subscription.callback, event.kind)
                if self._on_subscriber_error is not None:
                    try:
                        self._on_subscriber_error(subscription.callback, event, exc)
                    except Exception:
                        log.exception("the subscriber-error hook failed")

    def emit(self, kind: str, session_id: str, actor: str, payload: Mapping[str, Any] | None = None,
             user: str | None = None) -> Event:
        """Build an event and publish it; returns the event."""
        event = Event(kind=kind, session_id=session_id, actor=actor, payload=payload or {},
                      **({"user": user} if user else {}))
        self.publish(event)
        return event

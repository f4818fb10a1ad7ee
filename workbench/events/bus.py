"""Everything that happens is an event: `Event` and the in-process `EventBus`.

The agent loop, the sandbox and the scheduler only *publish* events; the audit log and the UI only
*subscribe*. An `Event` is small, frozen and JSON-able so that the record a reviewer reads is exactly
what the user saw. Its payload is the canonical dict of a payload class (`workbench.events.contract`);
the bus checks every event it publishes against the contract.
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

from workbench.events import contract, declared

log = logging.getLogger(__name__)

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

    def decoded(self) -> contract.Payload | None:
        """The payload as its dataclass (any version, never raises), or None for an undeclared kind."""
        return declared.decode(self.kind, self.payload)

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

    Every event is checked against the contract before anyone sees it: an undeclared kind, an undeclared
    field or a missing required one raises `EventContractError` when strict (`strict=True`, or
    `WORKBENCH_STRICT_EVENTS=1` as in the test suite) and is otherwise logged once and still published:
    an audit entry is never lost to a producer's slip.
    """

    def __init__(self, on_subscriber_error: Callable[[Subscriber, Event, BaseException], None] | None = None,
                 strict: bool | None = None):
        self._subscriptions: tuple[Subscription, ...] = ()
        self._lock = threading.Lock()
        self._on_subscriber_error = on_subscriber_error
        self._strict = strict  # None: ask the environment at each publish
        self._warned: set[str] = set()

    def subscribe(self, callback: Subscriber, kinds: Iterable[str] | None = None) -> Callable[[], None]:
        """Call `callback` for each event (or only those whose kind is in `kinds`; `"exec.*"` matches a
        prefix).

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

    def _check(self, event: Event) -> None:
        problem = declared.violation(event.kind, event.payload)
        if problem is None:
            return
        if self._strict if self._strict is not None else declared.strict():
            raise declared.EventContractError(problem)
        if problem not in self._warned:
            self._warned.add(problem)
            log.warning("event outside the contract (published anyway): %s", problem)

    def publish(self, event: Event) -> None:
        self._check(event)
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

    def emit(self, kind: str, session_id: str, actor: str,
             payload: contract.Payload | Mapping[str, Any] | None = None, user: str | None = None) -> Event:
        """Build an event and publish it; returns the event.

        `payload` is the kind's payload dataclass (its canonical dict is what is published and logged), or,
        from producers not yet converted, a dict checked against the contract."""
        if isinstance(payload, contract.Payload):
            if type(payload).KIND != kind:
                self._mismatch(kind, payload)
            payload = payload.encode()
        event = Event(kind=kind, session_id=session_id, actor=actor, payload=payload or {},
                      **({"user": user} if user else {}))
        self.publish(event)
        return event

    def _mismatch(self, kind: str, payload: contract.Payload) -> None:
        problem = f"a {type(payload).__name__} payload ({type(payload).KIND}) was emitted as {kind}"
        if self._strict if self._strict is not None else declared.strict():
            raise declared.EventContractError(problem)
        log.warning("%s", problem)

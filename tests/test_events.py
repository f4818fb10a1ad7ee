import threading
from datetime import UTC, datetime

import pytest

from workbench.events import Event, EventBus


def make(kind="exec.started", **payload):
    if kind.startswith("exec.") and not payload:  # what the contract requires of every exec.* event
        payload = {"execution_id": "e1"}
    return Event(kind=kind, session_id="s1", actor="user:test", payload=payload)


def test_event_is_frozen_and_payload_read_only():
    event = make(code="print(1)")
    with pytest.raises(AttributeError):
        event.kind = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        event.payload["code"] = "rm -rf /"  # type: ignore[index]
    assert event.time.tzinfo is not None


def test_round_trip_through_dict():
    event = make(code="x", n=3)
    again = Event.from_dict(event.to_dict())
    assert again == event


def test_naive_time_is_refused():
    with pytest.raises(ValueError):
        Event(kind="k", session_id="s", actor="a", time=datetime(2026, 1, 1))
    assert Event(kind="k", session_id="s", actor="a", time=datetime(2026, 1, 1, tzinfo=UTC))


def test_subscribers_receive_in_order_and_filters_apply():
    bus = EventBus()
    seen_all, seen_exec, seen_exact = [], [], []
    bus.subscribe(seen_all.append)
    bus.subscribe(seen_exec.append, kinds=["exec.*"])
    bus.subscribe(seen_exact.append, kinds=["task.finished"])
    for kind in ("exec.started", "llm.action", "exec.finished", "task.finished"):
        bus.publish(make(kind))
    assert [e.kind for e in seen_all] == ["exec.started", "llm.action", "exec.finished", "task.finished"]
    assert [e.kind for e in seen_exec] == ["exec.started", "exec.finished"]
    assert [e.kind for e in seen_exact] == ["task.finished"]


def test_failing_subscriber_does_not_break_the_others():
    errors = []
    bus = EventBus(on_subscriber_error=lambda sub, event, exc: errors.append((event.kind, str(exc))))
    received = []

    def broken(event):
        raise RuntimeError("boom")

    bus.subscribe(broken)
    bus.subscribe(received.append)
    bus.publish(make())
    assert [e.kind for e in received] == ["exec.started"]
    assert errors == [("exec.started", "boom")]


def test_unsubscribe():
    bus = EventBus()
    received = []
    unsubscribe = bus.subscribe(received.append)
    bus.publish(make())
    unsubscribe()
    bus.publish(make())
    assert len(received) == 1


def test_publish_from_many_threads():
    bus = EventBus()
    received = []
    lock = threading.Lock()

    def collect(event):
        with lock:
            received.append(event)

    bus.subscribe(collect)
    threads = [threading.Thread(target=lambda: [bus.publish(make()) for _ in range(200)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(received) == 1600


def test_emit_builds_and_publishes():
    bus = EventBus()
    received = []
    bus.subscribe(received.append)
    event = bus.emit("task.started", "s9", "agent:test", {"task": "sum"})
    assert received == [event] and event.payload["task"] == "sum" and event.user.startswith("user:")

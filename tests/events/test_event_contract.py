"""The event contract: every kind declared once, payloads that round-trip, a bus that refuses drift."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from workbench import events
from workbench.audit.canonical import payload_text
from workbench.events import contract as C
from workbench.events import declared
from workbench.events import kinds as K
from workbench.events.bus import EventBus

SAMPLE = {C.coerce_text: "x y", C.coerce_int: 7, C.coerce_float: 1.5, C.coerce_bool: True}


def sample(f: dataclasses.Field):
    coerce = f.metadata["coerce"]
    if coerce in SAMPLE:
        return SAMPLE[coerce]
    if f.default_factory is dict:  # a JSON object field
        return {"a": 1}
    if f.default == ():  # a JSON array field
        return ("p", "q")
    return {"action": "run_code", "code": "print(1)"}  # any JSON


def example(cls: type[events.Payload]) -> events.Payload:
    """A payload of `cls` with every field a producer may write set to a value of its type."""
    return cls(**{f.name: sample(f) for f in dataclasses.fields(cls) if f.name in cls.field_names()})


def every_kind() -> list[str]:
    return events.declared_kinds()


def test_every_kind_constant_is_declared_with_one_payload_class():
    constants = {value for name, value in vars(K).items() if name.isupper()}
    assert constants == set(every_kind())
    classes = [events.payload_class(kind) for kind in every_kind()]
    assert len(set(classes)) == len(classes)  # one class per kind
    for kind, cls in zip(every_kind(), classes, strict=True):
        assert cls.KIND == kind and events.version(kind) == cls.VERSION >= 1
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen


@pytest.mark.parametrize("kind", every_kind())
def test_every_kind_round_trips_through_the_bus_and_the_log(kind):
    cls = events.payload_class(kind)
    payload = example(cls)
    bus = EventBus(strict=True)
    seen = []
    bus.subscribe(seen.append)
    event = bus.emit(kind, "s1", "user:test", payload)
    assert seen == [event] and dict(event.payload) == payload.encode()
    again = events.Event.from_dict(event.to_dict())  # as the audit log stores and reads it back
    assert again.decoded() == payload == cls.decode(payload.encode())
    assert events.violation(kind, payload.encode()) is None


def test_an_undeclared_kind_fails_when_strict_and_is_still_published_otherwise(caplog):
    with pytest.raises(events.EventContractError, match="'exec.exploded' is not declared"):
        EventBus(strict=True).emit("exec.exploded", "s1", "user:test", {"execution_id": "e1"})
    lenient, seen = EventBus(strict=False), []
    lenient.subscribe(seen.append)
    with caplog.at_level(logging.WARNING, logger="workbench.events.bus"):
        lenient.emit("exec.exploded", "s1", "user:test", {"execution_id": "e1"})
    assert [e.kind for e in seen] == ["exec.exploded"]  # an audit entry is never lost
    assert "exec.exploded" in caplog.text


def test_an_undeclared_field_or_a_missing_required_one_fails_when_strict():
    bus = EventBus(strict=True)
    with pytest.raises(events.EventContractError, match="has no field 'colour'"):
        bus.emit(K.EXEC_STARTED, "s1", "user:test", {"execution_id": "e1", "colour": "red"})
    with pytest.raises(events.EventContractError, match="lacks the required field execution_id"):
        bus.emit(K.EXEC_OUTPUT, "s1", "user:test", {"stream": "stdout", "text": "hi"})
    with pytest.raises(events.EventContractError, match="was emitted as"):
        bus.emit(K.EXEC_FINISHED, "s1", "user:test", events.ExecStarted(execution_id="e1"))


def test_the_test_suite_runs_strict(monkeypatch):
    assert events.strict()  # tests/conftest.py sets WORKBENCH_STRICT_EVENTS=1
    with pytest.raises(events.EventContractError):
        EventBus().emit("nobody.declared", "s1", "user:test")
    monkeypatch.delenv(events.STRICT_ENV)
    assert EventBus().emit("nobody.declared", "s1", "user:test").kind == "nobody.declared"


def test_encoding_is_what_producers_wrote_before_the_contract():
    """The dicts the sandbox, the agent loop and the memory store published before: their typed payloads
    encode to the very same canonical text, so a new entry's hash is computed exactly as before."""
    before = [
        (K.EXEC_STARTED, {"execution_id": "e1", "language": "python", "code": "print(1)", "session": None,
                          "limits": {"memory": "2g", "timeout": 5.0, "enforced": True}}),
        (K.EXEC_OUTPUT, {"execution_id": "e1", "stream": "stdout", "text": "1\n", "offset": 0, "bytes": 2}),
        (K.FILE_REFUSED, {"step": 2, "tool": "read_file", "path": "x", "message": "a symlink", "kind": "symlink",
                          "target": "/etc/passwd"}),
        (K.FILE_REFUSED, {"step": 2, "tool": "read_file", "path": "x", "message": "no such file"}),
        (K.MEMORY_REINDEXED, {"rebuilt": True, "reason": "damaged"}),
        (K.MEMORY_REINDEXED, {"indexed": 1, "removed": 0, "notes": 3, "rebuilt": False, "ids": ["a"]}),
        (K.ERROR, {"source": "heartbeat", "schedule": "nightly", "outcome": "failed", "detail": "exit 1"}),
        (K.ERROR, {"step": 3, "where": "llm", "message": "boom"}),
        (K.PACKAGE_INSTALLED, {"name": "polars", "version": "1.9.0", "manager": "pip"}),
        (K.SESSION_STARTED, {"trigger": "user:me", "project": "p", "project_id": "0" * 32,
                             "workbench_version": "1", "command": "exec"}),
        (K.TASK_FINISHED, {"success": True, "reason": "finished", "answer": "3", "detail": "", "steps": 2,
                           "tokens": 90, "seconds": 1.25, "note": None}),
    ]
    for kind, payload in before:
        typed = events.decode(kind, payload)
        assert typed.encode() == payload, kind
        assert payload_text(typed.encode()) == payload_text(payload)


def test_older_shapes_decode_with_their_missing_fields_defaulted():
    first = {"execution_id": "e1", "language": "python", "code": "print(3)"}  # before session and limits
    assert events.ExecStarted.version_of(first) == 1 < events.ExecStarted.VERSION
    started = events.ExecStarted.decode(first)
    assert started.session is None and started.limits == {} and started.code == "print(3)"
    legacy = {"outcome": "done", "ok": True, "summary": "wrote outputs/"}  # the first task.finished shape
    finished = events.TaskFinished.decode(legacy)
    assert finished.succeeded() is True and finished.summary == "wrote outputs/"
    assert events.violation(K.TASK_FINISHED, legacy) is not None  # read from old logs, never written anew
    assert events.TaskStarted.decode({"goal": "sum it"}).words() == "sum it"


def test_decoding_never_raises_on_what_a_tampered_log_holds():
    odd = [None, "text", 3, -1.5, float("nan"), True, [1, 2], {"$bytes": "aGk="}, {"k": object()}]
    for kind in every_kind():
        cls = events.payload_class(kind)
        for value in odd:
            payload = cls.decode({f.name: value for f in dataclasses.fields(cls)})
            assert isinstance(payload, cls)
        assert cls.decode("not a mapping") == cls()  # type: ignore[arg-type]
    assert events.decode("nobody.declared", {"a": 1}) is None
    assert events.ExecOutput.decode({"execution_id": "e1", "text": {"$bytes": "aGk="}}).text == "hi"


PLUGIN = """
from dataclasses import dataclass

from workbench.events import Payload, contract


@dataclass(frozen=True, slots=True)
class ReviewNoted(Payload):
    KIND = "review.noted"

    note: str = contract.text(required=True)
    by: str = contract.text()


@dataclass(frozen=True, slots=True)
class Clash(Payload):
    KIND = "exec.started"


NOT_A_PAYLOAD = object()
"""


@pytest.fixture
def event_plugins(tmp_path, monkeypatch):
    """A real installed distribution declaring kinds through the workbench.events entry points: one good
    kind, one that clashes with a built-in, one that is not a payload class, one that fails to import."""
    (tmp_path / "wb_review_events.py").write_text(PLUGIN)
    info = tmp_path / "wb_review_events-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wb-review-events\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[workbench.events]\nreview = wb_review_events:ReviewNoted\nclash = wb_review_events:Clash\n"
        "odd = wb_review_events:NOT_A_PAYLOAD\nbroken = wb_review_events_missing:Nothing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # This test's plug-ins only: the registry as the built-ins left it, plug-ins not yet loaded.
    monkeypatch.setattr(declared, "PAYLOADS", declared.PAYLOADS.copy())
    monkeypatch.setattr(declared, "_PLUGGED", {})
    monkeypatch.setattr(declared, "_plugins", {"loaded": False})
    yield


def test_a_plugin_declares_its_own_kinds_and_its_mistakes_are_one_line_problems(event_plugins):
    bus = EventBus(strict=True)
    event = bus.emit("review.noted", "s1", "user:test", {"note": "looks right", "by": "auditor"})
    assert type(event.decoded()).__name__ == "ReviewNoted" and event.decoded().note == "looks right"
    with pytest.raises(events.EventContractError, match="lacks the required field note"):
        bus.emit("review.noted", "s1", "user:test", {"by": "auditor"})
    assert events.payload_class(K.EXEC_STARTED) is events.ExecStarted  # a plug-in cannot replace a built-in
    lines = events.problems()
    assert len(lines) == 3, lines
    assert any("clash" in line and "'exec.started'" in line and "already has" in line for line in lines)
    assert any("odd" in line and "not a payload dataclass" in line for line in lines)
    assert any("broken" in line and "failed to load" in line and "ModuleNotFoundError" in line for line in lines)
    assert "review.noted" in events.declared_kinds()
    findings = events.check()  # what doctor shows
    assert findings[0].status == "ok" and "(1 by plug-ins)" in findings[0].detail
    assert [f.status for f in findings[1:]] == ["warn"] * 3


def test_typed_takes_a_dict_as_its_payload_class_only_when_every_field_is_declared():
    payload = {"execution_id": "e1", "exit_code": 0, "files": [{"path": "a", "change": "created"}]}
    finished = events.typed(K.EXEC_FINISHED, payload)
    assert isinstance(finished, events.ExecFinished) and finished.encode()["files"] == payload["files"]
    odd = {"execution_id": "e1", "colour": "red"}
    assert events.typed(K.EXEC_FINISHED, odd) is odd  # kept whole: the bus warns, or refuses when strict
    assert events.typed("nobody.declared", odd) is odd

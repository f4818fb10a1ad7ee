"""The canonical encoding: deterministic, readable, and never crashing on odd payloads."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from workbench.audit.canonical import canonical_bytes, canonical_json, entry_header, entry_leaf_data, jsonable


def test_sorted_keys_no_whitespace_utf8():
    assert canonical_json({"b": 1, "a": [1, 2], "é": "ü"}) == '{"a":[1,2],"b":1,"é":"ü"}'
    assert canonical_bytes({"x": "ü"}) == '{"x":"ü"}'.encode()


def test_same_value_same_bytes_whatever_the_insertion_order():
    assert canonical_bytes({"a": 1, "b": {"c": 2, "d": 3}}) == canonical_bytes({"b": {"d": 3, "c": 2}, "a": 1})


def test_bytes_are_base64_with_a_marker():
    assert jsonable({"out": b"\x00\xff"}) == {"out": {"$bytes": "AP8="}}


def test_odd_values_never_crash():
    class Broken:
        def __repr__(self):
            raise RuntimeError("no")

    @dataclass
    class Point:
        x: int

    value = {"nan": math.nan, "inf": -math.inf, "set": {3, 1, 2}, "when": datetime(2025, 1, 2, tzinfo=UTC),
             "path": Path("/a"), "obj": object(), "broken": Broken(), 1: "int key", "pt": Point(1),
             "surrogate": "\ud800x", "tuple": (1, 2), "ba": bytearray(b"a")}
    text = canonical_json(value)
    data = json.loads(text)
    assert data["nan"] == {"$float": "nan"} and data["inf"] == {"$float": "-inf"}
    assert data["set"] == [1, 2, 3]
    assert data["when"] == "2025-01-02T00:00:00+00:00"
    assert data["obj"]["$repr"].startswith("<object")
    assert data["broken"] == {"$repr": "<unrepresentable Broken>"}
    assert data["1"] == "int key" and data["pt"] == {"x": 1} and data["ba"] == {"$bytes": "YQ=="}
    text.encode("utf-8")  # always valid UTF-8


def test_deep_nesting_is_cut_not_crashing():
    value: list = []
    for _ in range(200):
        value = [value]
    assert "nested too deeply" in canonical_json(value)


@given(st.integers(0, 2**40), st.text(), st.text(), st.text(), st.text(), st.text(), st.text(),
       st.dictionaries(st.text(), st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                            st.text())),
       st.binary(min_size=32, max_size=32))
def test_fast_leaf_data_equals_canonical_json_of_the_header(seq, time, kind, sid, actor, user, eid, payload, prev):
    args = [jsonable(x) for x in (time, kind, sid, actor, user, eid)]
    text = canonical_json(payload)
    fast = entry_leaf_data(seq, *args, text, prev)
    assert fast == canonical_bytes(entry_header(seq, *args, text, prev))

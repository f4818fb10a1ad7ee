"""The canonical JSON encoding that audit hashes are computed over.

Why a canonical form: a hash is only reproducible if every writer and every verifier turns the same
record into the same bytes. The rules, which a verifier in any language can follow:

* JSON (RFC 8259) with object keys sorted by code point, no insignificant whitespace
  (separators ``,`` and ``:``), strings written as UTF-8 (no ``\\uXXXX`` escapes except where JSON
  requires them: ``"``, ``\\`` and control characters), integers in decimal, finite floats as Python's
  shortest round-trip ``repr``; NaN and infinities are not allowed.
* Values that JSON cannot express are turned into JSON *before* encoding, so a publisher's odd
  payload never crashes the log (see `jsonable`): bytes become ``{"$bytes": "<base64>"}``, non-finite
  floats ``{"$float": "nan"}``, sets sorted lists, dates and paths their ISO/str text, and anything
  else ``{"$repr": "<repr(value)>"}``. Strings that are not valid Unicode (lone surrogates) are written
  with backslash escapes of the bad code points.

An entry's *leaf data* (what its hash covers, see `entry_leaf_data`) is the canonical JSON of::

    {"actor", "event_id", "kind", "payload_sha256", "prev", "seq", "session_id", "time", "user"}

where ``payload_sha256`` is the hex SHA-256 of the entry's canonical payload text (stored readable in
the database) and ``prev`` the hex hash of the previous entry (64 zeros for entry 0). Hashing the
payload separately keeps the header's field boundaries unambiguous whatever the payload holds.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import hashlib
import json
import math
import uuid
from collections.abc import Mapping
from decimal import Decimal
from json.encoder import encode_basestring  # the C string encoder json.dumps(ensure_ascii=False) uses
from pathlib import PurePath
from typing import Any

MAX_DEPTH = 64

_sha256 = hashlib.sha256


def utf8_text(value: str) -> str:
    """`value` as text UTF-8 can encode: lone surrogates become visible backslash escapes."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:  # lone surrogates: keep them visible, never crash
        return value.encode("utf-8", "backslashreplace").decode("utf-8")


def jsonable(value: Any, _depth: int = 0) -> Any:
    """Return `value` as plain JSON data (dict/list/str/int/float/bool/None), deterministically."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return utf8_text(str(value))
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if _depth >= MAX_DEPTH:
        return {"$repr": "<nested too deeply>"}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Mapping):
        return {utf8_text(k) if isinstance(k, str) else _key(k): jsonable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, _depth + 1) for v in value]
    if isinstance(value, set | frozenset):
        items = [jsonable(v, _depth + 1) for v in value]
        return sorted(items, key=canonical_json)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return jsonable(value.value, _depth + 1)
    if isinstance(value, PurePath | uuid.UUID | Decimal):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value), _depth + 1)
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not break the log
        text = f"<unrepresentable {type(value).__name__}>"
    return {"$repr": utf8_text(text)}


def _key(key: Any) -> str:
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)
    return utf8_text(str(key))


def canonical_json(value: Any) -> str:
    """The canonical JSON text of `value` (see the module docstring)."""
    return json.dumps(jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def canonical_bytes(value: Any) -> bytes:
    return canonical_json(value).encode("utf-8")


def payload_text(payload: Mapping[str, Any]) -> str:
    """The text stored in the database for an event payload: readable, canonical JSON."""
    return canonical_json(dict(payload))


def entry_leaf_data(seq: int, time: str, kind: str, session_id: str, actor: str, user: str,
                    event_id: str, payload: str, prev: bytes) -> bytes:
    """The bytes an entry's hash covers: canonical JSON of its header (fields as stored).

    Written out by hand because the verifier calls it a million times; `tests/audit` checks that it
    equals `canonical_bytes` of the same header dict.
    """
    enc = encode_basestring
    return (f'{{"actor":{enc(actor)},"event_id":{enc(event_id)},"kind":{enc(kind)},'
            f'"payload_sha256":"{_sha256(payload.encode("utf-8")).hexdigest()}","prev":"{prev.hex()}",'
            f'"seq":{seq},"session_id":{enc(session_id)},"time":{enc(time)},"user":{enc(user)}}}'
            ).encode()


def entry_header(seq: int, time: str, kind: str, session_id: str, actor: str, user: str,
                 event_id: str, payload: str, prev: bytes) -> dict[str, Any]:
    """The header as a dict (the slow, obviously-canonical form of `entry_leaf_data`)."""
    return {"actor": actor, "event_id": event_id, "kind": kind,
            "payload_sha256": _sha256(payload.encode("utf-8")).hexdigest(), "prev": prev.hex(), "seq": seq,
            "session_id": session_id, "time": time, "user": user}

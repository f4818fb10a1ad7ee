"""Reading event payloads defensively.

Why: the report reads whatever is in the audit log, written by any version of Workbench or by a plug-in,
possibly tampered with. A missing field, a field of the wrong type or an unknown event kind must never
crash a report, so every read goes through these helpers, which return a default instead of raising.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from typing import Any


def text(value: Any, default: str = "") -> str:
    """A field as text: strings as they are, canonical ``{"$bytes": ...}`` decoded, others via str()."""
    if value is None:
        return default
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and "$bytes" in value:
        try:
            raw = base64.b64decode(str(value["$bytes"]), validate=False)
        except (binascii.Error, ValueError):
            return str(value["$bytes"])
        return raw.decode("utf-8", errors="backslashreplace")
    if isinstance(value, bool | int | float):
        return str(value)
    return str(value)


def get_str(payload: Mapping[str, Any], key: str, default: str = "") -> str:
    return text(payload.get(key), default) if isinstance(payload, Mapping) else default


def get_int(payload: Mapping[str, Any], key: str) -> int | None:
    value = payload.get(key) if isinstance(payload, Mapping) else None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def get_float(payload: Mapping[str, Any], key: str) -> float | None:
    value = payload.get(key) if isinstance(payload, Mapping) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
        return number if math.isfinite(number) and number >= 0 else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) and number >= 0 else None
    return None


def get_bool(payload: Mapping[str, Any], key: str) -> bool | None:
    value = payload.get(key) if isinstance(payload, Mapping) else None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def get_dict(payload: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = payload.get(key) if isinstance(payload, Mapping) else None
    return dict(value) if isinstance(value, Mapping) else {}


def get_dicts(payload: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    """A list-of-objects field; items that are not objects are dropped (they carry nothing to show)."""
    value = payload.get(key) if isinstance(payload, Mapping) else None
    if not isinstance(value, list | tuple):
        return []
    return [dict(item) for item in value if isinstance(item, Mapping)]


def get_strs(payload: Mapping[str, Any], key: str) -> list[str]:
    value = payload.get(key) if isinstance(payload, Mapping) else None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list | tuple):
        return []
    return [text(item) for item in value]

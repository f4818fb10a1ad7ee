"""Write small GGUF files for tests: a real header and tensor table, with tiny (or missing) tensor data."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any


def _string(value: str) -> bytes:
    data = value.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def _value(value: Any) -> tuple[int, bytes]:
    if isinstance(value, bool):
        return 7, struct.pack("<?", value)
    if isinstance(value, int):
        return (4, struct.pack("<I", value)) if 0 <= value < 2**32 else (11, struct.pack("<q", value))
    if isinstance(value, float):
        return 6, struct.pack("<f", value)
    if isinstance(value, str):
        return 8, _string(value)
    if isinstance(value, list):
        kinds = {_value(item)[0] for item in value} or {8}
        kind = kinds.pop()
        return 9, struct.pack("<IQ", kind, len(value)) + b"".join(_value(item)[1] for item in value)
    raise TypeError(value)


def write_gguf(path: Path, metadata: dict[str, Any] | None = None, *, tensors: int = 2, truncate: int = 0,
               alignment: int = 32) -> Path:
    """A GGUF v3 file with `tensors` F32 tensors of 8 floats each; `truncate` cuts that many bytes off."""
    metadata = {"general.architecture": "llama", "general.name": "Tiny Test", "llama.context_length": 2048,
                "general.file_type": 15, **(metadata or {})}
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, tensors, len(metadata)))
    for key, value in metadata.items():
        kind, data = _value(value)
        out += _string(key) + struct.pack("<I", kind) + data
    for index in range(tensors):
        out += _string(f"blk.{index}.weight") + struct.pack("<I", 1) + struct.pack("<Q", 8)
        out += struct.pack("<IQ", 0, index * 32)  # F32, offset
    out += b"\0" * (-len(out) % alignment)
    out += b"\1" * (32 * tensors)
    if truncate:
        del out[-truncate:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))
    return path

"""Read a GGUF file's header: metadata and tensor table, never the weights.

Listing models must be cheap (a laptop may hold dozens of multi-GB files) and a broken file must give a
one-line error *before* llama.cpp tries to map it, because llama.cpp's own failure is a C-level message
and a `ValueError` with no hint. So we parse the header ourselves: magic, version, key/value metadata,
then the tensor table, from which the size the file must have follows. Large arrays (the tokenizer's
vocabulary) are skipped without being decoded.

Format reference: the GGUF specification in the ggml repository (little-endian throughout).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from workbench.errors import WorkbenchError

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
# Arrays longer than this are skipped, not decoded: only their length is kept.
MAX_DECODED_ARRAY = 64

# GGUF metadata value types -> struct format (scalars only).
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q",
            12: "<d"}
_STRING, _ARRAY = 8, 9

# llama.cpp's file types (`general.file_type`), i.e. the quantisation a model was made with.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
    12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
    19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL",
    26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
    36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
}

# ggml tensor types -> (elements per block, bytes per block); enough to know how long the data must be.
TENSOR_TYPES: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110),
    22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8),
    29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66),
}


class GGUFError(WorkbenchError):
    """A model file that is missing, not GGUF, or cut short."""

    exit_code = 2


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    type: int
    offset: int  # relative to the start of the data section

    @property
    def nbytes(self) -> int | None:
        block = TENSOR_TYPES.get(self.type)
        if block is None:
            return None
        count = 1
        for dim in self.shape:
            count *= dim
        per_block, size = block
        return -(-count // per_block) * size


@dataclass(frozen=True)
class GGUFHeader:
    """What a GGUF file says about itself."""

    path: Path
    version: int
    metadata: dict[str, Any]
    array_lengths: dict[str, int]  # keys whose (long) array value was skipped -> its length
    tensors: tuple[TensorInfo, ...]
    data_offset: int
    file_size: int
    expected_size: int | None  # None when a tensor type is unknown to us
    tensor_types: dict[int, int] = field(default_factory=dict)  # ggml type -> number of tensors

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    @property
    def name(self) -> str:
        return str(self.metadata.get("general.name", "") or "")

    @property
    def context_length(self) -> int | None:
        value = self.metadata.get(f"{self.architecture}.context_length")
        return int(value) if isinstance(value, int) else None

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) and value.strip() else None

    @property
    def quantization(self) -> str:
        """The file type llama.cpp recorded, else the most common tensor type, else '?'."""
        file_type = self.metadata.get("general.file_type")
        if isinstance(file_type, int) and file_type in FILE_TYPES:
            return FILE_TYPES[file_type]
        if self.tensor_types:
            names = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 8: "Q8_0", 12: "Q4_K", 14: "Q6_K", 30: "BF16"}
            common = max(self.tensor_types, key=self.tensor_types.__getitem__)
            return names.get(common, f"type{common}")
        return "?"


class _Reader:
    """Sequential little-endian reads with a clear error at end of file."""

    def __init__(self, handle: BinaryIO, path: Path, size: int):
        self.handle = handle
        self.path = path
        self.size = size

    def read(self, n: int) -> bytes:
        data = self.handle.read(n)
        if len(data) != n:
            raise GGUFError(f"{self.path} is truncated: its header ends early ({self.size} bytes)",
                            "download the model again")
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        length = self.unpack("<Q")
        if length > self.size:
            raise GGUFError(f"{self.path} is damaged: a string of {length} bytes in the header")
        return self.read(length).decode("utf-8", errors="replace")

    def skip(self, n: int) -> None:
        if self.handle.tell() + n > self.size:
            raise GGUFError(f"{self.path} is truncated: its header ends early ({self.size} bytes)",
                            "download the model again")
        self.handle.seek(n, os.SEEK_CUR)

    def value(self, kind: int, key: str, lengths: dict[str, int]) -> Any:
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item_kind = self.unpack("<I")
            count = self.unpack("<Q")
            if count > MAX_DECODED_ARRAY:
                lengths[key] = count
                if item_kind in _SCALARS:
                    self.skip(count * struct.calcsize(_SCALARS[item_kind]))
                elif item_kind == _STRING:
                    for _ in range(count):
                        self.skip(self.unpack("<Q"))
                else:
                    for _ in range(count):
                        self.value(item_kind, key, {})
                return None
            return [self.value(item_kind, key, {}) for _ in range(count)]
        raise GGUFError(f"{self.path} is damaged: unknown metadata type {kind} for {key!r}")


def read_header(path: Path | str) -> GGUFHeader:
    """Parse the header of `path`; raise GGUFError (one line) when it is missing, not GGUF or cut short."""
    path = Path(path).expanduser()
    try:
        size = path.stat().st_size
        handle = path.open("rb")
    except FileNotFoundError:
        raise GGUFError(f"model file not found: {path}", "see: workbench model list") from None
    except IsADirectoryError:
        raise GGUFError(f"{path} is a folder, not a GGUF model file") from None
    except OSError as exc:
        raise GGUFError(f"cannot read the model file {path}: {exc.strerror or exc}") from None
    with handle:
        magic = handle.read(4)
        if magic != MAGIC:
            what = "empty" if not magic else "not a GGUF model (wrong magic bytes)"
            raise GGUFError(f"{path} is {what}", "point to a .gguf file; see: workbench model list")
        reader = _Reader(handle, path, size)
        version = reader.unpack("<I")
        if version not in (2, 3):
            raise GGUFError(f"{path} has GGUF version {version}; this Workbench reads versions 2 and 3")
        tensor_count = reader.unpack("<Q")
        kv_count = reader.unpack("<Q")
        if tensor_count > 1_000_000 or kv_count > 1_000_000:
            raise GGUFError(f"{path} is damaged: implausible header counts")
        metadata: dict[str, Any] = {}
        lengths: dict[str, int] = {}
        for _ in range(kv_count):
            key = reader.string()
            kind = reader.unpack("<I")
            metadata[key] = reader.value(kind, key, lengths)
        tensors = []
        types: dict[int, int] = {}
        for _ in range(tensor_count):
            name = reader.string()
            n_dims = reader.unpack("<I")
            if n_dims > 8:
                raise GGUFError(f"{path} is damaged: tensor {name!r} has {n_dims} dimensions")
            shape = tuple(reader.unpack("<Q") for _ in range(n_dims))
            ttype = reader.unpack("<I")
            offset = reader.unpack("<Q")
            tensors.append(TensorInfo(name, shape, ttype, offset))
            types[ttype] = types.get(ttype, 0) + 1
        alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or alignment <= 0:
            alignment = DEFAULT_ALIGNMENT
        position = handle.tell()
        data_offset = -(-position // alignment) * alignment
    expected = _expected_size(tensors, data_offset)
    return GGUFHeader(path=path, version=version, metadata=metadata, array_lengths=lengths,
                      tensors=tuple(tensors), data_offset=data_offset, file_size=size,
                      expected_size=expected, tensor_types=types)


def _expected_size(tensors: list[TensorInfo], data_offset: int) -> int | None:
    if not tensors:
        return data_offset
    end = data_offset
    for tensor in tensors:
        nbytes = tensor.nbytes
        if nbytes is None:
            # Unknown type: at least the tensor must start inside the file.
            end = max(end, data_offset + tensor.offset + 1)
            continue
        end = max(end, data_offset + tensor.offset + nbytes)
    return end


def check_model_file(path: Path | str) -> GGUFHeader:
    """The header of a model file that is complete, or a one-line GGUFError saying what is wrong."""
    header = read_header(path)
    if header.expected_size is not None and header.file_size < header.expected_size:
        raise GGUFError(f"{header.path} is truncated: {header.file_size} bytes of the "
                        f"{header.expected_size} its header describes", "download the model again")
    if not header.tensors:
        raise GGUFError(f"{header.path} holds no tensors: it is not a usable model")
    return header

"""Payloads of the memory store (`workbench.memory.store`): notes saved, deleted, retrieved, re-indexed."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.events import contract as C
from workbench.events import kinds as K
from workbench.events.contract import Payload
from workbench.events.declared import declare


@declare
@dataclass(frozen=True, slots=True)
class MemorySaved(Payload):
    """A note written: its file, digest and (the first 2000 characters of) its text."""

    KIND = K.MEMORY_SAVED

    id: str = C.text(required=True)
    title: str = C.text()
    tags: tuple[str, ...] = C.items()
    file: str = C.text()
    sha256: str = C.text()
    text: str = C.text()
    chars: int | None = C.integer()


@declare
@dataclass(frozen=True, slots=True)
class MemoryDeleted(Payload):
    KIND = K.MEMORY_DELETED

    id: str = C.text(required=True)
    title: str = C.text()
    file: str = C.text()
    sha256: str = C.text()


@declare
@dataclass(frozen=True, slots=True)
class MemoryRetrieved(Payload):
    """Notes read for a `search` or for a `task` (the latter within a `token_budget`); `results` are
    `{"id", "score"}` objects."""

    KIND = K.MEMORY_RETRIEVED

    purpose: str = C.text()
    query: str = C.text()
    k: int | None = C.integer()
    token_budget: int | None = C.integer(omit=True)
    results: tuple[dict, ...] = C.items()


@declare
@dataclass(frozen=True, slots=True)
class MemoryReindexed(Payload):
    """The index was rebuilt (`rebuilt`, with its `reason`) or caught up with edits made outside this
    process (`indexed`, `removed`, `notes`, and the `ids` touched)."""

    KIND = K.MEMORY_REINDEXED

    rebuilt: bool = C.flag(False)
    reason: str | None = C.text(None, omit=True)
    indexed: int | None = C.integer(omit=True)
    removed: int | None = C.integer(omit=True)
    notes: int | None = C.integer(omit=True)
    ids: tuple[str, ...] = C.items(omit=True)


@declare
@dataclass(frozen=True, slots=True)
class MemoryRolledUp(Payload):
    """Older session notes folded into digests; the originals moved to the `archive` folder."""

    KIND = K.MEMORY_ROLLED_UP

    archived: tuple[str, ...] = C.items()
    digests: tuple[str, ...] = C.items()
    kept: int | None = C.integer()
    archive: str = C.text()


@declare
@dataclass(frozen=True, slots=True)
class MemoryIgnored(Payload):
    """A note file that is not a regular file (a symlink, a FIFO, a device): ignored, never read."""

    KIND = K.MEMORY_IGNORED

    file: str = C.text()
    kind: str = C.text()
    message: str = C.text()
    target: str | None = C.text(None, omit=True)

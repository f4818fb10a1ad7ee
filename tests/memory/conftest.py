"""Fixtures for the memory tests: a fake embedder for the mechanics, the real GGUF for search quality.

The mechanics (files, index, re-index, corruption, events) do not depend on which model embeds, so most
tests use a deterministic bag-of-words embedder and run in milliseconds anywhere. Tests of ranking
quality need the real all-MiniLM-L6-v2 GGUF: they fail loudly in CI and skip locally, naming the file.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import need
from workbench.events import EventBus
from workbench.memory import MemoryStore

DATA = Path(__file__).parent / "data" / "quality.json"


class FakeEmbedder:
    """Hashed bag of words: texts sharing words get close vectors. Counts its calls."""

    dims = 64

    def __init__(self, name: str = "fake-bow"):
        self.id = name
        self.texts: list[str] = []

    def embed(self, texts):
        self.texts.extend(texts)
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dims] += 1.0
            out[row, 0] += 1e-3  # never a zero vector
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class Recorder:
    def __init__(self, bus: EventBus):
        self.events = []
        bus.subscribe(self.events.append)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def recorder(bus) -> Recorder:
    return Recorder(bus)


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def make_store(tmp_path, bus, fake_embedder):
    """Open (or re-open) a store on one folder; every store opened is closed at the end."""
    opened: list[MemoryStore] = []

    def make(embedder=fake_embedder, **kwargs) -> MemoryStore:
        store = MemoryStore(tmp_path / "memory", tmp_path / "memory-index.db", embedder=embedder, bus=bus,
                            session_id="s-test", actor="user:test", **kwargs)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture(scope="session")
def minilm():
    """The real sentence-embedding model, built by packaging/embedding-model.sh."""
    from workbench.memory.embed import embedder_for
    from workbench.memory.model import find_embedding_model, minilm_path

    path = minilm_path()
    need(path.is_file(), f"the embedding model {path} (run: bash packaging/embedding-model.sh)")
    model = find_embedding_model()
    need(model is not None and model.kind == "sentence", f"a valid build stamp beside {path}")
    return embedder_for(model)


@pytest.fixture(scope="session")
def quality_data() -> dict:
    return json.loads(DATA.read_text(encoding="utf-8"))

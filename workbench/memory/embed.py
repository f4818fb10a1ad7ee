"""Text to unit vectors through llama.cpp, loaded on first use and kept for the life of the process.

Loading even a small GGUF costs tens of milliseconds and the agent embeds a query per task, so one
`Llama(embedding=True)` per model file is cached per process. llama.cpp contexts are not thread-safe,
hence the lock. Vectors are L2-normalised so that cosine similarity is a dot product and the vector
index can rank by plain L2 distance.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from workbench.errors import WorkbenchError
from workbench.findings import Finding
from workbench.memory.model import EmbeddingModel, describe, find_embedding_model

MIN_SIMILARITY = 0.2  # expected notes scored 0.26-0.63 on the test set
CONTEXT = 512  # all-MiniLM-L6-v2's limit; longer notes are truncated (the start carries the gist)


def default_threads() -> int:
    """Few threads: the models are small, and llama.cpp's default (every core for a batch) spins badly
    when the machine is busy: on 2 busy cores, 100 short notes took 102 ms each with the default,
    18 ms with one thread."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


class Embedder(Protocol):
    """What the index needs: a stable id for the vectors it makes, and a way to make them."""

    id: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """An (n, d) float32 array of unit vectors."""
        ...


class LlamaEmbedder:
    def __init__(self, model: EmbeddingModel, threads: int | None = None):
        self.model = model
        self.id = model.id
        # Below this cosine a sentence model's hit is off-topic (measured on tests/memory/data); a chat
        # model's vectors are all alike (cosines near 1), so no threshold means anything there.
        self.min_similarity = MIN_SIMILARITY if model.kind == "sentence" else None
        # How much the keyword list counts beside this model's vector list (see workbench.memory.fusion).
        self.text_weight = 0.25 if model.kind == "sentence" else 1.0
        self._threads = threads
        self._llama = None
        self._lock = threading.Lock()

    def _load(self):
        if self._llama is None:
            try:
                import llama_cpp
            except ImportError as exc:  # pragma: no cover - a dependency of the project
                raise WorkbenchError("llama-cpp-python is not installed", "run: make") from exc
            extra = {"pooling_type": llama_cpp.LLAMA_POOLING_TYPE_MEAN} if self.model.pooling_mean else {}
            try:
                threads = self._threads or default_threads()
                self._llama = llama_cpp.Llama(model_path=str(self.model.path), embedding=True, n_ctx=CONTEXT,
                                              n_batch=CONTEXT, n_ubatch=CONTEXT, n_threads=threads,
                                              n_threads_batch=threads, verbose=False, **extra)
            except (ValueError, RuntimeError, OSError) as exc:
                raise WorkbenchError(f"cannot load the embedding model {self.model.path}: {exc}",
                                     "rebuild it: FORCE=1 bash packaging/embedding-model.sh") from exc
        return self._llama

    def close(self) -> None:
        with self._lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None

    @property
    def dimensions(self) -> int:
        with self._lock:
            return int(self._load().n_embd())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        with self._lock:
            llama = self._load()
            # One text at a time: a batch shares the 512-token context, one long note would crowd others.
            rows = [llama.embed(text or " ", normalize=True, truncate=True) for text in texts]
        vectors = np.asarray(rows, dtype=np.float32)
        if vectors.ndim != 2:  # a model without pooling returns per-token vectors
            raise WorkbenchError(f"{self.model.path} gave token vectors, not one vector per text",
                                 "use a sentence-embedding GGUF (packaging/embedding-model.sh)")
        return vectors


_cache: dict[str, LlamaEmbedder] = {}
_cache_lock = threading.Lock()


@atexit.register
def _close_all() -> None:
    """Free the models while the interpreter is still whole: llama.cpp's own finaliser, run during
    shutdown, finds its bindings already gone and prints a traceback."""
    with _cache_lock:
        for embedder in _cache.values():
            try:
                embedder.close()
            except Exception:
                pass
        _cache.clear()


def embedder_for(model: EmbeddingModel) -> LlamaEmbedder:
    """The process-wide embedder for this model file (created once, loaded on first embed)."""
    key = str(model.path.resolve())
    with _cache_lock:
        found = _cache.get(key)
        if found is None or found.id != model.id:
            found = _cache[key] = LlamaEmbedder(model)
        return found


def default_embedder(settings=None) -> LlamaEmbedder | None:
    """The best embedder this machine has (see workbench.memory.model), or None for full-text only."""
    model = find_embedding_model(settings)
    return embedder_for(model) if model is not None else None


def check(settings=None) -> list[Finding]:  # noqa: ANN001 - a workbench.config.Settings
    """Doctor's "embeddings" finding: which embedding model, and how well it ranks.

    Warns rather than fails without the sentence model: memory still works, with the chat model's weaker
    embeddings or full-text search only.
    """
    good, detail, fix = describe(settings)
    return [Finding("embeddings", "ok" if good else "warn", detail, fix or "")]

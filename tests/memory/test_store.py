"""MemoryStore mechanics with a fake embedder: round trip, hand edits, deletion, corruption, events."""

from __future__ import annotations

import os

import pytest

from workbench.errors import UsageError
from workbench.events import MEMORY_SAVED
from workbench.memory import MEMORY_DELETED, MEMORY_REINDEXED, MEMORY_RETRIEVED
from workbench.memory.index import MemoryIndex


def ids(hits):
    return [note.id for note, _ in hits]


def test_round_trip(make_store):
    store = make_store()
    note = store.add("Revenue is in thousands of euros.\nSecond line.", title="Units", tags=["Finance"],
                     session="s9")
    assert note.path.is_file()
    again = make_store().get(note.id)
    assert (again.title, again.body, again.tags, again.session) == ("Units", note.body, ("finance",), "s9")
    assert [n.id for n in store.list()] == [note.id]
    assert store.get(note.id[:6]).id == note.id  # a unique prefix is enough


def test_search_finds_by_words_and_meaning(make_store):
    store = make_store()
    a = store.add("The sales CSV uses semicolons as separators.")
    store.add("The R plots look best with a minimal theme.")
    assert ids(store.search("semicolons separators", k=2))[0] == a.id


def test_hand_edit_is_reindexed_on_open(make_store):
    store = make_store()
    note = store.add("Original text about apples.")
    store.close()
    note.path.write_text(note.path.read_text().replace("apples", "pears and quinces"), encoding="utf-8")
    store = make_store()
    assert ids(store.search("quinces", k=1)) == [note.id]
    assert store.get(note.id).body == "Original text about pears and quinces."


def test_hand_edit_while_open_is_picked_up_by_reindex(make_store, recorder):
    store = make_store()
    note = store.add("Alpha beta.")
    note.path.write_text("---\ntitle: Renamed\n---\nGamma delta epsilon.\n", encoding="utf-8")
    stats = store.reindex()
    assert stats["indexed"] == 1
    assert ids(store.search("epsilon", k=1)) == [note.id]
    assert store.get(note.id).title == "Renamed"
    assert recorder.events[-2].kind == MEMORY_REINDEXED and note.id in recorder.events[-2].payload["ids"]


def test_notes_written_or_deleted_by_hand_are_followed(make_store):
    store = make_store()
    kept = store.add("kept note")
    gone = store.add("doomed note")
    (store.folder.root / "written-by-hand.md").write_text("Hand written about zebras\n", encoding="utf-8")
    gone.path.unlink()
    store.reindex()
    assert ids(store.search("zebras", k=1)) == ["written-by-hand"]
    assert set(store.index.rows()) == {kept.id, "written-by-hand"}


def test_touch_without_change_costs_no_embedding(make_store, fake_embedder):
    store = make_store()
    note = store.add("Stable text.")
    before = len(fake_embedder.texts)
    os.utime(note.path, ns=(1, 1))
    assert store.reindex()["indexed"] == 0
    assert len(fake_embedder.texts) == before


def test_remove_deletes_file_and_index_entry(make_store, recorder):
    store = make_store()
    note = store.add("Temporary note about walruses.")
    other = store.add("Another note.")
    store.remove(note.id)
    assert not note.path.exists()
    assert note.id not in store.index.rows()
    assert note.id not in ids(store.search("walruses", k=5))
    vec_rows = store.index.conn.execute("SELECT count(*) FROM note_vectors").fetchone()[0]
    fts_rows = store.index.conn.execute("SELECT count(*) FROM notes_fts").fetchone()[0]
    assert vec_rows == fts_rows == 1
    assert [n.id for n in store.list()] == [other.id]
    assert MEMORY_DELETED in recorder.kinds()
    with pytest.raises(UsageError):
        store.remove(note.id)


def test_garbage_index_is_rebuilt_without_losing_a_note(make_store, tmp_path, recorder):
    store = make_store()
    notes = [store.add(f"Note number {i} about topic{i}.") for i in range(5)]
    store.close()
    (tmp_path / "memory-index.db").write_bytes(b"this is not a database" * 500)
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"memory-index.db{suffix}").unlink(missing_ok=True)
    store = make_store()
    assert set(store.index.rows()) == {n.id for n in notes}
    assert ids(store.search("topic3", k=1)) == [notes[3].id]
    rebuilt = [e for e in recorder.events if e.kind == MEMORY_REINDEXED and e.payload.get("rebuilt")]
    assert rebuilt and "NotADB" in rebuilt[0].payload["reason"]
    assert (tmp_path / "memory-index.db.damaged").exists()


def test_damaged_pages_are_detected_and_rebuilt(make_store, tmp_path):
    store = make_store()
    notes = [store.add(f"Page filler {i} " + "lorem ipsum " * 200) for i in range(20)]
    store.index.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    path = tmp_path / "memory-index.db"
    data = bytearray(path.read_bytes())
    page = 4096
    for start in range(2 * page, len(data) - page, 3 * page):  # smash every third page after the header
        data[start:start + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    store = make_store()
    assert store.index.rebuilt_because  # quick_check or a read of the damaged tables noticed
    assert set(store.index.rows()) == {n.id for n in notes}
    assert len(store.search("filler", k=20)) == 20


def test_schema_from_another_version_is_rebuilt(make_store, tmp_path):
    store = make_store()
    note = store.add("Versioned note.")
    store.index.set_meta("schema", "999")
    store.close()
    store = make_store()
    assert store.index.rebuilt_because and "999" in store.index.rebuilt_because
    assert note.id in store.index.rows()


def test_changing_the_embedder_re_embeds_everything(make_store, fake_embedder):
    from tests.memory.conftest import FakeEmbedder

    store = make_store()
    store.add("one")
    store.add("two")
    store.close()
    other = FakeEmbedder("another-model")
    store = make_store(embedder=other)
    assert store.index.embedder_id == "another-model"
    assert sorted(t for t in other.texts if t != "dimension probe") == ["one", "two"]


def test_full_text_only_without_an_embedder(make_store):
    store = make_store(embedder=None)
    note = store.add("Keyword search still works for parquet files.")
    assert ids(store.search("parquet", k=3)) == [note.id]
    assert store.index.dimensions == 0


@pytest.mark.parametrize("query", ['NEAR("a" b)', "title:x AND", "*", '"unbalanced', "- OR -", "😀"])
def test_queries_are_never_parsed_as_fts_syntax(make_store, query):
    store = make_store()
    store.add("something")
    store.search(query, k=3)  # no exception


def test_events_on_write_and_retrieval(make_store, recorder):
    store = make_store()
    note = store.add("Event note.", tags=["x"])
    store.search("event", k=2)
    saved = [e for e in recorder.events if e.kind == MEMORY_SAVED][0]
    assert saved.payload["id"] == note.id and saved.payload["text"] == "Event note."
    assert saved.session_id == "s-test" and saved.actor == "user:test"
    retrieved = [e for e in recorder.events if e.kind == MEMORY_RETRIEVED][0]
    assert retrieved.payload["results"][0]["id"] == note.id
    assert MEMORY_REINDEXED not in recorder.kinds()  # our own write is not reported as a hand edit


def test_retrieve_for_task_stays_within_the_budget(make_store, recorder):
    store = make_store()
    for i in range(6):
        store.add(f"Deploy note {i}: " + "deploy the service with care. " * 20, title=f"Deploy {i}")
    text = store.retrieve_for_task("deploy the service", token_budget=120)
    assert text.startswith("Notes from earlier sessions")
    assert (len(text) + 3) // 4 <= 120
    assert store.retrieve_for_task("deploy the service", token_budget=5) == ""
    words = store.retrieve_for_task("deploy the service", 400, count_tokens=lambda s: len(s.split()))
    assert len(words.split()) <= 400 and words.count("## Deploy") >= 2
    assert recorder.events[-1].kind == MEMORY_RETRIEVED and recorder.events[-1].payload["purpose"] == "task"


def test_index_reopens_without_work(make_store, fake_embedder):
    store = make_store()
    for i in range(3):
        store.add(f"note {i}")
    store.close()
    before = len(fake_embedder.texts)
    stats = make_store().reindex()
    assert stats == {"indexed": 0, "removed": 0, "notes": 3}
    assert len(fake_embedder.texts) == before


def test_exact_and_two_stage_vector_search_agree_on_a_small_index(tmp_path):
    import numpy as np

    index = MemoryIndex.open(tmp_path / "i.db")
    index.use_embedder("synthetic", 32)
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((200, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with index.conn:
        for i, v in enumerate(vectors):
            index.upsert(f"n{i}", 0, 0, "", "", "", "", v)
    query = vectors[7]
    exact = index.vector_search(query, 5, exact=True)
    coarse = index.vector_search(query, 5, exact=False)
    assert exact[0][0] == coarse[0][0] and abs(exact[0][1] - 1.0) < 1e-5
    truth = np.argsort(-(vectors @ query))[:5] + 1
    assert [r for r, _ in exact] == truth.tolist()
    index.close()


def test_two_stores_on_one_project_write_at_the_same_time(make_store, fake_embedder):
    import threading

    stores = [make_store(), make_store()]
    errors: list[BaseException] = []

    def writer(store, tag):
        try:
            for i in range(10):
                store.add(f"note {tag}{i}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s, t)) for s, t in zip(stores, "ab", strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    final = make_store()
    assert len(final.index.rows()) == 20 and len(final.list()) == 20

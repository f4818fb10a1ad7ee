"""Words in most notes are left out of the full-text query of a large index: they cost FTS5 a score for
every such note and say nothing about which note is meant."""

from __future__ import annotations

from workbench.memory.index import PRUNE_FROM, MemoryIndex


def fill(index: MemoryIndex, count: int) -> None:
    with index.write():
        for i in range(count):
            rare = " zebra crossing" if i == 7 else ""
            common = " reports" if i % 2 else " quarterly reports"
            index.upsert(f"n{i}", 0, 0, "", f"note {i}", "", f"sales{common}{rare} item{i}", None)


def test_common_words_are_dropped_in_a_large_index(tmp_path):
    index = MemoryIndex.open(tmp_path / "big.db")
    fill(index, PRUNE_FROM + 100)
    # "report" matches the stemmed "reports" in every note; "zebra" is in one.
    assert index.informative_words(["report", "zebra"]) == ["zebra"]
    frequencies = index.document_frequencies(["report", "zebra", "absent"])
    assert frequencies == {"report": PRUNE_FROM + 100, "zebra": 1, "absent": 0}
    # When every word is common, the rarest stays, so the query still means something.
    assert index.informative_words(["sales", "quarterly"]) == ["quarterly"]
    rowids = index.text_search('"zebra"', 5)
    assert index.ids_of(rowids) == {rowids[0]: "n7"}


def test_small_index_keeps_every_word(tmp_path):
    index = MemoryIndex.open(tmp_path / "small.db")
    fill(index, 50)
    assert index.informative_words(["report", "zebra"]) == ["report", "zebra"]

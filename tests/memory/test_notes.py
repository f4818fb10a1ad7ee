"""The Markdown side: front-matter round trip, forgiving parsing, safe names, no clobbering."""

from __future__ import annotations

import pytest

from workbench.errors import UsageError
from workbench.memory.notes import (
    Note,
    NoteFolder,
    check_id,
    clean_tags,
    default_title,
    parse,
    render,
    slugify,
)


def test_render_parse_round_trip_keeps_every_field():
    note = Note(id="n1", title='Quotes "inside": and a colon', body="Line one\n\n- a list\n---\nafter a rule",
                created="2026-01-02T03:04:05+00:00", session="abc123", tags=("csv", "sales"))
    back = parse(render(note), "n1")
    assert back == note


def test_a_file_without_front_matter_is_still_a_note():
    note = parse("# Heading line\nsome text\n", "hand", mtime=0)
    assert note.title == "Heading line"
    assert note.body.startswith("# Heading line")
    assert note.created.startswith("1970-01-01")
    assert note.tags == () and note.session is None


def test_broken_front_matter_does_not_lose_the_text():
    text = "---\ntitle: never closed\nThe body the user typed"
    note = parse(text, "x")
    assert "The body the user typed" in note.body


def test_tags_are_cleaned_and_deduplicated():
    assert clean_tags(["CSV", "csv", " Sales Data ", "a,b", ""]) == ("csv", "sales-data", "a", "b")


def test_default_title_is_short_and_cut_at_a_word():
    assert default_title("\n\n  ## Title here\nbody") == "Title here"
    long = default_title("word " * 100)
    assert len(long) <= 121 and long.endswith("…")


@pytest.mark.parametrize("text", ["../../etc/passwd", "Ünïcødé — title!", "", "CON", "a/b\\c"])
def test_slugs_are_safe_file_names(text):
    slug = slugify(text)
    assert slug and len(slug) <= 32
    assert all(c.isascii() and (c.isalnum() or c == "-") for c in slug)


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".hidden", "x\\y", "a\nb"])
def test_ids_that_could_escape_the_folder_are_refused(bad):
    with pytest.raises(UsageError):
        check_id(bad)


def test_create_never_overwrites_and_leaves_no_temporary_files(tmp_path):
    folder = NoteFolder(tmp_path)
    first = folder.create("Same title", "one", (), None)
    second = folder.create("Same title", "two", (), None)
    assert first.id != second.id
    assert folder.read(first.id)[0].body == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{first.id}.md", f"{second.id}.md"])

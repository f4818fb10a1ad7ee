"""Session notes roll up into monthly digests: the newest stay, older ones become digest lines, their files
move to archive/ (nothing is deleted), the index follows, and it is all on the record."""

from __future__ import annotations

import pytest

from workbench.memory import MemoryStore


def session(store: MemoryStore, day: str, task: str, ok: bool = True):
    tags = ("session", "agent", "success" if ok else "failure")
    verdict = "succeeded" if ok else "failed"
    note = store.folder.create(f"Agent session {verdict}: {task}", f"Task: {task}\n\nOutcome: {verdict}", tags,
                               None, created=f"{day}T10:00:00+00:00")
    store.reindex()
    return note


@pytest.fixture
def store(tmp_path, bus):
    opened = MemoryStore(tmp_path / "memory", tmp_path / "index.db", embedder=None, bus=bus)
    yield opened
    opened.close()


def test_older_session_notes_fold_into_monthly_digests(store, recorder, tmp_path):
    kept_by_hand = store.add("The sales file uses semicolons.", title="Sales separator", tags=("csv",))
    made = [session(store, "2026-10-03", "load the October orders"),
            session(store, "2026-10-20", "chart revenue by region", ok=False),
            session(store, "2026-11-02", "clean the customer table"),
            session(store, "2026-11-10", "fit a churn model"),
            session(store, "2026-11-20", "export the summary")]
    before = {n.id: n.path.read_bytes() for n in made}
    done = store.roll_up_sessions(keep=2)
    assert done.archived == tuple(n.id for n in made[:3])
    assert done.digests == ("sessions-2026-10", "sessions-2026-11")
    ids = {n.id for n in store.list()}
    assert ids == {kept_by_hand.id, made[3].id, made[4].id, "sessions-2026-10", "sessions-2026-11"}
    october = store.get("sessions-2026-10")
    assert october.title == "Agent sessions in 2026-10 (digest)" and "digest" in october.tags
    assert october.body.splitlines() == [
        f"- 2026-10-03 succeeded: load the October orders (archived as {made[0].id})",
        f"- 2026-10-20 failed: chart revenue by region (archived as {made[1].id})"]
    # Nothing is lost: the files are in the archive, byte for byte.
    for note in made[:3]:
        assert (tmp_path / "memory" / "archive" / note.path.name).read_bytes() == before[note.id]
        assert not note.path.exists()
    # The index followed: the digest is found by a task's words, the archived note itself is not.
    hits = [n.id for n, _ in store.search("revenue by region")]
    assert hits[0] == "sessions-2026-10" and made[1].id not in hits
    (event,) = [e for e in recorder.events if e.kind == "memory.rolled_up"]
    assert event.payload["archived"] == list(done.archived) and event.payload["kept"] == 2


def test_a_later_roll_up_extends_the_digest_and_never_folds_a_digest(store):
    first = [session(store, "2026-11-0" + str(day), f"task number {day}") for day in range(1, 5)]
    store.roll_up_sessions(keep=2)
    later = session(store, "2026-11-09", "task number 9")
    done = store.roll_up_sessions(keep=2)
    assert done.archived == (first[2].id,) and done.digests == ("sessions-2026-11",)
    lines = store.get("sessions-2026-11").body.splitlines()
    assert [line.split(" (archived")[0] for line in lines] == [
        "- 2026-11-01 succeeded: task number 1", "- 2026-11-02 succeeded: task number 2",
        "- 2026-11-03 succeeded: task number 3"]
    assert {n.id for n in store.list()} == {first[3].id, later.id, "sessions-2026-11"}
    assert store.roll_up_sessions(keep=2).archived == ()  # nothing more to do


def test_keep_zero_keeps_everything_and_the_setting_is_the_default(tmp_path, bus):
    from workbench.config import Settings

    settings = Settings(memory={"keep_session_notes": 1})
    store = MemoryStore(tmp_path / "m", tmp_path / "i.db", embedder=None, bus=bus, settings=settings)
    try:
        for day in ("2026-11-01", "2026-11-02", "2026-11-03"):
            session(store, day, f"work of {day}")
        assert store.roll_up_sessions(keep=0).archived == ()
        assert len(store.roll_up_sessions().archived) == 2  # the setting: keep one
    finally:
        store.close()


def test_cli_rollup(workbench_cmd, project):
    import subprocess

    store = MemoryStore.for_project(project, embedder=None)
    try:
        for day in ("2026-09-01", "2026-09-02", "2026-09-03"):
            session(store, day, f"job of {day}")
    finally:
        store.close()
    done = subprocess.run([*workbench_cmd, "memory", "rollup", "-p", str(project.root), "--keep", "1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "rolled up 2 session notes into sessions-2026-09"
    again = subprocess.run([*workbench_cmd, "memory", "rollup", "-p", str(project.root), "--keep", "1"],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and again.stderr.strip() == "nothing to roll up"

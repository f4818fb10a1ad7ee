"""Several connections opening one new database at once: none fails with "database is locked" (SQLite does
not wait through its busy timeout while another connection switches the database to WAL)."""

from __future__ import annotations

import threading

import pytest


def _together(opener, tmp_path, trials: int = 40, threads: int = 4) -> list[BaseException]:
    errors: list[BaseException] = []
    for trial in range(trials):
        folder = tmp_path / f"t{trial}"
        folder.mkdir()
        start = threading.Barrier(threads)

        def open_it(folder=folder, start=start):
            start.wait()
            try:
                opener(folder)
            except BaseException as exc:  # collected: the assertion below names it
                errors.append(exc)

        workers = [threading.Thread(target=open_it) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    return errors


def test_the_schedule_store(tmp_path):
    from workbench.heartbeat.store import ScheduleStore

    def opener(folder):
        store = ScheduleStore(folder / "state.db")
        store.all()
        store.close()

    assert _together(opener, tmp_path) == []


def test_the_memory_index(tmp_path):
    from workbench.memory.index import MemoryIndex

    assert _together(lambda folder: MemoryIndex.open(folder / "index.db").close(), tmp_path) == []


@pytest.mark.parametrize("mode, expected", [("delete", "wal"), ("wal", "wal")])
def test_enable_wal_retries_a_locked_database_and_keeps_wal(mode, expected):
    from workbench.wal import enable_wal

    class Locked(Exception):
        pass

    answers = iter([Locked("database is locked"), Locked("database is locked"), mode, "wal"])

    def execute(sql):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert enable_wal(execute, (Locked,)) == expected
    with pytest.raises(Locked, match="disk I/O"):
        enable_wal(lambda sql: (_ for _ in ()).throw(Locked("disk I/O error")), (Locked,))

"""The witness state binds the file a checkpoint was signed in: a copied project folder that goes on signing
on its own is a fork, and neither copy fails for the other's checkpoints; a rollback in place still does."""

from __future__ import annotations

import shutil

from workbench.audit.log import AuditLog
from workbench.events import Event
from workbench.project import Project


def append_and_sign(project: Project, text: str, count: int = 3) -> None:
    with AuditLog.open(project) as log:
        for i in range(count):
            log.append(Event(kind="note", session_id="s", actor="user:t", payload={"text": f"{text}{i}"}))
        log.checkpoint()


def test_a_copy_and_its_original_both_verify_after_each_signs_on_its_own(tmp_path):
    original = Project.init(tmp_path / "p")
    append_and_sign(original, "shared")
    shutil.copytree(original.root, tmp_path / "copy", symlinks=True)
    copy = Project.open(tmp_path / "copy")
    append_and_sign(copy, "copy")  # the copy signs size 6 first
    append_and_sign(original, "original")  # then the original signs its own size 6
    for project in (original, copy):
        with AuditLog.open(project, create=False) as log:
            result = log.verify()
        assert result.ok, result.message()


def test_a_rollback_in_place_is_still_caught_next_to_a_copy(tmp_path):
    original = Project.init(tmp_path / "p")
    append_and_sign(original, "a")
    shutil.copytree(original.root, tmp_path / "copy", symlinks=True)
    older = tmp_path / "older.db"
    shutil.copy(original.audit_db, older)
    append_and_sign(original, "b")
    for suffix in ("-wal", "-shm"):
        (original.state_dir / f"audit.db{suffix}").unlink(missing_ok=True)
    shutil.copy(older, original.audit_db)
    with AuditLog.open(original, create=False) as log:
        result = log.verify()
    assert not result.ok and "rolled back" in result.message()

"""The heartbeat command line, and one real unattended run through the sandbox."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

import pytest

from tests.conftest import need
from workbench.heartbeat.schedule import Schedule


def run(cmd, *args):
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)


def test_add_list_pause_resume_remove(workbench_cmd, project, tmp_path):
    script = tmp_path / "hb.py"
    script.write_text('print("hb")\n')
    p = str(project.root)
    added = run(workbench_cmd, "heartbeat", "add", "-p", p, "--name", "nightly", "--cron", "0 2 * * *",
                "--tz", "UTC", "--lang", "python", "--code", str(script))
    assert added.returncode == 0, added.stderr
    assert "next run" in added.stdout
    listed = run(workbench_cmd, "heartbeat", "list", "-p", p)
    assert "nightly" in listed.stdout and "never run" in listed.stdout
    assert run(workbench_cmd, "heartbeat", "pause", "-p", p, "nightly").returncode == 0
    assert "paused" in run(workbench_cmd, "heartbeat", "list", "-p", p).stdout
    assert run(workbench_cmd, "heartbeat", "resume", "-p", p, "nightly").returncode == 0
    assert run(workbench_cmd, "heartbeat", "remove", "-p", p, "nightly").returncode == 0
    assert "no schedules" in run(workbench_cmd, "heartbeat", "list", "-p", p).stdout


@pytest.mark.parametrize("cron", ["61 * * * *", "* * *", "0 25 * * *", "banana"])
def test_invalid_cron_is_one_line(workbench_cmd, project, tmp_path, cron):
    script = tmp_path / "hb.py"
    script.write_text("print(1)\n")
    result = run(workbench_cmd, "heartbeat", "add", "-p", str(project.root), "--name", "bad", "--cron", cron,
                 "--lang", "python", "--code", str(script))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "invalid cron expression" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_task_needing_approval_is_refused_at_add_time(workbench_cmd, project):
    project.config_file.write_text("[agent]\napproval = 'ask'\n")
    result = run(workbench_cmd, "heartbeat", "add", "-p", str(project.root), "--cron", "0 7 * * 1-5",
                 "--task", "refresh the sales report")
    assert result.returncode == 2 and "would need approval" in result.stderr
    accepted = run(workbench_cmd, "heartbeat", "add", "-p", str(project.root), "--cron", "0 7 * * 1-5",
                   "--task", "refresh the sales report", "--approve", "deny")
    assert accepted.returncode == 0, accepted.stderr


def test_unknown_language_and_missing_file(workbench_cmd, project, tmp_path):
    missing = run(workbench_cmd, "heartbeat", "add", "-p", str(project.root), "--cron", "* * * * *",
                  "--lang", "python", "--code", str(tmp_path / "nope.py"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    (tmp_path / "x.cob").write_text("DISPLAY 'HI'.")
    unknown = run(workbench_cmd, "heartbeat", "add", "-p", str(project.root), "--cron", "* * * * *",
                  "--lang", "cobol", "--code", str(tmp_path / "x.cob"))
    assert unknown.returncode == 2 and "unknown language" in unknown.stderr


@pytest.mark.engine
def test_real_unattended_runs_are_audited(project):
    from workbench.doctor import run_doctor
    from workbench.heartbeat.runner import run_schedule

    report = run_doctor(project.settings(), project.root)
    need(report.get("engine").status == "ok" and report.get("base image").status == "ok",
         "a running container engine with the base image (make setup)")
    good = Schedule(name="ok-job", cron="* * * * *", timezone="UTC", kind="script", language="python",
                    code='print("heartbeat-ran")')
    bad = Schedule(name="bad-job", cron="* * * * *", timezone="UTC", kind="script", language="python",
                   code='import sys; print("boom", file=sys.stderr); sys.exit(3)')
    slow = Schedule(name="slow-job", cron="* * * * *", timezone="UTC", kind="script", language="shell",
                    code="sleep 30", timeout=2)
    now = datetime.now(UTC)
    seen, stopped = [], []

    def watch(bus):
        unsubscribe = bus.subscribe(seen.append)
        return lambda: (unsubscribe(), stopped.append(True))

    assert run_schedule(project, good, now, watch=watch).outcome == "succeeded"
    # The watcher saw the run live (how the TUI streams it) and was let go when the run ended.
    assert any(e.kind == "exec.output" and "heartbeat-ran" in e.payload["text"] for e in seen)
    assert {e.actor for e in seen if e.kind.startswith("exec.")} == {"heartbeat:ok-job"}
    assert stopped == [True]
    failed = run_schedule(project, bad, now)
    assert failed.outcome == "failed" and failed.exit_code == 3 and "boom" in failed.detail
    assert run_schedule(project, slow, now).outcome == "timed-out"

    from workbench.audit import AuditLog

    log = AuditLog.open(project)
    entries = list(log.entries())
    actors = {e.actor for e in entries}
    assert {"heartbeat:ok-job", "heartbeat:bad-job", "heartbeat:slow-job"} <= actors
    assert any(e.kind == "error" and e.payload.get("schedule") == "bad-job" for e in entries)
    assert log.verify().ok


@pytest.mark.engine
def test_failed_run_leaves_a_memory_note(project):
    from workbench.doctor import run_doctor
    from workbench.heartbeat.runner import run_schedule
    from workbench.memory import MemoryStore

    report = run_doctor(project.settings(), project.root)
    need(report.get("engine").status == "ok" and report.get("base image").status == "ok",
         "a running container engine with the base image (make setup)")
    bad = Schedule(name="etl", cron="0 2 * * *", timezone="UTC", kind="script", language="shell", code="exit 7")
    assert run_schedule(project, bad, datetime.now(UTC)).outcome == "failed"
    store = MemoryStore.for_project(project, embedder=None)
    notes = store.list()
    assert any("heartbeat etl failed" in note.title for note in notes)

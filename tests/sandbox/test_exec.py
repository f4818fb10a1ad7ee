"""Executions through the real engine: languages, exit codes, live streaming, output, files, events."""

from __future__ import annotations

import hashlib

import pytest

from tests.sandbox.conftest import make_settings, run, still_works

pytestmark = pytest.mark.engine


@pytest.mark.parametrize("language, code, expected", [
    ("python", "print(6*7)", b"42\n"),
    ("r", "cat(2+3, '\\n')", b"5 \n"),
    ("shell", "echo $((7*6))", b"42\n"),
    ("sql", "select 40+2 as answer;", b"42"),
])
def test_each_language_runs(sandbox, language, code, expected):
    result, _ = run(sandbox, language, code)
    assert result.ok, result
    assert expected in result.stdout.kept
    assert result.language == language


def test_sql_prints_a_table_from_the_workspace_database(sandbox, module_project):
    run(sandbox, "sql", "create table if not exists t(name text, n int); delete from t; "
                        "insert into t values ('a', 1), ('b', 2);")
    result, _ = run(sandbox, "sql", "select name, n from t order by n;")
    assert result.ok
    text = result.stdout.text()
    assert "name" in text and "a" in text and "b" in text
    assert (module_project.workspace / "data.db").exists()


@pytest.mark.parametrize("language, code, status", [
    ("python", "import sys; sys.exit(3)", 3),
    ("python", "raise ValueError('boom')", 1),
    ("shell", "exit 7", 7),
    ("r", "quit(status = 4)", 4),
    ("sql", "select * from no_such_table;", 1),
])
def test_exit_codes_pass_through(sandbox, language, code, status):
    result, _ = run(sandbox, language, code)
    assert result.exit_code == status
    assert not result.ok and not result.timed_out and result.killed_by is None


def test_python_error_goes_to_stderr(sandbox):
    result, _ = run(sandbox, "python", "print('out'); raise ValueError('boom')")
    assert result.stdout.kept == b"out\n"
    assert b"ValueError: boom" in result.stderr.kept


def test_output_streams_live_and_apart(sandbox):
    code = ("import sys, time\nprint('first', flush=True)\nprint('err', file=sys.stderr, flush=True)\n"
            "time.sleep(1)\nprint('second', flush=True)\n")
    execution = sandbox.execute("python", code)
    seen = []
    for chunk in execution:
        seen.append(chunk)
    result = execution.result()
    assert result.ok
    first = next(c for c in seen if b"first" in c.data)
    second = next(c for c in seen if b"second" in c.data)
    assert first.stream == "stdout" and second.stream == "stdout"
    assert any(c.stream == "stderr" and b"err" in c.data for c in seen)
    # the first line arrived before the second was even written (1 s later)
    assert second.at - first.at >= 0.8
    assert result.stdout.kept == b"first\nsecond\n"
    assert result.stderr.kept == b"err\n"


def test_binary_and_non_utf8_output_pass_through(sandbox, recorder):
    code = "import sys; sys.stdout.buffer.write(bytes(range(256)))"
    result, chunks = run(sandbox, "python", code)
    assert result.ok
    assert b"".join(c.data for c in chunks) == bytes(range(256))
    assert result.stdout.kept == bytes(range(256))
    assert result.stdout.sha256 == hashlib.sha256(bytes(range(256))).hexdigest()
    texts = "".join(e.payload["text"] for e in recorder.of("exec.output", result.execution_id))
    assert "\\x80" in texts and "\\xff" in texts  # escaped in events, never dropped


def test_output_cap_truncates_but_digest_covers_everything(engine_ready, module_project):
    from tests.sandbox.conftest import Recorder
    from workbench.sandbox import Sandbox

    recorder = Recorder()
    with Sandbox.open(module_project, bus=recorder.bus, settings=make_settings(output_cap=1024)) as box:
        result, chunks = run(box, "python", "import sys; sys.stdout.write('x' * 5000)")
    everything = b"x" * 5000
    assert b"".join(c.data for c in chunks) == everything  # the live view gets every byte
    assert result.stdout.total_bytes == 5000
    assert result.stdout.truncated
    assert result.stdout.kept == everything[:1024]
    assert result.stdout.sha256 == hashlib.sha256(everything).hexdigest()
    published = sum(len(e.payload["text"]) for e in recorder.of("exec.output", result.execution_id))
    assert published == 1024  # only bytes within the cap reach the events (and the audit log)
    finished = recorder.of("exec.finished", result.execution_id)[0].payload
    assert finished["stdout"]["truncated"] and finished["stdout"]["total_bytes"] == 5000


def test_events_describe_the_execution(sandbox, recorder):
    result, _ = run(sandbox, "python", "print('hello')")
    started = recorder.of("exec.started", result.execution_id)
    finished = recorder.of("exec.finished", result.execution_id)
    assert len(started) == 1 and len(finished) == 1
    assert started[0].payload["code"] == "print('hello')" and started[0].payload["language"] == "python"
    assert started[0].payload["limits"]["memory"]
    assert finished[0].payload == result.to_payload()
    assert finished[0].session_id == "test" and finished[0].actor == "user:test"
    output = recorder.of("exec.output", result.execution_id)
    assert "".join(e.payload["text"] for e in output) == "hello\n"
    assert output[0].payload["offset"] == 0 and output[0].payload["stream"] == "stdout"


def test_file_changes_are_reported_with_hashes(sandbox, module_project):
    (module_project.workspace / "old.txt").write_text("old")
    (module_project.workspace / "gone.txt").write_text("bye")
    code = ("open('/workspace/new.txt','w').write('new')\nopen('/workspace/old.txt','w').write('changed!')\n"
            "import os; os.remove('/workspace/gone.txt')")
    result, _ = run(sandbox, "python", code)
    changes = {c.path: c for c in result.files}
    assert changes["new.txt"].change == "created"
    assert changes["new.txt"].sha256 == hashlib.sha256(b"new").hexdigest()
    assert changes["old.txt"].change == "modified" and changes["old.txt"].size == 8
    assert changes["gone.txt"].change == "deleted" and changes["gone.txt"].sha256 is None


def test_a_plot_file_is_an_artifact(sandbox):
    png = "import base64; open('/workspace/plot.png','wb').write(base64.b64decode(" \
          "'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=='))"
    result, _ = run(sandbox, "python", png)
    assert [(a.path, a.mime) for a in result.artifacts] == [("plot.png", "image/png")]


def test_timeout_kills_and_the_next_run_works(sandbox):
    result, _ = run(sandbox, "python", "while True: pass", timeout=2)
    assert result.timed_out and result.killed_by == "timeout"
    assert 2 <= result.duration < 10
    still_works(sandbox)


def test_cancel_stops_a_running_execution(sandbox):
    execution = sandbox.execute("shell", "echo started; sleep 60")
    for chunk in execution:
        if b"started" in chunk.data:
            execution.cancel()
    result = execution.result()
    assert result.killed_by == "user" and result.duration < 10
    still_works(sandbox)


def test_workspace_and_files_persist_across_containers(engine_ready, module_project):
    from workbench.sandbox import Sandbox

    with Sandbox.open(module_project) as first:
        assert run(first, "shell", "echo kept > /workspace/keep.txt")[0].ok
    with Sandbox.open(module_project) as second:
        result, _ = run(second, "shell", "cat /workspace/keep.txt")
    assert result.stdout.kept == b"kept\n"


def test_unknown_language_is_a_usage_error(sandbox):
    from workbench.errors import UsageError

    with pytest.raises(UsageError, match="unknown language"):
        sandbox.execute("cobol", "DISPLAY 'HI'")

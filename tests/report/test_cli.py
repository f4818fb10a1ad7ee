"""`workbench report`: options, one-line errors, exit codes."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from tests.report.conftest import append, pdf_text
from tests.report.test_render import T0, run_events, session
from workbench.cli import main
from workbench.cli.report_cmd import parse_time
from workbench.errors import UsageError


def cli(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture
def logged(project):
    append(project, session("cli-s", T0, run_events("cli-s", "e1", "print('cli-marker')", "cli-marker\n", 4, T0)))
    return project


def test_report_writes_the_pdf_and_says_so(logged, tmp_path, capsys):
    out = tmp_path / "r.pdf"
    assert cli("report", "-p", str(logged.root), "--out", str(out)) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"wrote {out}") and "log verified" in said
    text = pdf_text(out)
    assert "cli-marker" in text and "verif" in text.lower()


def test_report_of_a_tampered_log_is_written_and_exits_1(logged, tmp_path, capsys):
    db = sqlite3.connect(logged.audit_db)
    db.execute("UPDATE entries SET time = '2020-01-01T00:00:00.000000+00:00' WHERE seq = 1")
    db.commit()
    db.close()
    out = tmp_path / "t.pdf"
    assert cli("report", "-p", str(logged.root), "--out", str(out)) == 1
    captured = capsys.readouterr()
    assert "did not verify" in captured.err and len(captured.err.strip().splitlines()) == 1
    assert "AUDIT LOG DID NOT VERIFY" in pdf_text(out)


@pytest.mark.parametrize("args, message", [
    (["--since", "yesterday"], "not an ISO 8601"),
    (["--since", "2025-02-01", "--until", "2025-01-01"], "--since is after --until"),
])
def test_bad_options_are_one_line_usage_errors(logged, tmp_path, capsys, args, message):
    assert cli("report", "-p", str(logged.root), "--out", str(tmp_path / "x.pdf"), *args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.pdf").exists()


def test_no_audit_log_is_a_one_line_error(project, tmp_path, capsys):
    assert cli("report", "-p", str(project.root), "--out", str(tmp_path / "x.pdf")) != 0
    assert "no audit log" in capsys.readouterr().err


def test_session_filter(logged, tmp_path, capsys):
    out = tmp_path / "s.pdf"
    assert cli("report", "-p", str(logged.root), "--out", str(out), "--session", "nope") == 0
    assert "0 executions" in capsys.readouterr().out


def test_parse_time():
    assert parse_time("2025-01-31", "--since") == datetime(2025, 1, 31, tzinfo=UTC)
    end = parse_time("2025-01-31", "--until", end_of_day=True)
    assert end is not None and (end.day, end.hour, end.minute) == (31, 23, 59)
    assert parse_time("2025-01-31T10:00:00Z", "--since") == datetime(2025, 1, 31, 10, tzinfo=UTC)
    with pytest.raises(UsageError):
        parse_time("31/01/2025", "--since")

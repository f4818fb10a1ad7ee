"""PostgreSQL through the session's PgBouncer: code in a real container reads rows with no password, reaches
no other database, sees no secret; the host side keeps PgBouncer's files private and says in one line when
PgBouncer is missing or the database refuses the credential. Real parts throughout: Debian's postgresql
and pgbouncer, rootless or rootful Podman, the base image (psql from the project's apt layer)."""

from __future__ import annotations

import os
import stat
import subprocess
import time

import pytest

from tests.network.fixtures import CREDENTIAL, DATABASE, OTHER, PASSWORD, ROLE, rule, with_policy
from tests.sandbox.conftest import Recorder, make_settings, run, still_works

pytestmark = pytest.mark.engine


def connections(recorder, database=None):
    return [e.payload for e in recorder.events
            if e.kind == "net.connection" and (database is None or e.payload["database"] == database)]


def test_sql_with_db_reads_rows_as_a_table_with_no_password(pg_sandbox, pg_recorder):
    # the first use installs postgresql-client into the project image (the apt layer), then runs psql
    result, _ = run(pg_sandbox, "sql", "select id, name from items order by id", database=DATABASE)
    out = result.stdout.text()
    assert result.exit_code == 0, (out, result.stderr.text(), result.notes)
    assert "apples" in out and "plums" in out and "│" in out and "(3 rows)" in out
    found = connections(pg_recorder, DATABASE)
    assert found and found[-1]["role"] == ROLE and found[-1]["credential"] == CREDENTIAL
    assert found[-1]["refused"] == "" and found[-1]["bytes_down"] > 100 and found[-1]["bytes_up"] > 20
    assert found[-1]["duration"] > 0
    assert found[-1]["execution_id"] == result.execution_id  # the execution it was part of


def test_code_connects_with_psql_and_python_sees_the_socket(pg_sandbox):
    run(pg_sandbox, "sql", "select 1", database=DATABASE)  # psql installed
    result, _ = run(pg_sandbox, "shell", f'psql -X -A -t "host=/run/workbench/pg dbname={DATABASE}" '
                                          "-c 'select current_user, count(*) from items'")
    assert result.exit_code == 0, result.stderr.text()
    assert result.stdout.text().strip() == f"{ROLE}|3"


def test_another_database_and_the_admin_console_are_refused(pg_sandbox, pg_recorder):
    run(pg_sandbox, "sql", "select 1", database=DATABASE)
    for name in (OTHER, "pgbouncer", "postgres"):
        result, _ = run(pg_sandbox, "shell", f'psql -X "host=/run/workbench/pg dbname={name} user=pgbouncer" '
                                              "-c 'select 1'")
        assert result.exit_code != 0
        assert f'the database "{name}" is not allowed' in result.stderr.text()
        assert connections(pg_recorder, name)[-1]["refused"]
    # a replication connection to the allowed name is refused too
    result, _ = run(pg_sandbox, "shell", f'psql -X "host=/run/workbench/pg dbname={DATABASE} '
                                          'replication=database" -c "IDENTIFY_SYSTEM"')
    assert result.exit_code != 0 and "replication connections are not allowed" in result.stderr.text()
    still_works(pg_sandbox)


def test_no_password_in_the_container_and_its_folder_is_read_only(pg_sandbox):
    run(pg_sandbox, "sql", "select 1", database=DATABASE)
    probe = ("env; cat /proc/*/cmdline 2>/dev/null | tr '\\0' ' '; echo; ls -laR /run/workbench 2>&1; "
             "cat /run/workbench/pg/* 2>&1; grep -rs . /run/workbench 2>&1 | head -50; "
             "touch /run/workbench/pg/x 2>&1; ln -s /etc/passwd /run/workbench/pg/.s.PGSQL.6432 2>&1; "
             "rm -f /run/workbench/pg/.s.PGSQL.5432 2>&1; echo done")
    # a psql connection stays open while the probe looks at every process's command line
    result, _ = run(pg_sandbox, "shell", f'(psql -X "host=/run/workbench/pg dbname={DATABASE}" -c "select '
                                          f'pg_sleep(2)" >/dev/null &) ; sleep 0.5; {probe}')
    text = result.stdout.text() + result.stderr.text()
    assert "done" in text
    assert PASSWORD not in text
    assert "Read-only file system" in text
    assert "pgbouncer.ini" not in text and "userlist" not in text
    again, _ = run(pg_sandbox, "sql", "select count(*) from items", database=DATABASE)
    assert again.exit_code == 0 and "3" in again.stdout.text()


def test_pgbouncer_files_are_private_and_outside_the_project(pg_sandbox, module_project):
    bouncer = pg_sandbox.databases.bouncer
    root = str(module_project.root.resolve())
    for path in bouncer.files():
        st = os.stat(path)
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()
        assert not str(path.resolve()).startswith(root)
    assert PASSWORD in (bouncer.private / "userlist.txt").read_text()
    assert PASSWORD not in (bouncer.private / "pgbouncer.ini").read_text()
    assert stat.S_IMODE(os.stat(bouncer.private).st_mode) in (0o700, 0o711)
    assert not any(PASSWORD in p.read_text(errors="replace") for p in module_project.root.rglob("*")
                   if p.is_file() and not p.is_symlink() and p.stat().st_size < 1 << 20)


def test_the_session_end_stops_pgbouncer_and_removes_its_files(engine_ready, pg_server, tmp_path, monkeypatch):
    from workbench.project import Project
    from workbench.sandbox import Sandbox

    with_policy(monkeypatch, [rule(pg_server)])
    box = Sandbox.open(Project.init(tmp_path / "p"), settings=make_settings())
    process, private = box.databases.bouncer.process, box.databases.bouncer.private
    socket_path = box.databases.folder / ".s.PGSQL.5432"
    assert process.poll() is None and private.exists() and socket_path.exists()
    box.close()
    assert process.poll() is not None and not private.exists() and not socket_path.exists()


def test_no_database_rules_no_pgbouncer_and_no_mount(engine_ready, tmp_path, monkeypatch):
    from workbench.project import Project
    from workbench.sandbox import Sandbox

    with_policy(monkeypatch, [])
    with Sandbox.open(Project.init(tmp_path / "p"), settings=make_settings()) as box:
        assert box.databases is None
        result, _ = run(box, "shell", "ls /run/workbench/pg 2>&1; echo $?")
        assert "No such file" in result.stdout.text()


def test_a_refused_credential_is_one_line_naming_the_secret(pg_server, tmp_path):
    from workbench.network.databases import DatabaseAccess

    seen = []
    access = DatabaseAccess.open(tmp_path, tmp_path, seen.append, rules=[rule(pg_server)],
                                 secret=lambda name: "not-the-password")
    try:
        done = subprocess.run([str(pg_server.bin / "psql"), "-X", f"host={access.folder} dbname={DATABASE}",
                               "-c", "select 1"], capture_output=True, text=True, timeout=30)
    finally:
        access.close()
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert f"refused the credential '{CREDENTIAL}'" in lines[0] and f"workbench secret set {CREDENTIAL}" in lines[0]
    assert seen[-1].refused.startswith("Workbench: the database sales refused the credential")


def test_pgbouncer_missing_is_one_line_and_other_code_still_runs(engine_ready, pg_server, tmp_path, monkeypatch):
    from workbench.errors import WorkbenchError
    from workbench.network import pgbouncer
    from workbench.project import Project
    from workbench.sandbox import Sandbox

    monkeypatch.setattr(pgbouncer, "PROGRAM", "pgbouncer-not-installed")
    with_policy(monkeypatch, [rule(pg_server)])
    project = Project.init(tmp_path / "p")
    recorder = Recorder()
    with Sandbox.open(project, bus=recorder.bus, settings=make_settings()) as box:
        with pytest.raises(WorkbenchError) as caught:
            box.execute("sql", "select 1", database=DATABASE)
        line = caught.value.one_line()
        assert "\n" not in line and "pgbouncer is not installed" in line and "apt-get install pgbouncer" in line
        still_works(box)  # nothing else changes: code runs, and a connection is told the same line
        result, _ = run(box, "python", "import socket; s = socket.socket(socket.AF_UNIX); "
                        "s.connect('/run/workbench/pg/.s.PGSQL.5432'); import struct; "
                        "body = struct.pack('!I', 196608) + b'database\\0sales\\0\\0'; "
                        "s.sendall(struct.pack('!I', len(body) + 4) + body); print(s.recv(1000))")
        assert b"pgbouncer is not installed" in result.stdout.kept, result.stderr.text()
    assert "pgbouncer is not installed" in connections(recorder, DATABASE)[-1]["refused"]
    assert not list(tmp_path.glob("p/workspace/*"))


def test_an_unknown_secret_is_one_line_naming_it(pg_server, tmp_path):
    from workbench.errors import UsageError
    from workbench.network.databases import DatabaseAccess, language_for

    def vault(name):
        raise UsageError(f"no secret named {name!r}", f"workbench secret set {name}")

    access = DatabaseAccess.open(tmp_path, tmp_path, print, rules=[rule(pg_server)], secret=vault)
    try:
        assert access.bouncer is None
        with pytest.raises(Exception) as caught:
            language_for(access, "sql", DATABASE)
        assert caught.value.one_line() == f"no secret named '{CREDENTIAL}' (workbench secret set {CREDENTIAL})"
    finally:
        access.close()


def test_db_names_a_database_of_the_policy_or_says_which(pg_sandbox):
    from workbench.errors import UsageError

    with pytest.raises(UsageError, match="'hr' is not in the project's network policy .allowed: sales"):
        pg_sandbox.execute("sql", "select 1", database=OTHER)
    with pytest.raises(UsageError, match="--db goes with --lang sql"):
        pg_sandbox.execute("python", "print(1)", database=DATABASE)


def test_a_warm_session_reaches_the_database_too(pg_sandbox):
    run(pg_sandbox, "sql", "select 1", database=DATABASE)  # psql installed in the project image
    code = (f'import subprocess; print(subprocess.run(["psql", "-X", "-A", "-t", "host=/run/workbench/pg '
            f'dbname={DATABASE}", "-c", "select name from items where id = 2"], capture_output=True, '
            'text=True).stdout.strip())')
    result, _ = run(pg_sandbox, "python", code, session="pg1")
    assert result.exit_code == 0, result.stderr.text()
    assert result.stdout.text().strip() == "pears"


def test_python_code_connects_with_psycopg_and_no_password(pg_sandbox):
    # psycopg (with its own libpq) into the workspace venv the way a user installs it: through the install step
    installed = pg_sandbox.install("pip", ["psycopg[binary]"])
    assert installed.ok, installed.output[-2000:]
    code = ("import psycopg\n"
            f"with psycopg.connect(host='/run/workbench/pg', dbname='{DATABASE}') as conn:\n"
            "    print(conn.execute('select string_agg(name, \\',\\' order by id) from items').fetchone()[0])\n"
            "try:\n"
            f"    psycopg.connect(host='/run/workbench/pg', dbname='{OTHER}')\n"
            "except psycopg.OperationalError as exc:\n"
            "    print('refused:', str(exc).strip().splitlines()[-1])\n")
    result, _ = run(pg_sandbox, "python", code)
    assert result.exit_code == 0, result.stderr.text()
    lines = result.stdout.text().splitlines()
    assert lines[0] == "apples,pears,plums"
    assert lines[1].startswith("refused:") and f'the database "{OTHER}" is not allowed' in lines[1]


def test_doctor_says_whether_pgbouncer_is_here(monkeypatch):
    from tests.conftest import need
    from workbench.network import pgbouncer

    need(pgbouncer.shutil.which("pgbouncer", path="/usr/sbin:/usr/bin:/usr/local/sbin") is not None,
         "Debian's pgbouncer (bash packaging/setup-test-tools.sh)")
    [found] = pgbouncer.check(None)
    assert found.status == "ok" and "PgBouncer 1." in found.detail
    monkeypatch.setattr(pgbouncer, "PROGRAM", "pgbouncer-not-installed")
    [missing] = pgbouncer.check(None)
    assert missing.status == "warn" and "apt-get install pgbouncer" in missing.fix


def test_connections_are_chained_into_the_audit_log_and_its_export(engine_ready, pg_server, tmp_path, monkeypatch):
    import json

    from workbench.audit import AuditLog
    from workbench.audit.export import export_lines
    from workbench.project import Project
    from workbench.session import WorkSession

    with_policy(monkeypatch, [rule(pg_server)])
    project = Project.init(tmp_path / "p")
    with WorkSession.open(project, settings=make_settings(timeout=60)) as work:
        result, _ = run(work.sandbox, "sql", "select name from items where id = 1", database=DATABASE)
        assert result.exit_code == 0, result.stderr.text()
        refused, _ = run(work.sandbox, "shell", f'psql -X "host=/run/workbench/pg dbname={OTHER}" -c "select 1"')
        assert refused.exit_code != 0
    log = AuditLog.open(project)
    try:
        assert log.verify().ok
        records = [json.loads(line) for line in export_lines(log) if line.strip()]
    finally:
        log.close()
    found = [r for r in records if r.get("kind") == "net.connection"]
    assert [c["payload"]["database"] for c in found] == [DATABASE, OTHER], found
    ok, no = found[0]["payload"], found[1]["payload"]
    assert ok["execution_id"] == result.execution_id and ok["refused"] == "" and ok["bytes_down"] > 0
    assert no["execution_id"] == refused.execution_id and "not allowed" in no["refused"]
    assert PASSWORD not in json.dumps(records)


def test_two_sessions_of_one_project_share_the_socket(pg_server, tmp_path):
    from workbench.network.databases import DatabaseAccess

    def select(folder):
        return subprocess.run([str(pg_server.bin / "psql"), "-X", "-A", "-t", f"host={folder} dbname={DATABASE}",
                               "-c", "select count(*) from items"], capture_output=True, text=True, timeout=30)

    def soon(condition):  # the relay records a connection just after it closed
        deadline = time.monotonic() + 5
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.02)
        return condition()

    first_seen, second_seen = [], []
    first = DatabaseAccess.open(tmp_path, tmp_path, first_seen.append, rules=[rule(pg_server)],
                                secret=lambda name: PASSWORD)
    second = None
    try:
        second = DatabaseAccess.open(tmp_path, tmp_path, second_seen.append, rules=[rule(pg_server)],
                                     secret=lambda name: PASSWORD)
        assert select(first.folder).stdout.strip() == "3"
        assert soon(lambda: len(second_seen) == 1) and not first_seen  # the later session serves
        second.close()
        assert soon((first.folder / ".s.PGSQL.5432").exists)
        assert select(first.folder).stdout.strip() == "3"
        assert soon(lambda: len(first_seen) == 1)  # the earlier session serves again
    finally:
        for access in (second, first):
            if access is not None:
                access.close()  # twice is harmless: a failed assertion must not leave a PgBouncer behind
    assert not (tmp_path / "pg" / ".s.PGSQL.5432").exists()


def test_cli_db_without_a_database_rule_is_one_line(engine_ready, tmp_path, workbench_cmd):
    from workbench.project import Project

    Project.init(tmp_path / "p")
    done = subprocess.run([*workbench_cmd, "exec", "-p", str(tmp_path / "p"), "--lang", "sql", "--db", "sales",
                           "-c", "select 1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "allows no PostgreSQL database" in lines[0]
    assert "workbench network allow" in lines[0]
    done = subprocess.run([*workbench_cmd, "exec", "-p", str(tmp_path / "p"), "--lang", "python", "--db", "sales",
                           "-c", "print(1)"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--db goes with --lang sql" in done.stderr


def test_a_crashed_sessions_pgbouncer_is_ended_by_the_next_start(pg_server, tmp_path):
    from workbench.network import pgbouncer
    from workbench.network.databases import DatabaseAccess

    crashed = DatabaseAccess.open(tmp_path, tmp_path, print, rules=[rule(pg_server)], secret=lambda name: PASSWORD)
    process, private = crashed.bouncer.process, crashed.bouncer.private
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that is no one's now: the owner "crashed"
    (private / pgbouncer.OWNER_FILE).write_text(f"{dead.pid} {process.pid}\n")
    crashed.relay.stop()
    assert pgbouncer.remove_stale(private.parent) >= 1
    assert process.wait(10) is not None and not private.exists()


def test_code_told_the_database_refused_the_credential_in_one_line(pg_sandbox, pg_server, module_project,
                                                                     monkeypatch):
    from workbench.sandbox import Sandbox

    run(pg_sandbox, "sql", "select 1", database=DATABASE)  # psql in the project image already
    with_policy(monkeypatch, [rule(pg_server)], password="not-the-password")
    recorder = Recorder()
    # a second session of the same project, whose vault holds a wrong password: it serves the socket now
    with Sandbox.open(module_project, bus=recorder.bus, settings=make_settings(timeout=60)) as box:
        result, _ = run(box, "sql", "select 1", database=DATABASE)
        assert result.exit_code != 0
        lines = [line for line in result.stderr.text().splitlines() if line.strip()]
        assert len(lines) == 1, lines
        assert f"refused the credential '{CREDENTIAL}' for role {ROLE}" in lines[0]
        assert f"workbench secret set {CREDENTIAL}" in lines[0]
        assert "password" not in result.stdout.text()
    assert "refused the credential" in connections(recorder, DATABASE)[-1]["refused"]
    socket_path = pg_sandbox.databases.folder / ".s.PGSQL.5432"
    deadline = time.monotonic() + 5
    while not socket_path.exists() and time.monotonic() < deadline:  # the first session serves it again
        time.sleep(0.05)
    again, _ = run(pg_sandbox, "sql", "select count(*) from items", database=DATABASE)
    assert again.exit_code == 0, again.stderr.text()


def test_the_command_line_end_to_end(engine_ready, pg_server, tmp_path, workbench_cmd):
    """As a user does it: allow the database, put the password in the vault from stdin, query with --db."""
    project = tmp_path / "p"
    wb = workbench_cmd

    def cli(*args, stdin=None):
        return subprocess.run([*wb, *args], input=stdin, capture_output=True, text=True, timeout=300)

    assert cli("init", str(project)).returncode == 0
    allowed = cli("network", "allow", "-p", str(project), f"postgres://127.0.0.1:{pg_server.port}/{DATABASE}",
                  "--credential", CREDENTIAL, "--as", ROLE)
    assert allowed.returncode == 0, allowed.stderr
    missing = cli("exec", "-p", str(project), "--lang", "sql", "--db", DATABASE, "-c", "select 1")
    assert missing.returncode != 0
    assert missing.stderr.strip().splitlines()[-1].count("\n") == 0 and f"'{CREDENTIAL}' is not in the vault" \
        in missing.stderr
    assert cli("secret", "set", CREDENTIAL, stdin=PASSWORD).returncode == 0
    done = cli("exec", "-p", str(project), "--lang", "sql", "--db", DATABASE, "-c",
               "select name from items order by id")
    assert done.returncode == 0, done.stderr
    assert "apples" in done.stdout and "│" in done.stdout and PASSWORD not in done.stdout + done.stderr
    assert PASSWORD not in (project / ".workbench" / "config.toml").read_text()
    other = cli("exec", "-p", str(project), "--lang", "sql", "--db", OTHER, "-c", "select 1")
    assert other.returncode == 2 and "'hr' is not in the project's network policy (allowed: sales)" in other.stderr
    exported = cli("audit", "export", "-p", str(project))
    assert exported.returncode == 0 and '"kind":"net.connection"' in exported.stdout.replace(" ", "")
    assert PASSWORD not in exported.stdout

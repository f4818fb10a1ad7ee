"""The database-access fixtures: a real PostgreSQL server with a role, a password and two databases, and a
sandbox whose session serves one of them (imported by tests/network/conftest.py and tests/security)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import need
from tests.network.pg_server import PgServer, free_port, server_bin, unprivileged_user
from tests.sandbox.conftest import Recorder, make_settings

ROLE, PASSWORD, DATABASE, OTHER = "analyst", "an-" + "pw-7f3c1d", "sales", "hr"
CREDENTIAL = "warehouse"


@pytest.fixture(scope="module")
def pg_server():
    found = server_bin()
    need(found is not None, "Debian's postgresql (bash packaging/setup-test-tools.sh)")
    need(shutil.which("pgbouncer") or Path("/usr/sbin/pgbouncer").exists(),
         "Debian's pgbouncer (bash packaging/setup-test-tools.sh)")
    # a short folder: a Unix socket's path must fit in 107 bytes
    server = PgServer(Path(tempfile.mkdtemp(prefix="wb-pgtest-")), free_port(), found, unprivileged_user())
    server.start()
    server.sql("postgres", f"create role {ROLE} login password '{PASSWORD}'")
    server.sql("postgres", f"create database {DATABASE} owner {ROLE}")
    server.sql("postgres", f"create database {OTHER}")
    server.sql(DATABASE, f"create table items (id int primary key, name text); alter table items owner to {ROLE}; "
                         "insert into items values (1, 'apples'), (2, 'pears'), (3, 'plums')")
    server.sql(OTHER, "create table salaries (who text, amount int); insert into salaries values ('ceo', 1)")
    yield server
    server.stop()


def rule(server, dbname=DATABASE, role=ROLE):
    # the shape of workbench.network.rules.DatabaseRule (host, port, dbname, credential, role)
    return SimpleNamespace(host="127.0.0.1", port=server.port, dbname=dbname, credential=CREDENTIAL, role=role)


def with_policy(monkeypatch, rules, password=PASSWORD):
    """The project's policy and vault as the sandbox reads them (the policy module's own tests cover how
    they are written; these tests are about what the sandbox does with them)."""
    from workbench.network import databases

    monkeypatch.setattr(databases, "policy_rules", lambda root: list(rules))
    monkeypatch.setattr(databases, "vault_secret", lambda name: {CREDENTIAL: password}[name])


@pytest.fixture(scope="module")
def pg_recorder():
    return Recorder()


@pytest.fixture(scope="module")
def pg_sandbox(engine_ready, pg_server, module_project, pg_recorder):
    from workbench.sandbox import Sandbox

    with pytest.MonkeyPatch.context() as patch:
        with_policy(patch, [rule(pg_server)])
        box = Sandbox.open(module_project, bus=pg_recorder.bus, settings=make_settings(timeout=60),
                           session_id="pgtest", actor="user:test")
    yield box
    box.close()



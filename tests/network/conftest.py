"""Fixtures for database access: a real PostgreSQL server with a role, a password and two databases."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.conftest import need
from tests.network.pg_server import PgServer, free_port, server_bin, unprivileged_user
from tests.sandbox.conftest import engine_ready, module_project  # noqa: F401 (fixtures)

ROLE, PASSWORD, DATABASE, OTHER = "analyst", "an-" + "pw-7f3c1d", "sales", "hr"


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

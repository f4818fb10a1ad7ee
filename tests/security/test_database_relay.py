"""Attacks on the database relay from a real container: the relay is the host-side code that reads what
sandboxed code sends to /run/workbench/pg. Malformed, oversized, endless or lying startup messages end
that connection only; the relay keeps serving, PgBouncer's admin console stays out of reach, and the next
execution still works."""

from __future__ import annotations

import pytest

from tests.network.fixtures import DATABASE
from tests.sandbox.conftest import run, still_works

pytestmark = pytest.mark.engine

SEND = """
import socket, struct, sys, time
def attempt(data, wait=3.0):
    s = socket.socket(socket.AF_UNIX); s.settimeout(wait)
    s.connect('/run/workbench/pg/.s.PGSQL.5432')
    got = b''
    try:
        s.sendall(data)
        while chunk := s.recv(4096):  # until the relay closes (or, once it answered, the wait runs out)
            got += chunk
            if got.startswith(b'R'):
                break
    except (socket.timeout, OSError) as exc:
        got = got or type(exc).__name__.encode()
    s.close()
    return got
def startup(**params):
    body = struct.pack('!I', 196608) + b''.join(k.encode() + b'\\0' + v.encode() + b'\\0' for k, v in params.items()) + b'\\0'
    return struct.pack('!I', len(body) + 4) + body
"""


def probe(box, code):
    result, _ = run(box, "python", SEND + code, timeout=60)
    assert result.exit_code == 0, result.stderr.text()
    return result.stdout.text()


def test_malformed_startup_messages_end_only_their_connection(pg_sandbox):
    out = probe(pg_sandbox, """
print(attempt(struct.pack('!II', 0x7fffffff, 196608)))            # a length far past the limit
print(attempt(struct.pack('!II', 4, 196608)))                     # a length shorter than its header
print(attempt(struct.pack('!I', 12) + struct.pack('!I', 196608) + b'\\xff\\xfe\\0\\0'))  # not UTF-8
print(attempt(struct.pack('!II', 8, 80877103) * 5))               # encryption requests forever
print(attempt(struct.pack('!II', 20, 1234) + b'x' * 12))          # another protocol
print(attempt(b'GET / HTTP/1.1\\r\\n\\r\\n', wait=1.0))           # not PostgreSQL at all
""")
    assert "Workbench: protocol 0.1234 is not supported" in out
    assert "b'NNNE" in out and "Workbench: too many encryption requests" in out  # three answered no, then the end
    assert "Workbench: a malformed startup message" in out
    still_works(pg_sandbox)
    good = probe(pg_sandbox, "print(attempt(startup(user='x', database='sales')))")
    assert "b'R" in good or 'b"R' in good  # PgBouncer's authentication message: the relay still serves


def test_lying_about_the_user_or_database_reaches_no_other_database(pg_sandbox):
    out = probe(pg_sandbox, """
print(attempt(startup(user='pgbouncer', database='pgbouncer')))
print(attempt(startup(user='sales')))                                      # database defaults to the user
print(attempt(startup(user='x', database='sales', replication='true')))
print(attempt(startup(user='x', database='sales\\nhr')))
""")
    assert out.count("not allowed by this project") == 3, out
    assert "replication connections are not allowed" in out
    # `user=sales` alone names the database sales: libpq's own default, and an allowed name
    still_works(pg_sandbox)
    result, _ = run(pg_sandbox, "sql", "select count(*) from items", database=DATABASE)
    assert result.exit_code == 0 and "3" in result.stdout.text()


def test_a_connection_that_never_finishes_its_startup_holds_nothing_up(pg_sandbox):
    out = probe(pg_sandbox, """
held = []
for _ in range(20):
    s = socket.socket(socket.AF_UNIX); s.connect('/run/workbench/pg/.s.PGSQL.5432'); s.sendall(b'\\0\\0'); held.append(s)
print(attempt(startup(user='x', database='sales')))
""")
    assert "b'R" in out or 'b"R' in out, out
    still_works(pg_sandbox)

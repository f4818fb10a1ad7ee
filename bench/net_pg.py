"""Benchmark PostgreSQL through the session's PgBouncer against the same server directly, in one run.

    .venv/bin/python bench/net_pg.py [--queries 200]

Starts a real PostgreSQL server (Debian's postgresql, as an unprivileged user when run as root: the test
suite's fixture, tests/network/pg_server.py), then on one connection each runs `select 1` N times and reads
psql's own per-query round-trip times (`\\timing`):

  direct    psql -> PostgreSQL over loopback TCP with the password (what PgBouncer itself does)
  relayed   psql -> Workbench's relay socket (.workbench/pg) -> PgBouncer -> PostgreSQL, no password:
            the path code in the sandbox takes, less the container's bind mount (a socket on a bind
            mount is the same socket)
  PgBouncer psql -> PgBouncer's own private socket, to tell the relay's share from PgBouncer's

and prints p50/p95 of each and their ratios, plus the time to open a connection either way (a psql
process each, so both include psql's start). `run()` returns the figures for bench/net.py.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.network.pg_server import (  # noqa: E402
    PgServer,
    free_port,
    server_bin,
    unprivileged_user,
)
from workbench.network.databases import DatabaseAccess  # noqa: E402

TIMING = re.compile(r"^Time: ([0-9.]+) ms", re.M)


def round_trips(psql: Path, conninfo: str, queries: int, env: dict[str, str]) -> list[float]:
    script = "\\timing on\n" + "select 1;\n" * queries
    done = subprocess.run([str(psql), "-X", "-q", "-A", "-t", conninfo], input=script, env=env,
                          capture_output=True, text=True, check=True, timeout=120)
    found = [float(ms) for ms in TIMING.findall(done.stdout)]
    if len(found) != queries:
        raise RuntimeError(f"psql reported {len(found)} timings for {queries} queries: {done.stderr.strip()}")
    return found


def connects(psql: Path, conninfo: str, count: int, env: dict[str, str]) -> list[float]:
    found = []
    for _ in range(count):
        start = time.perf_counter()
        subprocess.run([str(psql), "-X", "-q", "-A", "-t", conninfo, "-c", "select 1"], env=env,
                       capture_output=True, check=True, timeout=30)
        found.append((time.perf_counter() - start) * 1000)
    return found


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def run(queries: int = 200, connections: int = 20) -> dict[str, float]:
    bin_dir = server_bin()
    if bin_dir is None:
        raise SystemExit("needs Debian's postgresql (bash packaging/setup-test-tools.sh)")
    psql = bin_dir / "psql"
    server = PgServer(Path(tempfile.mkdtemp(prefix="wb-pgbench-")), free_port(), bin_dir, unprivileged_user())
    server.start()
    state = Path(tempfile.mkdtemp(prefix="wb-pgbench-state-"))
    access = None
    try:
        server.sql("postgres", "create role bench login password 'bench-pw'")
        server.sql("postgres", "create database benchdb owner bench")
        rule = SimpleNamespace(host="127.0.0.1", port=server.port, dbname="benchdb", credential="bench",
                               role="bench")
        access = DatabaseAccess.open(state, state, lambda event: None, rules=[rule], secret=lambda n: "bench-pw")
        direct_env = {**os.environ, "PGPASSWORD": "bench-pw"}
        relay_env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        direct = f"host=127.0.0.1 port={server.port} dbname=benchdb user=bench"
        relayed = f"host={access.folder} dbname=benchdb"
        bouncer = f"host={access.bouncer.socket_dir} port=6432 dbname=benchdb user=bench"  # the relay's part apart
        for conninfo, env in ((direct, direct_env), (relayed, relay_env), (bouncer, relay_env)):
            round_trips(psql, conninfo, 20, env)  # warm each path (PgBouncer's server connection, caches)
        d, r = round_trips(psql, direct, queries, direct_env), round_trips(psql, relayed, queries, relay_env)
        b = round_trips(psql, bouncer, queries, relay_env)
        dc, rc = connects(psql, direct, connections, direct_env), connects(psql, relayed, connections, relay_env)
    finally:
        if access is not None:
            access.close()
        server.stop()
    return {"direct_p50": p(d, 50), "direct_p95": p(d, 95), "relayed_p50": p(r, 50), "relayed_p95": p(r, 95),
            "bouncer_p50": p(b, 50), "bouncer_p95": p(b, 95),
            "connect_direct_p50": p(dc, 50), "connect_relayed_p50": p(rc, 50)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--connections", type=int, default=20)
    args = parser.parse_args()
    f = run(args.queries, args.connections)
    print(f"PostgreSQL select 1, {args.queries} round trips on one connection (psql \\timing, ms):")
    print(f"  direct (loopback TCP, password)   p50 {f['direct_p50']:.3f}  p95 {f['direct_p95']:.3f}")
    print(f"  PgBouncer's own socket           p50 {f['bouncer_p50']:.3f}  p95 {f['bouncer_p95']:.3f}")
    print(f"  relay + PgBouncer (no password)  p50 {f['relayed_p50']:.3f}  p95 {f['relayed_p95']:.3f}")
    print(f"  ratio relayed/direct             p50 {f['relayed_p50'] / f['direct_p50']:.2f}x  "
          f"p95 {f['relayed_p95'] / f['direct_p95']:.2f}x")
    print(f"  ratio PgBouncer alone/direct     p50 {f['bouncer_p50'] / f['direct_p50']:.2f}x  "
          f"p95 {f['bouncer_p95'] / f['direct_p95']:.2f}x")
    print(f"Connection open + select 1 + close, {args.connections} psql processes (ms):")
    print(f"  direct p50 {f['connect_direct_p50']:.1f}  relayed p50 {f['connect_relayed_p50']:.1f}  "
          f"ratio {f['connect_relayed_p50'] / f['connect_direct_p50']:.2f}x")


if __name__ == "__main__":
    main()

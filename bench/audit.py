"""Benchmark of the audit log: appends per second and verification speed, beside raw baselines.

For each size N it measures, in one run on one machine:

* appends/s, batched: events appended in bursts of 1,000 per transaction (as a session does), with a
  signed checkpoint every 256 entries (fsync at each checkpoint);
* appends/s, one transaction per append (the worst case: a lone event), on min(N, 10,000) events;
* raw SQLite inserts/s: the same rows executemany'd into a bare table in one transaction;
* verify: `AuditLog.verify()` over the whole log (every entry's hash and link, the tree, every checkpoint
  signature, and the log against this machine's witness state), `--repeat` times: the median wall time,
  the median CPU time of this process and its workers, and the load average around it (the machine is
  shared: a loaded one shows in both);
* witness +%: the median with the witness state against the median of the same verification without it;
* py s: the same verification with the scan's Python loops (WORKBENCH_NATIVE_SCAN=0) instead of its C ones
  (workbench/audit/scan_native.c, built by `make setup`): what a machine without a C compiler gets;
* raw SHA-256/s: one SHA-256 over each entry's hashed bytes, nothing else: the floor.

Target (issue 17): verify 1M entries in under 2 s, the witness check adding under 5%. A script, not a test:

    .venv/bin/python bench/audit.py --sizes 100000,1000000
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

BURST = 1000


def make_events(start: int, count: int, session: str) -> list:
    from workbench.events import Event

    now = datetime.now(UTC)
    return [Event(kind="exec.finished", session_id=session, actor="agent:bench/tiny", user="user:bench",
                  time=now,
                  payload={"language": "python", "code": f"print({i} * 2)", "exit_code": 0, "duration": 0.012,
                           "stdout": f"{i * 2}\n", "stdout_sha256": hashlib.sha256(str(i).encode()).hexdigest()})
            for i in range(start, start + count)]


def _cpu() -> float:
    """CPU seconds of this process and of its children that have ended (the verification workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed_verify(log, repeat: int, witness: bool, native: bool = True) -> tuple[float, float]:
    """Median wall and CPU seconds of `repeat` verifications (alternate calls keep drift out). `native`:
    the scan's workers use its C loops (False: WORKBENCH_NATIVE_SCAN=0, the Python ones)."""
    from workbench.audit.verify import verify_store

    walls, cpus = [], []
    for _ in range(repeat):
        os.environ["WORKBENCH_NATIVE_SCAN"] = "1" if native else "0"
        c0, t0 = _cpu(), time.perf_counter()
        try:
            with log.store.lock:
                result = verify_store(log.store, key_store=log.key_store, origin=log.origin,
                                      witness_state=log.witness_state if witness else False)
        finally:
            os.environ.pop("WORKBENCH_NATIVE_SCAN", None)
        walls.append(time.perf_counter() - t0)
        cpus.append(_cpu() - c0)
        if not result.ok:
            raise SystemExit(f"benchmark log does not verify: {result.first_error}")
        if witness and not result.witnessed:
            raise SystemExit("the witness state holds none of the benchmark's checkpoints")
    return statistics.median(walls), statistics.median(cpus)


def bench_size(n: int, workdir: Path, repeat: int = 5) -> dict[str, float]:
    from workbench.audit import AuditLog
    from workbench.audit.canonical import entry_leaf_data
    from workbench.audit.store import ENTRY_COLUMNS

    db = workdir / f"audit-{n}.db"
    log = AuditLog.open_path(db, origin=f"bench.local/audit/{n}", checkpoint_every=256)
    log.key_info()  # create the key outside the timing
    append_time = 0.0
    for start in range(0, n, BURST):
        events = make_events(start, min(BURST, n - start), f"s{start // 100_000}")
        t0 = time.perf_counter()
        with log.batch():
            for event in events:
                log.append(event)
        append_time += time.perf_counter() - t0
    t0 = time.perf_counter()
    log.checkpoint()
    append_time += time.perf_counter() - t0

    single_n = min(n, 10_000)
    single = AuditLog.open_path(workdir / f"single-{n}.db", origin=f"bench.local/single/{n}", checkpoint_every=256)
    events = make_events(0, single_n, "single")
    t0 = time.perf_counter()
    for event in events:
        single.append(event)
    single_time = time.perf_counter() - t0
    single.close()

    load_before = os.getloadavg()[0]
    walls, cpus, plain, python = [], [], [], []
    for _ in range(repeat):  # with and without the witness state, and with the Python loops, interleaved
        wall, cpu = timed_verify(log, 1, witness=True)
        walls.append(wall)
        cpus.append(cpu)
        plain.append(timed_verify(log, 1, witness=False)[0])
        python.append(timed_verify(log, 1, witness=True, native=False)[0])
    verify_time, verify_cpu, plain_time = statistics.median(walls), statistics.median(cpus), statistics.median(plain)
    load = (load_before + os.getloadavg()[0]) / 2

    raw = sqlite3.connect(workdir / f"raw-{n}.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode = WAL")
    raw.execute("PRAGMA synchronous = NORMAL")
    raw.execute(f"CREATE TABLE entries ({ENTRY_COLUMNS})")
    raw_time = sha_time = 0.0
    cursor = log.store.entry_rows()
    while rows := cursor.fetchmany(65536):
        t0 = time.perf_counter()
        raw.execute("BEGIN")
        raw.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        raw.execute("COMMIT")
        raw_time += time.perf_counter() - t0
        datas = [entry_leaf_data(*row[:9]) for row in rows]
        sha = hashlib.sha256
        t0 = time.perf_counter()
        for data in datas:
            sha(data).digest()
        sha_time += time.perf_counter() - t0
    raw.close()
    log.close()
    return {"n": n, "append": n / append_time, "append_s": append_time, "single": single_n / single_time,
            "raw_insert": n / raw_time, "verify": n / verify_time, "verify_s": verify_time, "verify_cpu": verify_cpu,
            "witness_pct": 100 * (verify_time - plain_time) / plain_time, "load": load,
            "python_s": statistics.median(python),
            "sha": n / sha_time, "sha_s": sha_time, "db_mb": db.stat().st_size / 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated entry counts")
    parser.add_argument("--repeat", type=int, default=5, help="verifications per size (medians are printed)")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, not {args.sizes!r}")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    with tempfile.TemporaryDirectory(prefix="wb-audit-bench-") as tmp:
        os.environ["WORKBENCH_DATA_DIR"] = str(Path(tmp) / "data")  # never touch the user's keys
        from workbench.audit import scan

        loops = "C (scan_native)" if scan.NATIVE is not None else "Python (scan_native is not built: make setup)"
        print(f"{os.cpu_count()} CPUs; verify: median of {args.repeat}; the scan's hashing loops: {loops}")
        print(f"{'entries':>9} | {'appends/s':>10} {'(1/txn)':>9} {'raw insert/s':>13} | {'verify/s':>10} "
              f"{'verify s':>8} {'cpu s':>6} {'witness':>8} {'py s':>6} {'load':>5} | {'raw sha256/s':>13} {'sha s':>6} | "
              f"{'db MB':>6}")
        for n in sizes:
            r = bench_size(n, Path(tmp), max(1, args.repeat))
            print(f"{r['n']:>9,} | {r['append']:>10,.0f} {r['single']:>9,.0f} {r['raw_insert']:>13,.0f} | "
                  f"{r['verify']:>10,.0f} {r['verify_s']:>8.2f} {r['verify_cpu']:>6.2f} {r['witness_pct']:>+7.1f}% "
                  f"{r['python_s']:>6.2f} "
                  f"{r['load']:>5.1f} | {r['sha']:>13,.0f} {r['sha_s']:>6.2f} | {r['db_mb']:>6.1f}", flush=True)
    print("appends: batched 1,000 per transaction with a signed, fsynced checkpoint every 256 entries; "
          "(1/txn): one transaction per append. verify s: median wall; cpu s: this process and its workers; "
          "witness: what checking the log against this machine's witness state adds; py s: the same "
          "verification with the scan's Python loops; load: 1-minute load "
          "average around the runs (above the CPU count, other work shared the machine). raw sha256: one "
          "SHA-256 per entry, the floor. Target: verify 1M entries in < 2 s, witness < 5%.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What recording an execution's environment (the SBOM, issue 20 item 2) costs: first, cached, per execution.

    .venv/bin/python bench/environment_record.py [-n 2000] [--dists 150]

Rows, in one project whose venv holds --dists distributions:
  first              a cold image cache: dpkg-query in a throw-away container of the base image, plus the venv
  new process        the same state in a new process (the image list and the state come from the caches)
  after an install   one more distribution: the workspace's packages are read again, the image's are not
  per execution      what every execution pays once the state is known (the fingerprint and a lookup)
  fingerprint        of which the fingerprint (the package folders' lstat signatures)
  warm print(1)      a warm execution end to end, for scale
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--runs", type=int, default=2000)
    parser.add_argument("--dists", type=int, default=150)
    args = parser.parse_args()
    os.environ["WORKBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="wb-bench-cache-")  # a cold image cache

    from workbench.project import Project
    from workbench.sandbox import Sandbox, environment
    from workbench.sandbox.kernels import stop_sessions

    project = Project.open(Path(tempfile.mkdtemp(prefix="wb-bench-")) / "project", create=True)
    site = project.workspace / ".venv" / "lib" / "python3.11" / "site-packages"
    for i in range(args.dists):
        info = site / f"pkg{i}-1.{i}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: pkg{i}\nVersion: 1.{i}\n")

    def once(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    def many(fn, runs: int) -> list[float]:
        return [once(fn) for _ in range(runs)]

    with Sandbox.open(project) as box:
        box.execute("python", "print(1)").result()  # the container is up (and its record made: start over)
        os.environ["WORKBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="wb-bench-cache-")
        (project.state_dir / "environments.json").unlink(missing_ok=True)
        environment.forget()
        record = lambda: environment.record(box, emitting=True)  # noqa: E731
        first = once(record)
        environment.forget()
        new_process = once(record)
        (site / "zzz-1.dist-info").mkdir()
        (site / "zzz-1.dist-info" / "METADATA").write_text("Name: zzz\nVersion: 1\n")
        after_install = once(record)
        hot = many(record, args.runs)
        fingerprint = many(lambda: environment.fingerprint(project.workspace), args.runs)
        warm = many(lambda: box.execute("python", "print(1)", session="bench").result(), max(20, args.runs // 50))
    stop_sessions(project)
    print(f"environment record, a venv of {args.dists} distributions ({args.runs} runs for the per-execution rows)")
    print(f"{'first':22}{first * 1000:10.1f} ms")
    print(f"{'new process':22}{new_process * 1000:10.2f} ms")
    print(f"{'after an install':22}{after_install * 1000:10.1f} ms")
    for name, samples in (("per execution", hot), ("fingerprint", fingerprint), ("warm print(1)", warm)):
        median = statistics.median(samples)
        print(f"{name:22}{median * 1000:10.3f} ms median   p95 {sorted(samples)[int(0.95 * (len(samples) - 1))] * 1000:.3f} ms")
    print(f"per execution / warm print(1): {statistics.median(hot) / statistics.median(warm):.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

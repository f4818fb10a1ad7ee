"""Benchmark the workstation: launch-to-first-frame, and key-to-screen latency idle vs during a 100 MB flood.

    .venv/bin/python bench/tui.py [--mb 100] [--keys 60]

Launch: a fresh interpreter imports Workbench, builds the app with `make_app` (the CLI's factory) and
runs it headless until the first frame is on screen and the task input has focus; the parent measures
from spawning the process. Latency: keys sent the way the terminal driver sends them, timed until the
input shows the character and the screen has refreshed after it; first with nothing running, then in
the same run while 100 MB of output streams through the session's bus as the sandbox streams it. The
figures are printed with their ratio to the idle baseline. Fakes stand in for the engine and the model
so that only the UI is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.tui.fakes import flood, key_latencies  # noqa: E402  (the test's own load, measured here)

CHILD = """
import asyncio, sys, time, json
from pathlib import Path
sys.path.insert(0, {root!r})
from workbench.project import Project
from workbench.config import Settings
from workbench.tui.app import make_app
from tests.tui.fakes import FakeServices

async def main():
    app = make_app(Project.init(Path({project!r})), services=FakeServices(), settings=Settings(),
                   persist_theme=False)
    async with app.run_test(size=(160, 48)) as pilot:
        ready = asyncio.Event()
        app.call_after_refresh(ready.set)
        await ready.wait()
        assert app.focused is not None and app.focused.id == "task"
        print(json.dumps({{"ready": time.time()}}), flush=True)

asyncio.run(main())
"""


def launch_times(runs: int) -> list[float]:
    times = []
    for index in range(runs):
        project = Path(tempfile.mkdtemp()) / f"bench{index}"
        env = {**os.environ, "WORKBENCH_CONFIG_DIR": str(project.parent / "config")}
        start = time.time()
        done = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT), project=str(project))],
                              capture_output=True, text=True, env=env, timeout=60)
        if done.returncode != 0:
            raise SystemExit(f"launch failed:\n{done.stderr[-2000:]}")
        ready = json.loads(done.stdout.strip().splitlines()[-1])["ready"]
        times.append(ready - start)
    return times


async def latencies(mb: int, keys: int) -> tuple[list[float], list[float], float]:
    from tests.tui.fakes import FakeServices
    from workbench.config import Settings
    from workbench.project import Project
    from workbench.tui.app import make_app

    os.environ.setdefault("WORKBENCH_CONFIG_DIR", tempfile.mkdtemp())
    app = make_app(Project.init(Path(tempfile.mkdtemp()) / "bench"), services=FakeServices(),
                   settings=Settings(), persist_theme=False)
    async with app.run_test(size=(160, 48)) as pilot:
        while app.screen.session is None:
            await pilot.pause(0.02)
        await pilot.pause(0.5)
        idle = await key_latencies(app, keys)
        start = time.perf_counter()
        producer = flood(app.screen.session, mb * 1024 * 1024)
        busy: list[float] = []
        while producer.is_alive():
            busy += await key_latencies(app, 5)
        return idle, busy, time.perf_counter() - start


def describe(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (f"median {statistics.median(ordered) * 1000:6.1f} ms  p95 {p95 * 1000:6.1f} ms  "
            f"max {ordered[-1] * 1000:6.1f} ms  (n={len(ordered)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--keys", type=int, default=60)
    parser.add_argument("--launches", type=int, default=5)
    args = parser.parse_args()

    launches = launch_times(args.launches)
    print(f"launch to first frame:  median {statistics.median(launches):.3f} s  best {min(launches):.3f} s  "
          f"(target < 1 s, n={len(launches)})")
    idle, busy, seconds = asyncio.run(latencies(args.mb, args.keys))
    print(f"key-to-screen, idle:    {describe(idle)}")
    print(f"key-to-screen, {args.mb} MB:  {describe(busy)}  stream took {seconds:.1f} s "
          f"({args.mb / seconds:.0f} MB/s)")
    ratio = statistics.median(busy) / statistics.median(idle)
    print(f"flood / idle (median):  {ratio:.2f}x   target: every key under 100 ms")


if __name__ == "__main__":
    main()

"""Command-line latency of `print(1)`: `workbench exec` beside the engine's own CLI, measured in the same run.

    .venv/bin/python bench/cli_latency.py [-n 20] [-p PROJECT_DIR]

Rows (median and p95 wall time over N runs, each a new process as a shell loop would make):
  workbench exec one-off   `workbench exec -p P --lang python -c 'print(1)'` (through the project's sandbox
                           service, started by the uncounted first call: what a user's shell loop gets)
  workbench exec warm      the same with `--session bench` (a live interpreter kept between calls)
  --no-service one-off/warm  the same two run in-process (`--no-service`): the path before the service
  podman exec              `podman exec C python3 -c 'print(1)'` in a running container of the base image
  podman run --rm          `podman run --rm --network none IMAGE python3 -c 'print(1)'` (a new container)
  in-process one-off/warm  (with --in-process) the same two through `WorkSession` in this long-lived process,
                           after a warm-up: the floor a per-project service the CLI talks to could reach
Then the ratios the issue sets targets for: one-off / podman run --rm (target <= 1), one-off / podman exec
(stretch <= 1.5), and the warm row's median against 150 ms. The podman rows use the podman CLI the way a
person would type it (local, no --url), against the image Workbench runs (workbench.sandbox.image.BASE_IMAGE).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WARM_TARGET_S = 0.150


def run_once(command: list[str], expect: bytes = b"1\n") -> float:
    """Wall time of `command` as a new process; it must print `expect` and exit 0."""
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, timeout=120)
    elapsed = time.perf_counter() - start
    if result.returncode != 0 or result.stdout != expect:
        raise SystemExit(f"{' '.join(command)!r} failed (exit {result.returncode}): "
                         f"{result.stdout[-200:]!r} {result.stderr[-400:]!r}")
    return elapsed


def timed_rounds(commands: list[list[str]], runs: int) -> list[list[float]]:
    """Each command once (uncounted: starts the service, the warm session), then `runs` rounds of every
    command in turn: the machine's load (2 cores shared) weighs on every row alike."""
    for command in commands:
        run_once(command)
    samples: list[list[float]] = [[] for _ in commands]
    for _ in range(runs):
        for index, command in enumerate(commands):
            samples[index].append(run_once(command))
    return samples


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def workbench_command() -> list[str]:
    """The console script beside this interpreter (what a user runs), else `python -m workbench`."""
    script = Path(sys.executable).with_name("workbench")
    return [str(script)] if script.exists() else [sys.executable, "-m", "workbench"]


def in_process_rows(project, runs: int) -> list[tuple[str, list[float]]]:
    """One-off and warm `print(1)` as a long-lived process would run them: imports, the engine client and
    the signing key already loaded, each call still its own audited work session."""
    from workbench.session import WorkSession

    def once(session: str | None) -> float:
        start = time.perf_counter()
        with WorkSession.open(project, details={"command": "exec"}) as work:
            result = work.sandbox.execute("python", "print(1)", session=session).result()
        assert result.stdout.kept == b"1\n", result
        return time.perf_counter() - start

    rows = []
    for label, session in (("in-process one-off", None), ("in-process warm", "bench")):
        once(session)  # warm-up: the first call pays the imports and the key lookup
        rows.append((label, [once(session) for _ in range(runs)]))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--runs", type=int, default=20)
    parser.add_argument("-p", "--project", type=Path, help="a project folder (default: a temporary one)")
    parser.add_argument("--in-process", action="store_true",
                        help="also time both through WorkSession in this process (a long-lived service's floor)")
    args = parser.parse_args()

    from workbench.project import Project
    from workbench.sandbox.image import BASE_IMAGE
    from workbench.sandbox.kernels import stop_sessions

    podman = shutil.which("podman")
    if podman is None:
        print("podman is not on PATH: the baselines cannot be measured", file=sys.stderr)
        return 1
    folder = args.project or Path(tempfile.mkdtemp(prefix="wb-cli-bench-")) / "project"
    project = Project.open(folder, create=True)
    workbench = [*workbench_command(), "exec", "-p", str(project.root), "--lang", "python"]
    started = subprocess.run([podman, "run", "-d", "--rm", "--network", "none", BASE_IMAGE, "sleep", "600"],
                             capture_output=True, text=True, timeout=120)
    if started.returncode != 0:
        print(f"podman run -d {BASE_IMAGE} failed: {started.stderr.strip()}", file=sys.stderr)
        return 1
    container = started.stdout.strip()
    commands = [
        ("workbench exec one-off", [*workbench, "-c", "print(1)"]),
        ("workbench exec warm", [*workbench, "--session", "bench", "-c", "print(1)"]),
        ("--no-service one-off", [*workbench, "--no-service", "-c", "print(1)"]),
        ("--no-service warm", [*workbench, "--no-service", "--session", "bench", "-c", "print(1)"]),
        ("podman exec", [podman, "exec", container, "python3", "-c", "print(1)"]),
        ("podman run --rm", [podman, "run", "--rm", "--network", "none", BASE_IMAGE, "python3", "-c", "print(1)"]),
    ]
    try:
        rows = list(zip([name for name, _ in commands], timed_rounds([c for _, c in commands], args.runs),
                        strict=True))
    finally:
        subprocess.run([podman, "rm", "-f", "-t", "0", container], capture_output=True, timeout=120)
        subprocess.run([*workbench_command(), "service", "stop", "-p", str(project.root)], capture_output=True,
                       timeout=120)
    if args.in_process:
        rows.extend(in_process_rows(project, args.runs))
    stop_sessions(project)  # the warm session container would otherwise idle on for its timeout

    medians = {name: statistics.median(samples) for name, samples in rows}
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"CLI latency of print(1), {args.runs} runs each, {os.cpu_count()} CPUs, load {load}, image {BASE_IMAGE}")
    print(f"{'':26}{'median ms':>10}{'p95 ms':>10}")
    for name, samples in rows:
        print(f"{name:26}{medians[name] * 1000:10.1f}{p95(samples) * 1000:10.1f}")
    one_off, warm = medians["workbench exec one-off"], medians["workbench exec warm"]
    print(f"one-off / podman run --rm  {one_off / medians['podman run --rm']:6.2f}   (target <= 1.00)")
    print(f"one-off / podman exec      {one_off / medians['podman exec']:6.2f}   (stretch <= 1.50)")
    print(f"warm / podman exec         {warm / medians['podman exec']:6.2f}")
    print(f"--no-service one-off / podman run --rm  {medians['--no-service one-off'] / medians['podman run --rm']:6.2f}")
    print(f"warm median                {warm * 1000:6.0f} ms (target < {WARM_TARGET_S * 1000:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

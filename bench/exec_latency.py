"""Exec latency of `print(1)`: Workbench's API beside its baselines, measured in the same run.

    .venv/bin/python bench/exec_latency.py [-n 50] [-p PROJECT_DIR]

Rows (median and p95 over N runs, and the ratio to bare host python3):
  workbench one-off     Sandbox.execute("python", "print(1)").result()   (a new process per run)
  workbench warm        the same in a warm session (a live interpreter kept by the runner)
  workbench start       a new Sandbox's first execution: container create + start + exec (N/5 runs)
  podman exec           `podman exec CONTAINER python3 -c 'print(1)'` in the same container (CLI)
  gvisor one-off/warm/start   the same three under gVisor ([sandbox] runtime = "runsc"), when it is set up
  host python3 -c       bare python3 on the host, no container at all
  reads on / reads off  one-off and warm with files-read tracking ([sandbox] record_reads) on beside off: two
                        sandboxes, their runs alternated so both see the same machine load (runc only)
  sbom first            the base image's environment worked out with every cache cold: dpkg-query in a
                        throw-away container of the image, plus the (empty) workspace's packages (N/10 runs)
  sbom cached           the same in a new process: the image's package list and the state from the file caches
  sbom per execution    what every execution pays once the state is known in-process (fingerprint + lookup)
  sbom document         the recorded environment as a validated CycloneDX document (`workbench audit sbom`)
Figures are ratios against a baseline measured in the same run, so they compare across machines.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(fn, runs: int) -> list[float]:
    fn()  # warm-up, not counted
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def alternated(on, off, runs: int) -> tuple[list[float], list[float]]:
    """Samples of `on` and `off` taken in turn (one warm-up each), so drift in the machine's load hits both."""
    on(), off()
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for fn, into in ((on, samples[0]), (off, samples[1])):
            start = time.perf_counter()
            fn()
            into.append(time.perf_counter() - start)
    return samples


def reads_rows(project, settings, runs: int) -> list[tuple[str, list[float]]]:
    """One-off and warm medians with read tracking on beside off, in the same run."""
    from workbench.sandbox import Sandbox

    rows: list[tuple[str, list[float]]] = []
    off_settings = settings.model_copy(update={"sandbox": settings.sandbox.model_copy(
        update={"record_reads": False})})
    on_settings = settings.model_copy(update={"sandbox": settings.sandbox.model_copy(
        update={"record_reads": True})})
    with Sandbox.open(project, settings=on_settings) as on_box, Sandbox.open(project, settings=off_settings) as off:
        for kind, session in (("one-off", None), ("warm", "bench-reads")):
            def run(box, session=session):
                result = box.execute("python", "print(1)", session=session).result()
                assert result.stdout.kept == b"1\n", result

            try:
                with_reads, without = alternated(lambda: run(on_box), lambda: run(off), runs)
            except Exception as exc:  # warm sessions unavailable: say so, go on
                print(f"(reads {kind} rows skipped: {' '.join(str(exc).split())})", file=sys.stderr)
                continue
            rows += [(f"{kind}, reads on", with_reads), (f"{kind}, reads off", without)]
    return rows


def sbom_rows(project, settings, runs: int) -> list[tuple[str, list[float]]]:
    """The SBOM of the base image: worked out cold, from the caches, per execution, and as a document."""
    import os

    from workbench.audit import sbom
    from workbench.sandbox import Sandbox, environment

    saved = os.environ.get("WORKBENCH_CACHE_DIR")
    state = project.state_dir / "environments.json"
    # Put back afterwards: it says which package lists the log holds, and nothing here is published to a log.
    kept = state.read_bytes() if state.exists() else None

    def cold() -> None:  # a cache folder nothing was ever written to, a project that never recorded a state
        os.environ["WORKBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="wb-bench-cache-")
        state.unlink(missing_ok=True)
        environment.forget()

    try:
        with Sandbox.open(project, settings=settings) as box:
            box.execute("python", "print(1)").result()  # the container is up: the rows time the record alone
            first, payloads = [], []
            for _ in range(max(3, runs // 10)):
                cold()
                start = time.perf_counter()
                payloads.append(environment.record(box, emitting=True).payload)
                first.append(time.perf_counter() - start)
            assert payloads[-1] is not None and payloads[-1].lines("deb"), payloads[-1]

            def new_process():
                environment.forget()
                environment.record(box, emitting=True)

            cached = timed(new_process, runs)
            hot = timed(lambda: environment.record(box, emitting=True), runs)
            env = sbom.from_payload(payloads[-1])
            document = timed(lambda: sbom.document(env, "cyclonedx", project.name), max(3, runs // 10))
            print(f"(sbom: the base image {box.image} holds {len(payloads[-1].lines('deb'))} Debian packages)",
                  file=sys.stderr)
    finally:
        if saved is None:
            os.environ.pop("WORKBENCH_CACHE_DIR", None)
        else:
            os.environ["WORKBENCH_CACHE_DIR"] = saved
        state.unlink(missing_ok=True)
        if kept is not None:
            state.write_bytes(kept)
        environment.forget()
    return [("sbom first", first), ("sbom cached", cached), ("sbom per execution", hot),
            ("sbom document", document)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--runs", type=int, default=50)
    parser.add_argument("-p", "--project", type=Path, help="a project folder (default: a temporary one)")
    args = parser.parse_args()

    from workbench.errors import WorkbenchError
    from workbench.project import Project
    from workbench.sandbox import Sandbox

    folder = args.project or Path(tempfile.mkdtemp(prefix="wb-bench-")) / "project"
    project = Project.open(folder, create=True)
    rows: list[tuple[str, list[float]]] = []
    info = None
    for label, runtime in (("workbench", ""), ("gvisor", "runsc")):
        settings = project.settings({"sandbox": {"runtime": runtime}}) if runtime else project.settings()
        try:
            box = Sandbox.open(project, settings=settings)
        except WorkbenchError as exc:  # gVisor not set up: say why, measure the rest
            print(f"({label} rows skipped: {exc.one_line()})", file=sys.stderr)
            continue
        with box:
            info = info or box.info

            def one_off(box=box):
                result = box.execute("python", "print(1)").result()
                assert result.stdout.kept == b"1\n", result

            rows.append((f"{label} one-off", timed(one_off, args.runs)))
            try:
                def warm(box=box):
                    result = box.execute("python", "print(1)", session="bench").result()
                    assert result.stdout.kept == b"1\n", result

                rows.append((f"{label} warm", timed(warm, args.runs)))
            except Exception as exc:  # warm sessions unavailable (a remote engine; gVisor): say so, go on
                print(f"({label} warm row skipped: {' '.join(str(exc).split())})", file=sys.stderr)
            podman = shutil.which("podman")
            if not runtime and podman and box.engine.is_podman and box.engine.endpoint.startswith("unix://"):
                cmd = [podman, "exec", "--user", box.identity.user, box.container, "python3", "-c", "print(1)"]
                rows.append(("podman exec (CLI)", timed(lambda cmd=cmd: subprocess.run(cmd, check=True,
                                                                                   capture_output=True),
                                                        args.runs)))

        def start(settings=settings):  # a new sandbox: its container is made and started by the first run
            with Sandbox.open(project, settings=settings) as fresh:
                result = fresh.execute("python", "print(1)").result()
                assert result.stdout.kept == b"1\n", result

        rows.append((f"{label} start", timed(start, max(3, args.runs // 5))))
        if not runtime:
            rows += reads_rows(project, settings, args.runs)
            rows += sbom_rows(project, settings, args.runs)
    if info is None:
        print("no sandbox could be opened", file=sys.stderr)
        return 1
    # The interpreter running this script: a real binary (a `python3` on PATH may be a pyenv shell shim).
    from workbench.sandbox.kernels import stop_sessions

    stop_sessions(project)  # the warm session container would otherwise idle on for its timeout
    host = [sys.executable, "-c", "print(1)"]
    rows.append(("host python3 -c", timed(lambda: subprocess.run(host, check=True, capture_output=True),
                                          args.runs)))
    baseline = statistics.median(rows[-1][1])
    print(f"exec latency of print(1), {args.runs} runs each ({info.engine}, "
          f"{'rootless' if info.rootless else 'rootful'})")
    print(f"{'':22}{'median ms':>10}{'p95 ms':>10}{'x host python3':>16}")
    for name, samples in rows:
        median = statistics.median(samples)
        print(f"{name:22}{median * 1000:10.1f}{p95(samples) * 1000:10.1f}{median / baseline:16.2f}")
    medians = {name: statistics.median(samples) for name, samples in rows}
    for kind in ("one-off", "warm"):
        if f"{kind}, reads off" in medians:
            added = medians[f"{kind}, reads on"] / medians[f"{kind}, reads off"] - 1
            print(f"read tracking adds {added * 100:+.1f}% to the {kind} median (target: under 5%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A conda install, inside the install container: solve, fetch and link with py-rattler into the prefix.

Runs in the conda install container only (workbench/sandbox/managers/conda.py starts it), as the image's
own `/usr/bin/python3 -I -c <this file> ...`: nothing under /workspace is imported or executed. py-rattler
is not in the image: the host mounts the unpacked wheel it keeps in its cache read-only (at RATTLER_SITE
unless --rattler says where).

    conda_install.py [--rattler DIR] [--cache DIR] --prefix /workspace/.conda --channel URL... -- SPEC...

The environment is solved as a whole: the specs asked for before (each package record's
`requested_specs`, written by earlier installs) plus the new ones (a new spec for a name replaces the
old), with what is installed now preferred (`locked_packages`), so an install adds to the prefix instead of
replacing it. Link scripts (post-link, pre-unlink) are never run: they are package code, and this
container may have a way out. Repodata and packages are cached for this install only (--cache: a scratch
folder the host mounts and removes afterwards; a channel's repodata and a big environment are more than
the container's small /tmp holds).

What it prints is progress for a person, never the record: the host reads the prefix's conda-meta/*.json
back itself after the container ended. A failure ends with one line starting `conda:` and a non-zero exit
status (EXIT_* below); nothing it prints is a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys

RATTLER_SITE = "/opt/workbench-rattler"
CACHE = "/tmp/workbench-conda"
EXIT_FAILED, EXIT_NO_RATTLER, EXIT_CHANNEL, EXIT_UNSOLVABLE, EXIT_PREFIX = 1, 2, 3, 4, 5


# What a printed line must not show: a password in a URL, an anaconda.org-style token in a channel's path.
SECRETS = ((re.compile(r"://[^/@\s]+@"), "://***@"), (re.compile(r"/t/[^/\s]+/"), "/t/***/"))


def say(line: str) -> None:
    line = " ".join(line.split())
    for secret, mask in SECRETS:
        line = secret.sub(mask, line)
    print(f"conda: {line}", flush=True)


def fail(code: int, line: str) -> None:
    say(line)
    sys.stdout.flush()
    os._exit(code)  # no interpreter shutdown: py-rattler's runtime threads may still be winding down


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="conda_install.py")
    parser.add_argument("--rattler", default=RATTLER_SITE, help="the folder py-rattler is imported from")
    parser.add_argument("--cache", default=CACHE, help="where repodata and packages are cached for this install")
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--channel", action="append", required=True)
    parser.add_argument("specs", nargs="+")
    return parser.parse_args(argv)


def installed_records(rattler, prefix: str) -> list:
    """What the prefix holds now (conda-meta/*.json). A record py-rattler cannot read (code writes the
    workspace) stops the install before anything changes: py-rattler reads the prefix again after linking,
    and would fail half-way."""
    meta = os.path.join(prefix, "conda-meta")
    try:
        names = sorted(os.listdir(meta))
    except (FileNotFoundError, NotADirectoryError):
        return []
    records, unreadable = [], []
    for name in names:
        if not name.endswith(".json"):
            continue
        path = os.path.join(meta, name)
        try:
            if os.path.islink(path) or not os.path.isfile(path):
                raise ValueError("not a regular file")
            records.append(rattler.PrefixRecord.from_path(path))
        except Exception as exc:
            unreadable.append(f"conda-meta/{name} ({' '.join(str(exc).split())[:200]})")
    if unreadable:
        fail(EXIT_PREFIX, f"the prefix {prefix} holds {len(unreadable)} record(s) that are not package records: "
                          f"{'; '.join(unreadable[:3])}; remove them (or the prefix) and install again")
    return records


def package_name(rattler, spec: str) -> str:
    return rattler.MatchSpec(spec).name.normalized


def wanted_specs(rattler, records: list, new: list[str]) -> list[str]:
    """The specs asked for before, each replaced by a new one for the same name, then the new ones."""
    new_names = {package_name(rattler, spec) for spec in new}
    kept: dict[str, str] = {}
    for record in records:
        for spec in record.requested_specs or ([record.requested_spec] if record.requested_spec else []):
            try:
                name = package_name(rattler, spec)
            except Exception:
                continue
            if name not in new_names:
                kept.setdefault(name, spec)
    return [*kept.values(), *new]


def reporter(rattler):
    """py-rattler's installer callbacks (no-op defaults in its InstallerReporter), as a line per package."""

    class Progress(rattler.InstallerReporter):
        def on_transaction_start(self, total_operations: int) -> None:
            say(f"{total_operations} change(s) to the prefix")

        def on_unlink_start(self, operation: int, package_name: str) -> int:
            say(f"removing {package_name}")
            return operation

        def on_link_start(self, operation: int, package_name: str) -> int:
            say(f"linking {package_name}")
            return operation

    return Progress()


def requested(spec):
    """A MatchSpec as `install(requested_specs=...)` takes it: py-rattler 0.28's wrapper hands the list to its
    native half unconverted, which accepts only the inner spec (a TypeError otherwise)."""
    return getattr(spec, "_match_spec", spec)


async def install(rattler, options: argparse.Namespace) -> None:
    records = installed_records(rattler, options.prefix)
    specs = wanted_specs(rattler, records, options.specs)
    channels = [rattler.Channel(url) for url in options.channel]
    say(f"solving {', '.join(specs)} from {', '.join(options.channel)}")
    gateway = rattler.Gateway(cache_dir=os.path.join(options.cache, "repodata"))
    try:
        solved = await rattler.solve(
            sources=channels, specs=specs, gateway=gateway,
            platforms=[rattler.Subdir.current(), rattler.Subdir("noarch")],
            locked_packages=records, virtual_packages=rattler.VirtualPackage.detect(),
            channel_priority=rattler.ChannelPriority.Strict)
    except rattler.exceptions.SolverError as exc:
        fail(EXIT_UNSOLVABLE, f"cannot install {' '.join(options.specs)}: {exc}")
    except (rattler.exceptions.GatewayError, rattler.exceptions.FetchRepoDataError,
            rattler.exceptions.InvalidChannelError) as exc:
        fail(EXIT_CHANNEL, f"a channel in [install] conda_channels cannot be read: {exc}")
    for record in solved:
        say(f"{record.name.normalized} {record.version} {record.build} from {record.channel}")
    await rattler.install(
        solved, target_prefix=options.prefix, cache_dir=os.path.join(options.cache, "pkgs"), installed_packages=records,
        execute_link_scripts=False, show_progress=False,
        requested_specs=[requested(rattler.MatchSpec(spec)) for spec in specs], reporter=reporter(rattler))
    say(f"linked into {options.prefix}")


def main(argv: list[str]) -> None:
    options = arguments(argv)
    sys.path.insert(0, options.rattler)
    try:
        import rattler
        import rattler.exceptions
    except ImportError as exc:
        fail(EXIT_NO_RATTLER, f"py-rattler is not available in the install container ({exc})")
    try:
        for spec in options.specs:
            package_name(rattler, spec)
    except Exception as exc:
        fail(EXIT_UNSOLVABLE, f"not a conda package spec: {exc}")
    try:
        asyncio.run(install(rattler, options))
    except Exception as exc:
        fail(EXIT_FAILED, f"install failed: {type(exc).__name__}: {exc}")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])

"""Make a local conda channel to carry to an air-gapped site: solve SPECs against a connected channel, download
every package of the solution, and index the folder with py-rattler's indexer.

    .venv/bin/python packaging/conda-channel.py OUT [--channel URL ...] [--platform linux-64] SPEC...

OUT becomes a channel (`noarch/`, `<platform>/`, each with its packages and repodata.json): copy it to the
offline machine (the bundle carries it when CONDA_CHANNEL=OUT is set for build-bundle.sh) and point
`[install] conda_channels` at it (`file:///PATH`). Running it again adds to OUT; nothing is removed.
Channels default to conda-forge. py-rattler comes from Workbench's cache (packaging/rattler-wheel.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
from pathlib import Path

DEFAULT_CHANNEL = "https://conda.anaconda.org/conda-forge"


def rattler():
    from workbench.sandbox.managers.conda import RATTLER_VERSION, rattler_ready, rattler_site

    site = rattler_site()
    if not rattler_ready(site):
        sys.exit(f"conda-channel: py-rattler {RATTLER_VERSION} is not cached: run bash packaging/rattler-wheel.sh")
    sys.path.insert(0, str(site))
    import rattler as module
    import rattler.index
    import rattler.package_streaming

    return module


async def make(options: argparse.Namespace) -> None:
    r = rattler()
    platform = r.Subdir(options.platform) if options.platform else r.Subdir.current()
    records = await r.solve(sources=[r.Channel(url) for url in options.channel or [DEFAULT_CHANNEL]],
                            specs=options.specs, platforms=[platform, r.Subdir("noarch")])
    out = Path(options.out).resolve()
    client = r.Client.default_client()
    for subdir in ("noarch", str(platform)):
        (out / subdir).mkdir(parents=True, exist_ok=True)
    for record in records:
        target = out / record.subdir / record.file_name
        if not target.is_file():
            print(f"conda-channel: {record.file_name}")
            await r.package_streaming.download_to_path(client, record.url, target)
        if record.sha256 and hashlib.sha256(target.read_bytes()).digest() != record.sha256:
            target.unlink()
            sys.exit(f"conda-channel: {record.file_name} does not match its SHA-256 in the channel's repodata")
    await r.index.index_fs(out, write_zst=False, write_shards=False, force=True)
    print(f"conda-channel: {len(records)} packages in {out}; on the offline machine set\n"
          f'  [install]\n  conda_channels = ["file://{out}"]   (or where you copy it)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the channel folder to write (created, or added to)")
    parser.add_argument("--channel", action="append", help=f"where to solve and download from ({DEFAULT_CHANNEL})")
    parser.add_argument("--platform", help="the subdir besides noarch (default: this machine's, e.g. linux-64)")
    parser.add_argument("specs", nargs="+", help="conda package specs, e.g. numpy=1.26 r-base")
    options = parser.parse_args()
    code = 0
    try:
        asyncio.run(make(options))
    except SystemExit as stop:  # one of ours: its message is the line to print
        if stop.code not in (None, 0):
            print(stop.code, file=sys.stderr)
            code = 1
    except Exception as exc:
        print(f"conda-channel: {type(exc).__name__}: {' '.join(str(exc).split())}", file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # No interpreter shutdown: py-rattler's runtime threads may still be winding down, and finalizing under
    # them aborts the process (measured with py-rattler 0.28: SIGABRT in PyGILState_Release).
    os._exit(code)


if __name__ == "__main__":
    main()

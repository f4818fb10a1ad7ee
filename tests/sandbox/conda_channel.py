"""A tiny conda channel made in the test: real packages, written by hand, indexed by hand.

A conda package (`NAME-VERSION-BUILD.tar.bz2`) is a tarball of its files beside `info/`: `index.json` (what
the package is: name, version, build, depends, subdir, noarch), `paths.json` (each file with its SHA-256 and
size) and `files`. A channel is a folder with one subdir per platform (`noarch/`, `linux-64/`, ...), each
holding the packages and a `repodata.json` that lists every package's index.json plus its md5, sha256 and
size: what `conda index` writes.

  hello-conda 1.0   bin/hello-conda: prints a greeting and the CONDA_PREFIX it runs under
  greet-conda 2.1   depends on hello-conda >=1.0: bin/greet-conda calls it; share/greet-conda/message.txt
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

TIMESTAMP = 1_700_000_000_000  # ms, as conda writes it
PACKAGES = {  # name -> (version, depends, {path: (content, mode)})
    "hello-conda": ("1.0", [], {
        "bin/hello-conda": ('#!/bin/sh\necho "hello from conda in ${CONDA_PREFIX:-no prefix}"\n', 0o755)}),
    "greet-conda": ("2.1", ["hello-conda >=1.0"], {
        "bin/greet-conda": ("#!/bin/sh\nhello-conda && echo greet-conda 2.1\n", 0o755),
        "share/greet-conda/message.txt": ("a message from a conda package\n", 0o644)}),
}


def _add(tar: tarfile.TarFile, path: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(path)
    info.size, info.mode, info.mtime = len(data), mode, TIMESTAMP // 1000
    tar.addfile(info, io.BytesIO(data))


def build_package(subdir: Path, name: str, version: str, depends: list[str],
                  files: dict[str, tuple[str, int]], build: str = "0") -> dict:
    """Write NAME-VERSION-BUILD.tar.bz2 into `subdir`; its repodata.json entry."""
    payload = {path: (text.encode(), mode) for path, (text, mode) in files.items()}
    index = {"name": name, "version": version, "build": build, "build_number": 0, "depends": depends,
             "noarch": "generic", "subdir": "noarch", "license": "MIT", "timestamp": TIMESTAMP}
    paths = {"paths_version": 1, "paths": [
        {"_path": path, "path_type": "hardlink", "sha256": hashlib.sha256(data).hexdigest(),
         "size_in_bytes": len(data)} for path, (data, _mode) in payload.items()]}
    target = subdir / f"{name}-{version}-{build}.tar.bz2"
    with tarfile.open(target, "w:bz2") as tar:
        _add(tar, "info/index.json", json.dumps(index, indent=2).encode(), 0o644)
        _add(tar, "info/paths.json", json.dumps(paths, indent=2).encode(), 0o644)
        _add(tar, "info/files", "".join(f"{path}\n" for path in payload).encode(), 0o644)
        for path, (data, mode) in payload.items():
            _add(tar, path, data, mode)
    data = target.read_bytes()
    return {**index, "md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data)}


def channel(root: Path, packages: dict = PACKAGES) -> Path:
    """A channel at `root` with `packages` in noarch/ and an empty linux-64/; returns root."""
    noarch = root / "noarch"
    noarch.mkdir(parents=True)
    entries = {}
    for name, (version, depends, files) in packages.items():
        entry = build_package(noarch, name, version, depends, files)
        entries[f"{name}-{version}-{entry['build']}.tar.bz2"] = entry
    for subdir, listed in (("noarch", entries), ("linux-64", {})):
        (root / subdir).mkdir(exist_ok=True)
        repodata = {"info": {"subdir": subdir}, "packages": listed, "packages.conda": {}, "removed": [],
                    "repodata_version": 1}
        (root / subdir / "repodata.json").write_text(json.dumps(repodata, indent=1, sort_keys=True))
    for path in (root, *root.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)  # readable by the container's user, whoever it maps to
    return root

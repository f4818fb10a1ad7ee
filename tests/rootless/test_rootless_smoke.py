"""Rootless smoke leg: Workbench as an unprivileged user on that user's rootless Podman.

The main suite runs as root in CI (rootful Podman). Here an unprivileged user runs `workbench doctor`
and `workbench exec` against its own rootless engine: code must run as that user (keep-id), files it
writes must belong to that user on the host, and where the engine ignores cgroup limits (rootless on
cgroup v1) Workbench must say so instead of pretending. Then it installs a package from an index on the
host's loopback: the install container has no network and reaches the index through the egress proxy;
and conda packages from a channel folder (py-rattler from the user's cache, the prefix in its workspace).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need
from tests.sandbox import conda_channel, repos

ROOT = Path(__file__).resolve().parents[2]


PG_PASSWORD = "rootless-" + os.urandom(4).hex()


def start_pg_server():
    """A PostgreSQL server for the leg's database step (None where Debian's postgresql or pgbouncer is
    missing: need() in the test says so)."""
    import tempfile

    from tests.network.pg_server import PgServer, free_port, server_bin, unprivileged_user

    found = server_bin()
    if found is None or not (shutil.which("pgbouncer") or Path("/usr/sbin/pgbouncer").exists()):
        return None
    server = PgServer(Path(tempfile.mkdtemp(prefix="wb-pgleg-")), free_port(), found, unprivileged_user()).start()
    server.sql("postgres", f"create role analyst login password '{PG_PASSWORD}'")
    server.sql("postgres", "create database sales owner analyst")
    server.sql("sales", "create table items (id int); alter table items owner to analyst; "
                        "insert into items values (1), (2), (3)")
    return server


def pg_args(server) -> tuple[str, str]:
    return str(server.port), PG_PASSWORD


@pytest.mark.engine
@pytest.mark.slow
def test_rootless_leg(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the rootless leg creates an unprivileged user: run the suite as root (CI does)")
    need(shutil.which("podman") is not None and shutil.which("su") is not None, "podman and su")
    project = Path("/tmp/wb-rootless-leg") / tmp_path.name / "project"
    venv = Path(sys.executable).parent.parent
    index = Path("/tmp/wb-rootless-leg") / tmp_path.name / "index"
    shutil.rmtree(index, ignore_errors=True)  # a previous run's (the folder name repeats across runs)
    repos.simple_index(index)
    subprocess.run(["chmod", "-R", "a+rX", str(index.parent)], check=True)
    channel = index.parent / "conda-channel"
    shutil.rmtree(channel, ignore_errors=True)
    conda_channel.channel(channel)
    served = repos.Served(index)
    pg = start_pg_server()
    try:
        result = subprocess.run(["bash", str(ROOT / "packaging" / "rootless-smoke.sh"), str(venv), str(project),
                                 f"{served.url}/simple", str(channel), *(pg_args(pg) if pg else ())],
                                capture_output=True, text=True, timeout=900)
    finally:
        served.close()
        if pg is not None:
            pg.stop()
    out = result.stdout
    assert result.returncode == 0, result.stderr[-2000:] + out[-2000:]
    doctor = out.split("== doctor", 1)[1].split("== exec", 1)[0]
    assert "[ok  ] isolation: rootless engine" in doctor
    limits_line = next(line for line in doctor.splitlines() if "limits:" in line)
    cgroup_v1_rootless = "silently ignores" in limits_line
    # Either the limits are enforced (cgroup v2) or doctor says plainly that they are not.
    assert cgroup_v1_rootless or "[ok  ] limits" in limits_line
    exec_part = out.split("== exec", 1)[1].split("== owner", 1)[0]
    uid = int(subprocess.run(["id", "-u", "wbrootless"], capture_output=True, text=True).stdout)
    assert f"uid {uid}" in exec_part  # keep-id: the container user is the host user, never 0
    if cgroup_v1_rootless:
        assert "does not enforce" in result.stderr + out  # the execution says so too
    owner = out.split("== owner", 1)[1].split("== install", 1)[0]
    assert owner.strip() == "wbrootless"  # the file it wrote belongs to the user
    install, conda = out.split("== install", 1)[1].split("== conda", 1)
    conda, _, postgres = conda.partition("== postgres")
    assert "installed wbdemo-a 1.0 (pip)" in install and "installed wbdemo-b 0.5 (pip)" in install
    assert install.strip().splitlines()[-1] == "value a+b"  # usable in a later run, with no network
    assert "/simple/wbdemo-a/" in served.paths  # fetched from the index, through the proxy
    # conda as that user: py-rattler from its own cache, the prefix in its workspace, used by a later run
    assert "installed greet-conda 2.1 (conda)" in conda and "installed hello-conda 1.0 (conda)" in conda
    assert conda.strip().splitlines()[-1] == "greet-conda 2.1"
    # PostgreSQL as that user: its own PgBouncer, the relay's socket reached from keep-id code, no password
    need(pg is not None, "Debian's postgresql and pgbouncer (bash packaging/setup-test-tools.sh)")
    assert "analyst" in postgres and re.search(r"│\s*3\s*│", postgres), postgres
    folder_mode, socket_mode, inside_uid = postgres.strip().splitlines()[-3:]
    assert folder_mode == f"{uid} 700" and socket_mode == f"{uid} 600" and inside_uid == str(uid)
    assert PG_PASSWORD not in out + result.stderr

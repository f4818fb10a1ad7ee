"""No sandbox process is a real host user: under a rootful engine run by root, code's uid lives in a user
namespace mapped to a high, account-less host range; the workspace stays usable from both sides."""

from __future__ import annotations

import os
import pwd

import pytest

from tests.sandbox.conftest import run, still_works

ROOTFUL_ROOT_ONLY = pytest.mark.skipif(os.getuid() != 0, reason="the mapping applies to a rootful engine run by root")


def host_uid_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError("no Uid line")


def mapped_uid_probe():
    # the uid this process has on the host, from inside: its line of /proc/self/uid_map
    return ("u=$(id -u); awk -v u=$u 'u>=$1 && u<$1+$3 {print $2+u-$1}' /proc/self/uid_map")


@pytest.mark.engine
@ROOTFUL_ROOT_ONLY
def test_code_runs_as_a_high_host_uid_that_owns_no_account(sandbox):
    if sandbox.engine.rootless or not sandbox.engine.is_podman:
        pytest.skip("needs rootful Podman")
    result, _ = run(sandbox, "shell", mapped_uid_probe())
    host_uid = int(result.stdout.text().strip())
    assert host_uid >= 100000
    with pytest.raises(KeyError):
        pwd.getpwuid(host_uid)
    # seen from the host: the container's processes (its init included) run as that range too
    state = sandbox.engine.state(sandbox.container)
    assert host_uid_of(state.pid) == host_uid
    assert sandbox.workspace_owner() == (host_uid, sandbox.workspace_owner()[1])
    assert "user namespace" in sandbox.identity.mapping


@pytest.mark.engine
@ROOTFUL_ROOT_ONLY
def test_warm_session_code_runs_as_the_same_high_host_uid(sandbox):
    if sandbox.engine.rootless or not sandbox.engine.is_podman:
        pytest.skip("needs rootful Podman")
    result, _ = run(sandbox, "shell", mapped_uid_probe(), session="uid")
    assert int(result.stdout.text().strip()) == sandbox.workspace_owner()[0]


@pytest.mark.engine
@ROOTFUL_ROOT_ONLY
def test_the_workspace_is_usable_from_both_sides(sandbox):
    if sandbox.workspace_owner() is None:
        pytest.skip("this engine runs code as the host user")
    ws = sandbox.project.workspace
    result, _ = run(sandbox, "shell", "echo from-code > made-inside.txt")
    assert result.ok
    made = ws / "made-inside.txt"
    assert os.stat(made).st_uid == sandbox.workspace_owner()[0]
    assert made.read_text() == "from-code\n"  # the host user (root) reads it
    made.write_text("edited by the host\n")  # and writes it
    (ws / "dropped.txt").write_text("from the host\n")  # a file the user drops in, owned by root
    result, _ = run(sandbox, "shell", "cat made-inside.txt dropped.txt; echo more >> dropped.txt && echo wrote")
    assert result.stdout.text() == "edited by the host\nfrom the host\nwrote\n"
    assert (ws / "dropped.txt").read_text() == "from the host\nmore\n"
    run(sandbox, "shell", "rm -f made-inside.txt dropped.txt")
    still_works(sandbox)


def test_the_range_comes_from_the_containers_lines(tmp_path):
    from workbench.sandbox import policy

    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_text("alice:100000:65536\ncontainers:3000000:70000\n")
    subgid.write_text("containers:4000000:65536\n")
    ids = policy.subordinate_ids((subuid, subgid))
    assert (ids.uid_start, ids.gid_start, ids.reserved, ids.problem) == (3000000, 4000000, True, None)


@pytest.mark.parametrize("content", [None, "", "containers:5000:65536\n", "containers:3000000:10\n",
                                     "containers:abc:def\n", "\x00\xff garbage"])
def test_a_missing_or_unusable_range_falls_back_to_a_high_one_and_says_how_to_fix(tmp_path, content):
    from workbench.sandbox import policy

    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    for path in (subuid, subgid):
        if content is not None:
            path.write_text(content, errors="surrogateescape")
    ids = policy.subordinate_ids((subuid, subgid))
    assert not ids.reserved and ids.uid_start == ids.gid_start == policy.FALLBACK_RANGE >= 100000
    assert "setup-engine.sh" in ids.problem and "\n" not in ids.problem

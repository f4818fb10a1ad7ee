"""Attack tests: code tries to make the execution record lie, or to make the host follow what it planted.

Each trap is planted from inside a real sandbox; the host side (snapshot, hashing, ownership hand-over) is
then driven by the next execution, and the test checks the host and the record.
"""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from tests.sandbox.conftest import run, still_works

pytestmark = [pytest.mark.engine, pytest.mark.timeout(120)]


@pytest.fixture
def host_secret(tmp_path):
    secret = tmp_path / "host-secret.txt"
    secret.write_text("HOST-SECRET-7f3a\n")
    os.chmod(secret, 0o644)
    return secret


def files_of(result):
    return {f.path: f for f in result.files}


def test_planted_symlinks_and_fifos_are_recorded_never_followed(sandbox, host_secret):
    code = (f"ln -s {host_secret} leak.txt; ln -s /dev/zero zero.bin; mkfifo pipe.csv; "
            f"mkdir -p out; ln -s {host_secret.parent} out/hostdir; ln -s /etc/shadow shadow")
    started = time.monotonic()
    result, _ = run(sandbox, "shell", code)
    assert time.monotonic() - started < 30  # a FIFO or /dev/zero never stalls the record
    assert result.ok, result
    found = files_of(result)
    assert found["leak.txt"].kind == "symlink" and found["leak.txt"].target == str(host_secret)
    assert found["leak.txt"].sha256 is None
    assert found["zero.bin"].kind == "symlink" and found["pipe.csv"].kind == "fifo"
    secret_digest = hashlib.sha256(host_secret.read_bytes()).hexdigest()
    assert secret_digest not in {f.sha256 for f in result.files}
    assert not any(p.startswith("out/hostdir/") for p in found)  # the symlinked folder is not entered
    assert any("leak.txt is a symlink to" in n and "not followed" in n for n in result.notes)
    payload = result.to_payload()
    assert "HOST-SECRET" not in str(payload)
    # the next execution works and the traps are still just entries
    result, _ = run(sandbox, "shell", "rm -f leak.txt zero.bin pipe.csv shadow; rm -rf out; echo ok")
    assert result.stdout.kept == b"ok\n"
    assert {f.change for f in result.files} == {"deleted"}
    still_works(sandbox)


def test_same_size_rewrite_with_mtime_put_back_is_recorded(sandbox):
    result, _ = run(sandbox, "shell", "printf 'total,100\\n' > report.csv")
    first = files_of(result)["report.csv"].sha256
    code = ("import os\nst = os.stat('report.csv')\nopen('report.csv', 'w').write('total,999\\n')\n"
            "os.utime('report.csv', ns=(st.st_atime_ns, st.st_mtime_ns))\n"
            "print(os.stat('report.csv').st_mtime_ns == st.st_mtime_ns)")
    result, _ = run(sandbox, "python", code)
    assert result.stdout.kept == b"True\n"  # the disguise worked on mtime and size
    change = files_of(result)["report.csv"]
    assert change.change == "modified"
    assert change.sha256 == hashlib.sha256(b"total,999\n").hexdigest() != first


def test_deep_folders_with_workbench_names_are_recorded(sandbox):
    code = ("mkdir -p out/__pycache__ out/.venv nested/.R && echo 1 > out/__pycache__/x.csv && "
            "echo 2 > out/.venv/y.csv && echo 3 > nested/.R/z.csv")
    result, _ = run(sandbox, "shell", code)
    assert {"out/__pycache__/x.csv", "out/.venv/y.csv", "nested/.R/z.csv"} <= set(files_of(result))
    run(sandbox, "shell", "rm -rf out nested")


@pytest.mark.parametrize("escape", [
    "setsid sh -c 'sleep 3; echo late > late-{n}.txt' >/dev/null 2>&1 < /dev/null &",
    "python3 -c \"import os,time\nif os.fork(): raise SystemExit\nos.setsid()\nif os.fork(): raise SystemExit\n"
    "time.sleep(3)\nopen('late-{n}.txt','w').write('late')\" &",
    "nohup sh -c 'trap \"\" HUP TERM; sleep 3; echo late > late-{n}.txt' >/dev/null 2>&1 &",
])
def test_nothing_an_execution_started_outlives_it(sandbox, escape):
    n = hashlib.sha256(escape.encode()).hexdigest()[:8]
    result, _ = run(sandbox, "shell", escape.format(n=n) + " echo started")
    assert result.ok and result.stdout.kept == b"started\n"
    time.sleep(4)  # long past the moment the escaped process meant to write
    check, _ = run(sandbox, "shell", f"ls late-{n}.txt 2>/dev/null; ps -eo pid,comm | grep -c sleep || true")
    assert f"late-{n}.txt".encode() not in check.stdout.kept
    assert check.stdout.kept.strip().endswith(b"0")
    assert not any(f.path == f"late-{n}.txt" for f in check.files)  # nor in the next execution's record
    assert not (sandbox.project.workspace / f"late-{n}.txt").exists()


@pytest.mark.skipif(os.getuid() != 0, reason="the ownership hand-over happens only under a rootful engine run by root")
def test_ownership_hand_over_never_follows_a_planted_symlink(sandbox, tmp_path):
    if sandbox.workspace_owner() is None:
        pytest.skip("this engine runs code as the host user: no hand-over")
    victim = tmp_path / "victim-dir"
    victim.mkdir()
    (victim / "inside").write_text("x")
    result, _ = run(sandbox, "shell", f"ln -s {victim} runner-dir; ln -s {victim}/inside f; mkdir -p d; "
                                      f"ln -s {victim} d/deeper")
    assert result.ok
    (sandbox.project.workspace / "dropped-by-host.txt").write_text("from the user\n")  # owned by root
    result, _ = run(sandbox, "shell", "cat dropped-by-host.txt; echo more >> dropped-by-host.txt")
    assert result.ok and result.stdout.kept == b"from the user\n"  # handed over, so writable inside
    for path in (victim, victim / "inside"):
        assert os.lstat(path).st_uid == 0, f"{path} was chowned through a planted symlink"
    run(sandbox, "shell", "rm -rf runner-dir f d dropped-by-host.txt")


@pytest.mark.skipif(os.getuid() != 0, reason="the ownership hand-over happens only under a rootful engine run by root")
def test_ownership_hand_over_survives_a_folder_swapped_for_a_symlink_mid_walk(engine_ready, module_project,
                                                                              recorder, tmp_path):
    """One container swaps a folder for a symlink to a host folder in a tight loop while another sandbox
    of the same project hands the workspace over again and again: the host folder is never chowned."""
    from tests.sandbox.conftest import make_settings
    from workbench.sandbox import Sandbox

    victim = tmp_path / "victim"
    victim.mkdir()
    for i in range(20):
        (victim / f"f{i}").write_text("x")
    swapper = Sandbox.open(module_project, bus=recorder.bus, settings=make_settings(timeout=40))
    walker = Sandbox.open(module_project, bus=recorder.bus, settings=make_settings(timeout=40))
    try:
        if walker.workspace_owner() is None:
            pytest.skip("this engine runs code as the host user: no hand-over")
        loop = (f"mkdir -p race/d; for i in $(seq 40); do touch race/d/f$i; done; end=$(($(date +%s)+8)); "
                f"while [ $(date +%s) -lt $end ]; do mv race/d race/real; ln -s {victim} race/d; "
                f"rm race/d; mv race/real race/d; done; echo swapped")
        swapping = swapper.execute("shell", loop)
        time.sleep(0.5)
        rounds = 0
        while not swapping.wait(0):
            result, _ = run(walker, "shell", "true")
            assert result.ok
            rounds += 1
        assert swapping.result().stdout.kept == b"swapped\n" and rounds >= 3
        owners = {os.lstat(p).st_uid for p in [victim, *victim.iterdir()]}
        assert owners == {0}, f"the host folder was chowned through the swapped symlink ({rounds} walks)"
    finally:
        swapper.close()
        walker.close()

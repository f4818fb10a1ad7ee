"""Attack tests: each tries to break one layer of the sandbox, then checks the next execution still works.

Layers (DESIGN.md): limits and timeout; unprivileged user and hardening; no network; no host secrets.
The cgroup limits hold only where the engine enforces them (rootful Podman in CI); on rootless Podman
over cgroup v1 the result says `limits_enforced=False` and the rlimit fallbacks are what is tested.
"""

from __future__ import annotations

import os
import socket
import threading

import pytest

from tests.sandbox.conftest import make_settings, run, still_works

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def tight(engine_ready, module_project, recorder):
    """A sandbox with small limits so attacks end fast."""
    from workbench.sandbox import Sandbox

    box = Sandbox.open(module_project, bus=recorder.bus,
                       settings=make_settings(memory="256m", pids=64, timeout=20, workspace_quota="20m"))
    yield box
    box.close()


# --- layer 2: limits ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bomb", [
    ":(){ :|:& };:",  # the classic: returns at once and forks in the background
    "b(){ b | b; }; b",  # in the foreground until the PID limit and the timeout stop it
    "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass",
])
def test_fork_bomb_is_contained(tight, bomb):
    language = "python" if "import" in bomb else "shell"
    result, _ = run(tight, language, bomb, timeout=5)
    assert result.duration < 15
    still_works(tight)
    count, _ = run(tight, "shell", "ls /proc | grep -c '^[0-9]'")
    assert int(count.stdout.kept) < 20  # the bomb's processes are gone


def test_memory_bomb_is_killed_as_oom(tight):
    result, _ = run(tight, "python", "x = b'x' * (1024 * 1024 * 1024)\nprint('survived')")
    assert b"survived" not in result.stdout.kept
    if tight.info.limits_enforced:
        assert result.exit_code == 137 and result.killed_by == "oom", result
    else:  # RLIMIT_AS stands in: a MemoryError, not an OOM kill
        assert b"MemoryError" in result.stderr.kept
        assert "not enforced" in " ".join(result.notes)
    still_works(tight)


def test_infinite_loop_times_out(tight):
    result, _ = run(tight, "shell", "while :; do :; done", timeout=2)
    assert result.timed_out and result.killed_by == "timeout"
    still_works(tight)


def test_disk_fill_is_stopped(tight, module_project):
    result, _ = run(tight, "shell", "dd if=/dev/zero of=/workspace/big bs=1M count=100")
    assert result.exit_code != 0
    assert b"File too large" in result.stderr.kept or b"File size limit exceeded" in result.stderr.kept
    assert (module_project.workspace / "big").stat().st_size <= 20 * 1024 * 1024
    (module_project.workspace / "big").unlink()
    tmp, _ = run(tight, "shell", "dd if=/dev/zero of=/tmp/fill bs=1M count=400; rm -f /tmp/fill")
    assert any(m in tmp.stderr.kept for m in (b"No space left", b"File too large", b"File size limit"))
    still_works(tight)


@pytest.mark.parametrize("session", [None, "fill"])
def test_many_files_cannot_fill_the_host_disk(engine_ready, module_project, recorder, session):
    """Each file stays under the per-file cap, but together they would fill the disk: the fill guard stops
    the execution while the host keeps at least (about) the floor free."""
    from workbench.sandbox import Sandbox
    from workbench.sandbox.diskguard import free_bytes

    free = free_bytes(module_project.workspace)
    floor = free - 200 * 1024 * 1024  # leave the test 200 MB to write before the guard must act
    box = Sandbox.open(module_project, bus=recorder.bus,
                       settings=make_settings(disk_floor=str(floor), workspace_quota="20m", timeout=60))
    try:
        fill = "mkdir -p /workspace/fill; for i in $(seq 1 1500); do head -c 1048576 /dev/zero > /workspace/fill/$i || exit 9; done"
        result, _ = run(box, "shell", fill, session=session) if session else run(box, "shell", fill)
        assert result.killed_by == "disk", result
        assert any("disk_floor" in note for note in result.notes)
        written = sum(f.stat().st_size for f in (module_project.workspace / "fill").iterdir())
        # stopped soon after the 200 MB of room was used (other writers on the machine only make it sooner)
        assert written < (200 + 400) * 1024 * 1024, written
    finally:
        for f in (module_project.workspace / "fill").glob("*"):
            f.unlink()
    still_works(box)
    box.close()


# --- layer 3: user and hardening ---------------------------------------------------------------------
def test_code_never_runs_as_root(sandbox):
    result, _ = run(sandbox, "shell", "id -u; id -g")
    uid, gid = result.stdout.kept.split()
    assert int(uid) != 0 and int(gid) != 0


def test_no_capabilities_and_no_new_privileges(sandbox):
    result, _ = run(sandbox, "shell", "grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status")
    status = dict(line.split(":\t") for line in result.stdout.text().splitlines())
    assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
    assert int(status["CapBnd"], 16) == 0
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"  # filter mode: the engine's default profile


def test_setuid_escalation_fails(sandbox):
    code = ("find / -xdev -perm -4000 -type f 2>/dev/null | head -3; "
            "su -c 'id -u' root </dev/null; echo su=$?; "
            "python3 -c 'import os; os.setuid(0)'; echo setuid=$?")
    result, _ = run(sandbox, "shell", code)
    out = result.stdout.text()
    assert "su=0" not in out and "setuid=0" not in out
    assert "\n0\n" not in "\n" + out
    still_works(sandbox)


def test_cannot_read_host_secrets(sandbox, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("host-secret")
    code = (f"cat {secret} 2>&1; cat /etc/shadow 2>&1; ls /root /home 2>&1; "
            "cat /proc/1/environ 2>/dev/null | tr '\\0' '\\n' | grep -c SECRET")
    result, _ = run(sandbox, "shell", code)
    out = result.stdout.text() + result.stderr.text()
    assert "host-secret" not in out
    assert "Permission denied" in out  # /etc/shadow is the image's own, and unreadable
    still_works(sandbox)


def test_cannot_write_outside_the_workspace(sandbox):
    for path in ("/etc/evil", "/usr/bin/evil", "/opt/workbench/evil", "/var/evil", "/evil"):
        result, _ = run(sandbox, "shell", f"echo x > {path}")
        assert result.exit_code != 0, path
    ok, _ = run(sandbox, "shell", "echo x > /tmp/fine && echo x > /workspace/fine.txt && rm /workspace/fine.txt")
    assert ok.ok
    still_works(sandbox)


# --- layer 4: network --------------------------------------------------------------------------------
def test_no_network_and_no_host_loopback(sandbox):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    threading.Thread(target=lambda: server.accept(), daemon=True).start()
    try:
        code = ("import socket, os\nprint(sorted(os.listdir('/sys/class/net')))\n"
                f"for host in ('127.0.0.1', '10.88.0.1', '1.1.1.1', 'pypi.org'):\n"
                "    try:\n"
                f"        socket.create_connection((host, {port} if host[0] in '1' else 443), timeout=2)\n"
                "        print('REACHED', host)\n"
                "    except OSError as exc:\n"
                "        print('blocked', host, type(exc).__name__)\n")
        result, _ = run(sandbox, "python", code)
    finally:
        server.close()
    out = result.stdout.text()
    assert "['lo']" in out
    assert "REACHED" not in out, out
    still_works(sandbox)


# --- layer 5: credentials and sockets ----------------------------------------------------------------
def test_engine_socket_is_not_findable(sandbox):
    code = ("find / -xdev -type s 2>/dev/null; ls /run/podman /var/run/docker.sock /run/user 2>&1; "
            "env | grep -i -E 'docker|podman|xdg' ; true")
    result, _ = run(sandbox, "shell", code)
    out = result.stdout.text()
    assert "podman.sock" not in out and "docker.sock " not in out.replace("No such file", "")
    assert "DOCKER_HOST" not in out and "XDG_RUNTIME_DIR" not in out
    still_works(sandbox)


def test_host_environment_does_not_leak(engine_ready, module_project, monkeypatch):
    from workbench.sandbox import Sandbox

    monkeypatch.setenv("WB_TEST_SECRET_TOKEN", "s3cr3t-value")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-s3cr3t")
    with Sandbox.open(module_project) as box:
        result, _ = run(box, "shell", "env; echo HOME=$HOME")
    out = result.stdout.text()
    assert "s3cr3t" not in out
    assert "HOME=/tmp" in out
    names = {line.split("=", 1)[0] for line in out.splitlines() if "=" in line}
    assert not names & {"SSH_AUTH_SOCK", "DBUS_SESSION_BUS_ADDRESS", "DOCKER_HOST", "USER", "LOGNAME"}
    assert os.environ["WB_TEST_SECRET_TOKEN"] == "s3cr3t-value"

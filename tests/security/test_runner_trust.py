"""The warm-session runner cannot be impersonated, and a cell leaves nothing running behind it.

Threat (issue 15, part 2): code that leaves a process behind binds its own socket where the host looks for
the runner and answers for it (a `sys.exit(3)` signed into the log as exit 0 with forged stdout). Each test
plants the trap from inside a real sandbox container, then runs `VICTIM` in a warm session and checks the
record: exit 3 and stdout "real", or no exit code with a one-line error and a fresh container, never the
forged values. Then the next execution still works.

Part 4 (warm half): a background process started by a cell (`setsid`, `&`, a double fork,
`start_new_session=True`) is killed when the cell ends, and the cell's record says how many were.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.sandbox.conftest import make_settings, run

ENGINE = pytest.mark.engine

VICTIM = 'import sys; print("real"); sys.exit(3)'

# An impostor runner: listens on argv[1], logs every connection and how many bytes it was sent to argv[2],
# and answers the forged record (stdout "forged", exit 0) whatever it is asked.
IMPOSTOR = r'''
import json, os, socket, struct, sys
path, log = sys.argv[1], sys.argv[2]
os.makedirs(os.path.dirname(path), exist_ok=True)
try:
    os.unlink(path)
except FileNotFoundError:
    pass
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen(8)
def note(text):
    with open(log, "a") as handle:
        handle.write(text + "\n")
note("listening")
def frame(kind, data):
    return struct.pack(">cI", kind, len(data)) + data
forged = frame(b"O", b"forged\n") + frame(b"J", json.dumps({"done": True, "exit_code": 0, "timed_out": False,
    "interrupted": False, "state_lost": False, "killed_by": None}).encode())
while True:
    conn, _ = server.accept()
    conn.settimeout(2)
    try:
        got = conn.recv(1 << 20)
    except OSError:
        got = b""
    note(f"connection {len(got)}")
    try:
        conn.sendall(forged)
    except OSError:
        pass
    conn.close()
'''


@pytest.fixture(scope="module")
def box(engine_ready, module_project, recorder):
    from workbench.sandbox import Sandbox
    from workbench.sandbox.kernels import stop_sessions

    sandbox = Sandbox.open(module_project, bus=recorder.bus, settings=make_settings(timeout=30),
                           session_id="trust", actor="user:test")
    (module_project.workspace / "impostor.py").write_text(IMPOSTOR)
    yield sandbox
    stop_sessions(module_project)
    sandbox.close()


def kernel_containers(box) -> list:
    from workbench.sandbox import policy
    from workbench.sandbox.kernels import ROLE_KERNEL

    return box.engine.list_containers({policy.LABEL_PROJECT: box.project.id, policy.LABEL_ROLE: ROLE_KERNEL})


def wait_for(path: Path, text: str, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return True
        time.sleep(0.05)
    return False


def assert_victim_recorded_truly(box, recorder):
    """The victim's record is the real one, or an honest failure; never the impostor's. Returns the first
    record (and when that was the failure, the next one's, from the fresh container, is checked too)."""
    first, _ = run(box, "python", VICTIM, session="victim")
    finished = recorder.of("exec.finished", first.execution_id)
    assert len(finished) == 1
    assert finished[0].payload["exit_code"] == first.exit_code
    assert b"forged" not in first.stdout.kept
    result = first
    if first.exit_code is None:  # ended: the error says so in one line, and a fresh container follows
        assert any("warm session was ended" in note and "\n" not in note for note in first.notes), first.notes
        result, _ = run(box, "python", VICTIM, session="victim")
    assert result.exit_code == 3 and result.stdout.kept == b"real\n", result
    return first


def gvisor(box) -> bool:
    from workbench.sandbox.kernels import under_gvisor

    return under_gvisor(box.settings)


def still_works_warm(box):
    after, _ = run(box, "python", "print('still here')", session="after")
    assert after.ok and after.stdout.kept == b"still here\n", after


# --- the channel ---------------------------------------------------------------------------------------
@ENGINE
@pytest.mark.timeout(120)
def test_the_runners_socket_is_outside_the_workspace_and_one_off_containers(box):
    from workbench.sandbox.kernels import runner_dir

    run(box, "python", "pass", session="setup")
    folder = runner_dir(box.project)
    assert (folder / "runner.sock").is_socket()
    assert box.project.workspace.resolve() not in folder.resolve().parents
    one_off, _ = run(box, "shell", "ls -A /run/workbench 2>&1; echo; ls -A /workspace/.workbench-runner 2>&1")
    assert b"runner.sock" not in one_off.stdout.kept


@ENGINE
@pytest.mark.timeout(120)
def test_an_impostor_left_at_the_old_socket_path_is_never_asked(box, recorder, module_project):
    """A one-off execution leaves a daemon listening at the old path (in the workspace): the host no
    longer looks there."""
    log = module_project.workspace / "impostor-old.log"
    planted, _ = run(box, "shell", "setsid python3 /workspace/impostor.py /workspace/.workbench-runner/runner.sock "
                                   f"/workspace/{log.name} </dev/null >/dev/null 2>&1 & sleep 1")
    assert planted.exit_code == 0
    assert_victim_recorded_truly(box, recorder)
    assert "connection" not in (log.read_text() if log.exists() else "")
    still_works_warm(box)


@ENGINE
@pytest.mark.timeout(180)
def test_an_impostor_in_place_of_the_runners_socket_is_refused(box, recorder, module_project):
    """A cell that is still running moves the real socket aside and binds its own in its place (its
    process is spared by the sweep: its cell has not ended). Under runc the host checks who listens before
    it sends a byte: the impostor is refused, the compromised container removed, and the victim runs in a
    fresh one, recorded truly, with a note saying what happened. Under gVisor every socket of the container
    looks the same from the host, so the impostor gets the request, and its answer, which lacks the
    session key, ends the session: no exit code, the error in one line, a fresh container next."""
    log = module_project.workspace / "impostor-new.log"
    attack = ("import os, subprocess, sys, time\n"
              "os.rename('/run/workbench/runner.sock', '/run/workbench/aside.sock')\n"
              f"subprocess.Popen([sys.executable, '/workspace/impostor.py', '/run/workbench/runner.sock', "
              f"'/workspace/{log.name}'])\n"
              "time.sleep(60)\n")
    attacker = box.execute("python", attack, session="attacker")
    try:
        assert wait_for(log, "listening"), "the impostor did not start"
        first = assert_victim_recorded_truly(box, recorder)
        assert first.state_lost
        lines = log.read_text().split("\n")
        assert any(line.startswith("connection") for line in lines)  # the host did knock
        if gvisor(box):
            assert first.exit_code is None
            assert any("does not carry the session's key" in n for n in first.notes), first.notes
        else:
            assert any("answered on the runner's socket, not the runner" in n for n in first.notes), first.notes
            assert all(line in ("", "listening", "connection 0") for line in lines), lines  # ... and said nothing
    finally:
        attacker.cancel()
        assert attacker.wait(30)  # its container went away under it: it ends, it does not hang
    lost = attacker.result()
    assert lost.exit_code is None and any("lost the warm-session runner" in n for n in lost.notes), lost
    still_works_warm(box)


@ENGINE
@pytest.mark.timeout(120)
def test_code_cannot_reach_into_the_runner(box, recorder):
    """Same uid, same container: still no ptrace, no /proc/1/mem, no pidfd_getfd of its listening socket,
    no session key left to find, and the runner does not answer a client from inside. Under runc /proc/1/fd,
    environ and maps are closed too; gVisor (2022) keeps those readable for the same uid, which is why the
    key lives only in the runner's memory (and nothing in /proc/1/fd lets a process speak with it)."""
    probe = r'''
import ctypes, json, os, socket, struct
libc = ctypes.CDLL(None, use_errno=True)
def opens(path):
    try:
        if path.endswith("/fd"):
            os.listdir(path)
        else:
            open(path, "rb").read(1)
        return True
    except OSError:
        return False
found = {"ptrace": libc.ptrace(16, 1, 0, 0) == 0}  # PTRACE_ATTACH
for path in ("/proc/1/fd", "/proc/1/mem", "/proc/1/environ", "/proc/1/maps"):
    found[path] = opens(path)
pidfd = libc.syscall(434, 1, 0)  # pidfd_open
found["pidfd_getfd"] = pidfd >= 0 and any(libc.syscall(438, pidfd, n, 0) >= 0 for n in range(3, 64))
found["key file"] = os.path.lexists("/run/workbench/key")
try:
    found["key in environ"] = b"WB" in open("/proc/1/environ", "rb").read() or any("KEY" in k for k in os.environ)
except OSError:
    found["key in environ"] = False
client = socket.socket(socket.AF_UNIX)
client.settimeout(3)
client.connect("/run/workbench/runner.sock")
ping = json.dumps({"op": "list"}).encode()
try:  # the runner hangs up on a client from inside: the send may already fail
    client.sendall(struct.pack(">cI", b"J", len(ping)) + ping)
    found["answered"] = client.recv(100) != b""
except OSError:
    found["answered"] = False
print(json.dumps(found))
'''
    result, _ = run(box, "python", probe, session="prober")
    assert result.exit_code == 0, result.stderr.text()
    reached = json.loads(result.stdout.kept)
    readable_under_gvisor = {"/proc/1/fd", "/proc/1/environ", "/proc/1/maps"} if gvisor(box) else set()
    assert not [what for what, yes in reached.items() if yes and what not in readable_under_gvisor], reached
    assert_victim_recorded_truly(box, recorder)


# --- a runner that misbehaves -----------------------------------------------------------------------------
# A stand-in runner, PID 1 of a real session container (so it passes the identity check), that answers pings
# and then breaks the protocol in one way per mode.
FAKE_RUNNER = r'''
import json, os, socket, struct, sys, time
sys.path.insert(0, "/opt/workbench")
import runner
MODE = %r
path = sys.argv[2]
key = runner.take_key(os.path.dirname(path))
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen(8)
raw = {
    "oversized": struct.pack(">cI", b"O", 64 << 20) + b"x" * 1000,
    "truncated": struct.pack(">cI", b"O", 100) + b"x" * 10,
    "untagged": struct.pack(">cI", b"J", 17) + b'{"done": true}   ' + bytes(32),
}
keyed = {
    "unknown-kind": (b"X", b"?"),
    "not-json": (b"J", b"{not json"),
    "not-object": (b"J", b'[0, "done"]'),
    "unknown-field": (b"J", b'{"done": true, "exit_code": 0, "verdict": "fine"}'),
    "bad-type": (b"J", b'{"done": true, "exit_code": "0"}'),
    "not-final": (b"J", b'{"exit_code": 0}'),
}
while True:
    conn, _ = server.accept()
    kind, size = struct.unpack(">cI", runner.recv_exact(conn, 5))
    channel = runner.Channel(conn, key, runner.recv_exact(conn, size), client=False)
    request = channel.recv_object()
    if request.get("op") == "ping":
        channel.send_json({"pong": True})
    else:
        channel.send(b"O", b"forged\n")
        if MODE in keyed:
            channel.send(*keyed[MODE])
        elif MODE in raw:
            conn.sendall(raw[MODE])
        else:  # silent
            time.sleep(600)
    conn.close()
'''


@ENGINE
@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["unknown-kind", "oversized", "truncated", "not-json", "not-object",
                                  "unknown-field", "bad-type", "not-final", "untagged", "silent"])
def test_a_misbehaving_runner_ends_its_session_with_one_line(box, recorder, monkeypatch, mode):
    from workbench.sandbox.kernels import Kernels

    script = f"fake-runner-{mode}.py"
    (box.host_dir / script).write_text(FAKE_RUNNER % mode)
    monkeypatch.setattr(Kernels, "runner_script", script)
    monkeypatch.setattr(Kernels, "reply_slack", 0.5)
    box.kernels().reset()  # look again: the spec (runner script) changed
    started = time.monotonic()
    result, _ = run(box, "python", VICTIM, session="victim", timeout=1)
    assert time.monotonic() - started < 30
    assert result.exit_code is None and result.state_lost, result
    errors = [n for n in result.notes if "warm session was ended" in n]
    assert len(errors) == 1 and "\n" not in errors[0], result.notes
    if mode == "untagged":
        assert "does not carry the session's key" in errors[0]
    assert recorder.of("exec.finished", result.execution_id)[0].payload["exit_code"] is None
    assert not [c for c in kernel_containers(box) if c.state == "running"]  # removed: restart follows
    monkeypatch.undo()
    box.kernels().reset()
    assert_victim_recorded_truly(box, recorder)


# --- what a cell leaves running ---------------------------------------------------------------------------
LATE = "sleep 1.5; echo late; echo late > /workspace/late-{tag}; sleep 100"
BACKGROUND = {
    "shell-ampersand": ("shell", "sh -c '" + LATE + "' &"),
    "shell-setsid": ("shell", "setsid sh -c '" + LATE + "' &"),
    "python-new-session": ("python", "import subprocess\n"
                                     "subprocess.Popen(['sh', '-c', " + repr(LATE) + "], start_new_session=True)"),
    "python-double-fork": ("python", "import os\n"
                                     "if os.fork() == 0:\n"
                                     "    os.setsid()\n"
                                     "    if os.fork() == 0:\n"
                                     "        os.execvp('sh', ['sh', '-c', " + repr(LATE) + "])\n"
                                     "    os._exit(0)\n"
                                     "os.wait()\n"
                                     "None"),
}
NO_STRAYS = ("import os\n"
             "names = []\n"
             "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
             "    try:\n"
             "        stat = open(f'/proc/{pid}/stat').read()\n"
             "    except OSError:\n"
             "        continue\n"
             "    if stat.rpartition(')')[2].split()[0] != 'Z':\n"
             "        names.append(stat[stat.index('(') + 1:stat.rindex(')')])\n"
             "print(sorted(names))")


def killed_count(notes) -> int:
    found = [re.match(r"killed (\d+) background process", n) for n in notes]
    return sum(int(m.group(1)) for m in found if m)


@ENGINE
@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", sorted(BACKGROUND))
def test_a_background_process_does_not_outlive_its_cell(box, module_project, case):
    language, template = BACKGROUND[case]
    shell = language == "shell"
    session = f"bg-{case}"
    run(box, language, "kept=1" if shell else "kept = 1", session=session)
    result, _ = run(box, language, template.replace("{tag}", case), session=session)
    assert result.exit_code == 0, result.stderr.text()
    assert killed_count(result.notes) >= 1, result.notes
    # The same interpreter's next cell: whatever the process would have written (to the workspace, or to
    # the stdout pipe it inherited) is not there.
    later, _ = run(box, language, "sleep 2.5; echo next" if shell else "import time; time.sleep(2.5); print('next')",
                   session=session)
    assert later.stdout.kept == b"next\n" and later.stderr.kept == b"", later
    assert not (module_project.workspace / f"late-{case}").exists()
    assert killed_count(later.notes) == 0, later.notes
    strays, _ = run(box, "python", NO_STRAYS, session="bg-lister")
    assert b"'sh'" not in strays.stdout.kept and b"'sleep'" not in strays.stdout.kept, strays.stdout.kept
    kept, _ = run(box, language, "echo $kept" if shell else "print(kept)", session=session)
    assert kept.stdout.kept == b"1\n"  # the interpreter itself stays


@ENGINE
@pytest.mark.timeout(120)
def test_a_running_cells_children_are_spared_when_another_cell_ends(box, module_project):
    marker = module_project.workspace / "spawned"
    long_cell = ("import subprocess, time\n"
                 "child = subprocess.Popen(['sleep', '30'])\n"
                 "open('/workspace/spawned', 'w').close()\n"
                 "time.sleep(3)\n"
                 "print(child.poll())")
    results = {}
    thread = threading.Thread(target=lambda: results.update(long=run(box, "python", long_cell, session="long")[0]))
    thread.start()
    deadline = time.monotonic() + 20
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists()
    short, _ = run(box, "python", "print(1)", session="short")
    thread.join(60)
    assert short.ok and killed_count(short.notes) == 0, short.notes
    long_result = results["long"]
    assert long_result.stdout.kept == b"None\n"  # still running after the other cell's sweep
    assert killed_count(long_result.notes) == 1, long_result.notes


# --- the host side alone (no engine) -----------------------------------------------------------------------
def listen_here(path: Path) -> socket.socket:
    server = socket.socket(socket.AF_UNIX)
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:  # through the folder's fd: a test's temporary path can be longer than a socket path may be
        server.bind(f"/proc/self/fd/{fd}/{path.name}")
    finally:
        os.close(fd)
    server.listen(4)
    return server


def test_the_host_sends_nothing_to_a_socket_that_is_not_the_runners(project):
    """The peer check on its own: this test process listens where the runner should, but the identity the
    engine gave is another process's. Refused before a byte is sent; a symlink there is refused too."""
    from workbench.sandbox.kernels import RunnerIdentity, RunnerMisbehaved, connect, process_start, runner_dir

    folder = runner_dir(project)
    folder.mkdir()
    server = listen_here(folder / "runner.sock")
    me = RunnerIdentity("c", os.getpid(), process_start(os.getpid()), bytes(32))
    try:
        with connect(project, me) as channel:  # the process named is the one listening: accepted
            assert channel.fileno() >= 0
        greeted, _ = server.accept()
        greeted.settimeout(2)
        assert greeted.recv(100)[:1] == b"N"  # the first thing it sends is a fresh nonce
        greeted.close()
        parent = os.getppid()
        with pytest.raises(RunnerMisbehaved, match=f"process {os.getpid()} answered .* process {parent}"):
            connect(project, RunnerIdentity("c", parent, process_start(parent), bytes(32)))
        knocked, _ = server.accept()
        knocked.settimeout(2)
        assert knocked.recv(100) == b""  # it hung up without sending anything
        recycled = RunnerIdentity("c", os.getpid(), "1", bytes(32))  # same pid, other start time: not the same process
        with pytest.raises(RunnerMisbehaved):
            connect(project, recycled)
    finally:
        server.close()
    (folder / "runner.sock").unlink()
    (folder / "runner.sock").symlink_to("/run/podman/podman.sock")
    with pytest.raises(RunnerMisbehaved, match="not a socket"):
        connect(project, me)


def test_the_runners_folder_is_made_afresh_without_following_anything(project, tmp_path):
    from workbench.sandbox.kernels import prepare_runner_dir, runner_dir

    host_dir = tmp_path / "host"
    host_dir.mkdir()
    (host_dir / "precious").write_text("keep")
    folder = runner_dir(project)
    folder.symlink_to(host_dir)  # a received project's .workbench/runner
    made = prepare_runner_dir(project, None)
    assert made.is_dir() and not made.is_symlink() and list(made.iterdir()) == []
    assert (host_dir / "precious").read_text() == "keep"
    # What code in a container left there: a link out, a locked folder with files, a FIFO.
    (made / "out").symlink_to(host_dir)
    locked = made / "locked"
    locked.mkdir()
    (locked / "f").write_text("x")
    os.mkfifo(made / "pipe")
    locked.chmod(0o500)
    again = prepare_runner_dir(project, None)
    assert list(again.iterdir()) == [] and again.stat().st_mode & 0o777 == 0o700
    assert (host_dir / "precious").read_text() == "keep"
    assert not list(again.parent.glob("runner.old-*"))


def test_the_runners_answer_is_checked_field_by_field():
    from workbench.sandbox.kernels import RunnerMisbehaved, parse_outcome

    good = {"done": True, "exit_code": 3, "timed_out": False, "interrupted": False, "state_lost": False,
            "killed_by": None, "background_killed": 2}
    assert parse_outcome(dict(good)) == good
    for bad in ({"exit_code": True}, {"exit_code": "0"}, {"killed_by": "cosmic ray"}, {"verdict": "fine"},
                {"done": False}, {"background_killed": -1}, {"duration": 0.1}, {"stdout_sha256": "00"}):
        with pytest.raises(RunnerMisbehaved):
            parse_outcome(good | bad)


def test_frames_over_the_limit_or_cut_short_are_protocol_errors():
    import struct

    from workbench.sandbox.container import protocol as runner

    for data in (struct.pack(">cI", b"O", 10 << 20), struct.pack(">cI", b"O", 100) + b"x" * 10, b"J\0"):
        ours, theirs = socket.socketpair()
        with ours, theirs:
            theirs.sendall(data)
            theirs.shutdown(socket.SHUT_WR)
            with pytest.raises(runner.ProtocolError):
                runner.recv_frame(ours, 1 << 20)
    ours, theirs = socket.socketpair()
    with ours, theirs:
        runner.send_frame(theirs, b"J", b"[1]")
        with pytest.raises(runner.ProtocolError, match="not an object"):
            runner.recv_object(ours)


def test_a_frame_without_the_key_or_out_of_order_is_refused():
    """What a relay or an impostor without the session key could do to the stream: each is refused."""
    import struct

    from workbench.sandbox.container import protocol as runner

    key = os.urandom(32)

    def pair():
        ours, theirs = socket.socketpair()
        host = runner.Channel.open(ours, key)
        kind, size = struct.unpack(">cI", runner.recv_exact(theirs, 5))
        return host, runner.Channel(theirs, key, runner.recv_exact(theirs, size), client=False)

    host, runner_end = pair()
    runner_end.send_json({"done": True, "exit_code": 3})
    assert host.recv_object() == {"done": True, "exit_code": 3}  # the genuine article

    host, runner_end = pair()  # a byte changed on the way
    runner_end.sock.sendall(b"J" + struct.pack(">I", 2) + b"{}" + bytes(32))
    with pytest.raises(runner.Forged):
        host.recv()
    host, runner_end = pair()  # a frame made for another connection (another nonce)
    runner.Channel(runner_end.sock, key, os.urandom(32), client=False).send_json({"done": True, "exit_code": 0})
    with pytest.raises(runner.Forged):
        host.recv()
    host, runner_end = pair()  # two genuine frames, swapped by a relay
    runner_end.send(b"O", b"first\n")
    runner_end.send(b"O", b"second\n")
    one = runner.recv_exact(host.sock, 5 + 6 + 32)
    two = runner.recv_exact(host.sock, 5 + 7 + 32)
    runner_end.sock.sendall(two + one)
    with pytest.raises(runner.Forged):
        host.recv()
    host, runner_end = pair()  # the host's own frame sent back to it
    host.send_json({"op": "exec"})
    echoed = runner.recv_exact(runner_end.sock, 5 + len(b'{"op": "exec"}') + 32)
    runner_end.sock.sendall(echoed)
    with pytest.raises(runner.Forged):
        host.recv()

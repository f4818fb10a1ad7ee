"""The per-project sandbox service behind `workbench exec`, with the real engine: the record it leaves is
the in-process one, stale services are replaced, bad input ends in one line and a working next call."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

import workbench.service.execute as execute_module
from tests.service.conftest import gone
from workbench.service import wire


def sessions(wb) -> dict[str, list[dict]]:
    out = wb.run("audit", "export", "-p", wb.root, "--format", "jsonl").stdout.decode()
    found: dict[str, list[dict]] = {}
    for line in out.split("\n"):
        if line.strip():
            entry = json.loads(line)
            if entry.get("type") == "entry":
                found.setdefault(entry["session_id"], []).append(entry)
    return found


def shape(entries: list[dict]) -> list[tuple]:
    return [(e["kind"], e["actor"], e["user"], tuple(sorted(e["payload"]))) for e in entries]


def test_the_service_records_exactly_what_the_in_process_path_records(wb):
    # The project's first execution also records its environment (once per log): not this test's subject.
    assert wb.exec("print(0)", "--no-service").returncode == 0
    served = wb.exec("print(6*7)")
    assert (served.returncode, served.stdout) == (0, b"42\n"), served.stderr
    assert wb.pid() is not None  # it went through the service
    local = wb.exec("print(6*7)", "--no-service")
    assert (local.returncode, local.stdout) == (0, b"42\n"), local.stderr
    found = list(sessions(wb).values())
    via_service, in_process = found[-2], found[-1]
    assert shape(via_service) == shape(in_process)
    kinds = [e["kind"] for e in via_service]
    assert kinds[0] == "session.started" and kinds[-1] == "session.finished" and "exec.finished" in kinds
    for kind, same in (("session.started", ("trigger", "command", "project", "project_id", "workbench_version")),
                       ("sandbox.started", ("engine", "endpoint", "image", "limits", "user", "rootless")),
                       ("exec.finished", ("exit_code", "stdout", "language", "code", "notes"))):
        a = next(e["payload"] for e in via_service if e["kind"] == kind)
        b = next(e["payload"] for e in in_process if e["kind"] == kind)
        assert {k: a[k] for k in same if k in a} == {k: b[k] for k in same if k in b}, kind
    # A warm session's call, too (its first call starts the session container: not compared).
    assert wb.exec("y = 1", "--session", "same").returncode == 0
    assert wb.exec("print(y)", "--session", "same").stdout == b"1\n"
    assert wb.exec("print(y)", "--session", "same", "--no-service").stdout == b"1\n"
    found = list(sessions(wb).values())
    assert shape(found[-2]) == shape(found[-1])
    assert wb.run("audit", "verify", "-p", wb.root).returncode == 0


def test_exit_codes_timeouts_warm_state_and_raw_bytes_come_through(wb):
    assert wb.exec("raise SystemExit(3)").returncode == 3
    timed = wb.exec("import time; time.sleep(20)", "--timeout", "1")
    assert timed.returncode == 124 and timed.stderr.decode().startswith("workbench: error: timed out after")
    assert wb.exec("x = 41", "--session", "t").returncode == 0
    warm = wb.exec("print(x + 1)", "--session", "t")
    assert (warm.returncode, warm.stdout) == (0, b"42\n"), warm.stderr
    raw = wb.exec(r"import sys; sys.stdout.buffer.write(b'\xff\xfe\x00ok\n'); sys.stderr.buffer.write(b'\xc3(')")
    assert raw.returncode == 0 and raw.stdout == b"\xff\xfe\x00ok\n" and raw.stderr.endswith(b"\xc3(")
    bad = wb.run("exec", "-p", wb.root, "--lang", "cobol", "-c", "x")  # handed back: the usual one line
    assert bad.returncode == 2 and bad.stderr.decode().count("\n") == 1 and "cobol" in bad.stderr.decode()


def test_a_dead_service_a_changed_environment_and_changed_code_are_replaced(wb, monkeypatch):
    assert wb.exec("print(1)").stdout == b"1\n"
    first = wb.pid()
    os.kill(first, signal.SIGKILL)  # its socket stays behind, nobody listening
    assert gone(first, 5)
    assert wb.exec("print(1)").stdout == b"1\n"
    second = wb.pid()
    assert second not in (None, first)
    monkeypatch.setenv("WORKBENCH_SERVICE_IDLE", "119")
    assert wb.exec("print(1)").stdout == b"1\n"
    third = wb.pid()
    assert third not in (None, second) and gone(second, 20)
    source = execute_module.__file__
    st = os.stat(source)
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    try:
        assert wb.exec("print(1)").stdout == b"1\n"
    finally:
        os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert wb.pid() not in (None, third) and gone(third, 20)


def test_a_killed_container_and_a_changed_config_are_replaced(wb):
    from workbench.sandbox import policy
    from workbench.sandbox.engine import connect

    assert wb.exec("print(1)").stdout == b"1\n"
    engine = connect(wb.project.settings())
    try:
        def running():
            return [c.id for c in engine.list_containers({policy.LABEL_PROJECT: wb.project.id,
                                                          policy.LABEL_ROLE: "exec"}) if c.state == "running"]
        kept = running()
        assert len(kept) == 1  # the idle container the next call reuses
        subprocess.run(["podman", "kill", kept[0]], capture_output=True, timeout=60, check=True)
        assert wb.exec("print(2)").stdout == b"2\n"
        again = running()
        assert len(again) == 1 and again != kept
        with open(wb.project.config_file, "a") as handle:  # our own edit, then trusted again
            handle.write('\n[sandbox]\ntimeout = 77\n')
        restricted = wb.exec("print(3)")
        assert restricted.stdout == b"3\n" and "restricted" in restricted.stderr.decode()  # in-process
        assert wb.run("trust", "-p", wb.root).returncode == 0
        assert wb.exec("print(4)").stdout == b"4\n"
        last = sessions(wb)
        finished = [e for entries in last.values() for e in entries if e["kind"] == "exec.started"][-1]
        assert finished["payload"]["limits"]["timeout"] == 77  # the new config applies through the service
        assert running() != again  # made for the old settings: replaced
    finally:
        engine.close()


def test_a_service_killed_mid_call_is_one_line_and_the_next_call_works(wb):
    assert wb.exec("print(1)").stdout == b"1\n"
    pid = wb.pid()
    call = subprocess.Popen([wb.exe, "exec", "-p", wb.root, "--lang", "python", "-c",
                             "import time; print('go', flush=True); time.sleep(60)"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert call.stdout.readline() == b"go\n"
    os.kill(pid, signal.SIGKILL)
    _out, err = call.communicate(timeout=30)
    assert call.returncode == 70
    assert err.decode().count("\n") == 1 and "sandbox service ended during the execution" in err.decode()
    assert gone(pid, 10)  # reaped: the next service sees its container's owner is dead, and removes it
    assert wb.exec("print(1)").stdout == b"1\n"
    from workbench.sandbox import policy
    from workbench.sandbox.engine import connect

    engine = connect(wb.project.settings())
    try:
        owners = {c.labels.get(policy.LABEL_OWNER) for c in engine.list_containers(
            {policy.LABEL_PROJECT: wb.project.id, policy.LABEL_ROLE: "exec"})}
    finally:
        engine.close()
    assert owners == {f"{os.uname().nodename}:{wb.pid()}"}  # the killed service's container is gone


def test_a_folder_or_socket_someone_else_planted_is_refused_or_cleared(wb):
    folder = os.path.join(wire.runtime_base(), "svc-" + wire.digest(wb.root)[:16])
    os.mkdir(folder, 0o700)
    os.chown(folder, 65534, 65534)  # another user's folder where ours would be
    try:
        planted = wb.exec("print(1)")
        assert (planted.returncode, planted.stdout) == (0, b"1\n")
        note = planted.stderr.decode()
        assert note.count("\n") == 1 and "belongs to uid 65534" in note and "without the sandbox service" in note
        assert wb.pid() is None
    finally:
        shutil.rmtree(folder)
    os.mkdir(folder, 0o700)
    os.symlink("/etc/passwd", os.path.join(folder, wire.SOCKET_NAME))  # not a socket: ours to clear
    served = wb.exec("print(1)")
    assert (served.returncode, served.stdout, served.stderr) == (0, b"1\n", b"")
    assert wb.pid() is not None and os.path.exists("/etc/passwd")
    os.chmod(folder, 0o755)
    opened = wb.exec("print(1)")
    assert opened.stdout == b"1\n" and "open to other users" in opened.stderr.decode()
    os.chmod(folder, 0o700)


def test_the_service_ends_itself_when_idle_and_takes_its_container(wb, monkeypatch):
    from workbench.sandbox import policy
    from workbench.sandbox.engine import connect

    monkeypatch.setenv("WORKBENCH_SERVICE_IDLE", "2")
    assert wb.exec("print(1)").stdout == b"1\n"
    pid = wb.pid()
    assert pid is not None and gone(pid, 20)
    folder = os.path.join(wire.runtime_base(), "svc-" + wire.digest(wb.root)[:16])
    assert not os.path.exists(os.path.join(folder, wire.SOCKET_NAME))
    engine = connect(wb.project.settings())
    try:
        assert engine.list_containers({policy.LABEL_PROJECT: wb.project.id, policy.LABEL_ROLE: "exec"}) == []
    finally:
        engine.close()


def test_the_client_path_imports_nothing_heavy(tmp_path):
    code = ("import sys; from workbench.service import client; client.try_exec(['--help']); "
            "print(sorted(m for m in ('click', 'json', 'pathlib', 'docker', 'pydantic', 'keyring', 'workbench.config')"
            " if m in sys.modules))")
    out = subprocess.run([os.sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
    started = time.perf_counter()
    assert client_parse(["-p", "x", "--lang=python", "-c", "print(1)", "--session", "s"])["session"] == "s"
    assert client_parse(["-lpython", "-cprint(1)"])["code"] == "print(1)"
    assert client_parse(["--no-service", "-l", "python", "-c", "1"]) is None
    assert client_parse(["-l", "python", "--timeout", "0", "-c", "1"]) is None
    assert time.perf_counter() - started < 1


def client_parse(args):
    from workbench.service.client import parse

    return parse(args)


@pytest.mark.parametrize("args, env, code, words", [
    (["--lang", "python", "-c", "print(1)"], {"DOCKER_HOST": "unix:///nonexistent/engine.sock"}, 3, "engine"),
    (["--lang", "python", "-c", "print(1)"], {"WORKBENCH_SANDBOX__IMAGE": "localhost/no-such-image:0"}, 4,
     "workbench setup"),
    (["--lang", "python", "--timeout", "1", "-c", "while True: pass"], {}, 124, "timed out"),
    (["--lang", "python", "/no/such/file.py"], {}, 2, "no such file"),
])
def test_errors_through_the_service_are_the_in_process_ones(wb, monkeypatch, args, env, code, words):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    done = wb.run("exec", "-p", wb.root, *args)
    assert done.returncode == code, done.stderr
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and words in lines[0], lines


def test_stdin_code_and_ctrl_c_go_through_the_service(wb):
    piped = wb.run("exec", "-p", wb.root, "--lang", "python", "-", input=b"print(40 + 2)\n")
    assert (piped.returncode, piped.stdout) == (0, b"42\n"), piped.stderr
    assert wb.pid() is not None
    call = subprocess.Popen([wb.exe, "exec", "-p", wb.root, "--lang", "python", "-c",
                             "import time; print('go', flush=True); time.sleep(60)"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert call.stdout.readline() == b"go\n"
    started = time.monotonic()
    call.send_signal(signal.SIGINT)
    _out, err = call.communicate(timeout=30)
    assert time.monotonic() - started < 15 and call.returncode != 0
    assert err.decode().strip().splitlines()[-1] == "workbench: interrupted"
    kinds = [e["payload"].get("killed_by") for entries in sessions(wb).values() for e in entries
             if e["kind"] == "exec.finished"]
    assert kinds[-1] == "user"


def test_ctrl_c_while_output_streams_in_is_a_clean_cancel(wb):
    """The client spends most of a chatty run writing output: a Ctrl-C landing there (not in the read) still
    cancels the execution and ends in one line, never a KeyboardInterrupt traceback (CI once saw one)."""
    call = subprocess.Popen([wb.exe, "exec", "-p", wb.root, "--lang", "python", "-c",
                             "print('go', flush=True)\nwhile True:\n    print('x' * 200, flush=True)"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert call.stdout.readline() == b"go\n"
    time.sleep(0.3)
    call.send_signal(signal.SIGINT)
    _out, err = call.communicate(timeout=60)
    text = err.decode()
    assert call.returncode > 0 and "KeyboardInterrupt" not in text and "Traceback" not in text, text[-2000:]
    assert "workbench: interrupted" in text.splitlines()
    kinds = [e["payload"].get("killed_by") for entries in sessions(wb).values() for e in entries
             if e["kind"] == "exec.finished"]
    assert kinds[-1] == "user"


def test_code_in_the_sandbox_cannot_reach_the_service(wb):
    # The socket lives on the host, outside every mount the container has; the container has its own
    # network namespace (so no abstract socket either). Sandboxed code tries the path and looks for it.
    assert wb.exec("print(1)").stdout == b"1\n"
    path = wire.address(os.path.join(wire.runtime_base(), "svc-" + wire.digest(wb.root)[:16]))
    probe = (f"import os, socket\nfound = []\ns = socket.socket(socket.AF_UNIX)\n"
             f"try:\n    s.connect({path!r}); found.append('connected')\nexcept OSError as e:\n    found.append(type(e).__name__)\n"
             "for top in ('/tmp', '/run', '/workspace', '/opt'):\n"
             "    for d, _, files in os.walk(top):\n"
             "        found += [os.path.join(d, f) for f in files if f == 'sock' or f == 'service.log']\n"
             "print(found)")
    done = wb.exec(probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == "['FileNotFoundError']"


def test_calls_at_the_same_time_each_get_a_container_and_one_is_kept(wb):
    from workbench.sandbox import policy
    from workbench.sandbox.engine import connect

    assert wb.exec("print(0)").stdout == b"0\n"
    calls = [subprocess.Popen([wb.exe, "exec", "-p", wb.root, "--lang", "python", "-c",
                               f"import time; time.sleep(2); print({n})"], stdout=subprocess.PIPE)
             for n in (1, 2, 3)]
    assert sorted(call.communicate(timeout=120)[0] for call in calls) == [b"1\n", b"2\n", b"3\n"]
    assert all(call.returncode == 0 for call in calls)
    engine = connect(wb.project.settings())
    try:
        left = [c for c in engine.list_containers({policy.LABEL_PROJECT: wb.project.id, policy.LABEL_ROLE: "exec"})]
    finally:
        engine.close()
    assert len(left) == 1 and left[0].state == "running"  # the others were removed at their call's end


def test_a_reused_container_starts_each_call_with_an_empty_tmp(wb):
    """The next call gets the same container (faster), but as a session of its own: nothing an earlier
    call left in /tmp (the code's HOME: caches, history, a planted file) is there, as in a fresh one."""
    first = wb.exec("import os, socket\nopen('/tmp/left-behind', 'w').write('x')\n"
                    "os.makedirs('/tmp/.cache/deep', exist_ok=True)\nprint(socket.gethostname())")
    assert first.returncode == 0, first.stderr
    second = wb.exec("import os, socket\nprint(socket.gethostname())\nprint(sorted(os.listdir('/tmp')))")
    assert second.returncode == 0, second.stderr
    host, listing = second.stdout.decode().splitlines()
    assert host == first.stdout.decode().strip()  # the same container: the scrub, not a new one, did it
    assert "left-behind" not in listing and ".cache" not in listing, listing

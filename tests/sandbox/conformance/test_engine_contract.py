"""The `Engine` contract (workbench.sandbox.engine), held against every implementation: the fake and the real one.

What the sandbox relies on and a broken adapter gets wrong first: containers that go away (on an exception
too), exit codes that survive (0, 3, 137 for a killed process), a timeout that really kills, stdout and
stderr live, apart and in order, large and non-UTF-8 output intact, the state of a container that ended,
and listing by label.
"""

from __future__ import annotations

import hashlib
import threading
import time

import pytest

from tests.sandbox.conformance.conftest import LABEL

SHELL_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin"}


def started(engine, spec) -> str:
    container = engine.create_container(spec)
    try:
        engine.start(container)
    except BaseException:
        engine.remove(container)
        raise
    return container


def run(engine, container: str, script: str, env: dict[str, str] | None = None):
    """Run `sh -c script` in the container: the chunks as they came, as (stream, bytes), and the exit code."""
    handle = engine.exec_create(container, ["sh", "-c", script], user="", env={**SHELL_ENV, **(env or {})},
                                workdir="/")
    chunks = []
    for stdout, stderr in engine.exec_stream(handle):
        assert (stdout is None) != (stderr is None) or not (stdout or stderr), (stdout, stderr)
        if stdout:
            chunks.append(("out", stdout))
        if stderr:
            chunks.append(("err", stderr))
    return chunks, engine.exec_exit_code(handle)


def joined(chunks, stream: str) -> bytes:
    return b"".join(data for name, data in chunks if name == stream)


# --- lifecycle -------------------------------------------------------------------------------------------
def test_create_start_remove(engine, spec, run_label):
    container = engine.create_container(spec)
    try:
        made = engine.state(container)
        assert made is not None and not made.running
        assert [c.id for c in engine.list_containers(run_label)] == [container]
        engine.start(container)
        assert engine.state(container).running
        assert [c.state for c in engine.list_containers(run_label)] == ["running"]
    finally:
        engine.remove(container)
    assert engine.state(container) is None
    assert engine.list_containers(run_label) == []
    engine.remove(container)  # removing what is gone is not an error


def test_no_container_is_left_after_an_exception(engine, spec, run_label):
    """The pattern every caller uses (create, start, work, and remove in `finally`) leaves nothing behind when the
    work raises, even with an exec still streaming: its stream ends once the container is gone."""
    ended = threading.Event()
    container = None

    def stream_forever(handle):
        for _ in engine.exec_stream(handle):
            pass
        ended.set()

    with pytest.raises(RuntimeError, match="sentinel"):
        container = started(engine, spec)
        try:
            handle = engine.exec_create(container, ["sh", "-c", "echo going; exec sleep 60"], user="",
                                        env=SHELL_ENV, workdir="/")
            threading.Thread(target=stream_forever, args=(handle,), daemon=True).start()
            time.sleep(0.5)
            raise RuntimeError("sentinel")
        finally:
            engine.remove(container)
    assert ended.wait(20), "an exec's stream outlived its container"
    assert engine.state(container) is None
    assert engine.list_containers(run_label) == []


def test_a_container_whose_command_cannot_run_is_still_removed(engine, spec, run_label):
    container = engine.create_container(spec.replace(command=("/nonexistent/program",)))
    try:
        try:
            engine.start(container)
        except Exception:  # the engine refuses to start it (runc); under gVisor it starts and ends at once
            pass
        else:
            assert engine.wait(container, timeout=30) != 0
        assert not engine.state(container).running
    finally:
        engine.remove(container)
    assert engine.state(container) is None and engine.list_containers(run_label) == []


# --- exit codes and kills --------------------------------------------------------------------------------
@pytest.mark.parametrize("script, code", [("exit 0", 0), ("exit 3", 3), ("kill -9 $$", 137)])
def test_exit_codes_survive(engine, spec, script, code):
    container = started(engine, spec)
    try:
        assert run(engine, container, script)[1] == code
    finally:
        engine.remove(container)


def test_a_timeout_kills(engine, spec):
    container = started(engine, spec)
    try:
        began = time.monotonic()
        chunks, code = run(engine, container, "timeout -s KILL 1 sh -c 'echo started; exec sleep 60'")
        assert (joined(chunks, "out"), code) == (b"started\n", 137)
        chunks, code = run(engine, container, "timeout 1 sleep 60")
        assert code == 124
        assert time.monotonic() - began < 20  # 2 s of timeouts, not a minute of sleep
    finally:
        engine.remove(container)


def test_stopping_a_container_ends_it(engine, spec):
    container = started(engine, spec)
    try:
        engine.stop(container, timeout=1)
        state = engine.state(container)
        assert state is not None and not state.running and state.status != "running"
    finally:
        engine.remove(container)


# --- output ----------------------------------------------------------------------------------------------
def test_stdout_and_stderr_arrive_live_apart_and_in_order(engine, spec):
    script = "for i in 1 2 3; do echo out$i; sleep 0.3; echo err$i >&2; sleep 0.3; done"
    container = started(engine, spec)
    try:
        chunks, code = run(engine, container, script)
    finally:
        engine.remove(container)
    assert code == 0
    assert joined(chunks, "out") == b"out1\nout2\nout3\n"
    assert joined(chunks, "err") == b"err1\nerr2\nerr3\n"
    turns = [name for i, (name, _) in enumerate(chunks) if i == 0 or chunks[i - 1][0] != name]
    assert turns == ["out", "err"] * 3, chunks  # streamed as written, not collected per stream at the end


def test_large_output_arrives_whole(engine, spec):
    script = ("python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 16384); "
              "sys.stderr.buffer.write(b\"e\" * 1048576)'")
    expected = hashlib.sha256(bytes(range(256)) * 16384).hexdigest()
    container = started(engine, spec)
    try:
        chunks, code = run(engine, container, script)
    finally:
        engine.remove(container)
    assert code == 0
    out = joined(chunks, "out")
    assert len(out) == 4 * 1024 * 1024 and hashlib.sha256(out).hexdigest() == expected
    assert joined(chunks, "err") == b"e" * 1048576


def test_bytes_that_are_not_utf8_arrive_unchanged(engine, spec):
    container = started(engine, spec)
    try:
        chunks, code = run(engine, container, r"printf '\377\376\000ok\200'; printf '\303(' >&2")
    finally:
        engine.remove(container)
    assert code == 0
    assert joined(chunks, "out") == b"\xff\xfe\x00ok\x80"
    assert joined(chunks, "err") == b"\xc3("


def test_the_environment_given_reaches_the_process(engine, spec):
    container = started(engine, spec.with_env(FROM_SPEC="spec"))
    try:
        chunks, code = run(engine, container, 'echo "$FROM_SPEC $FROM_EXEC"', env={"FROM_EXEC": "exec"})
    finally:
        engine.remove(container)
    assert (joined(chunks, "out"), code) == (b"spec exec\n", 0)


# --- a container that ended, listing ---------------------------------------------------------------------
def test_state_and_logs_of_a_container_that_ended(engine, spec):
    container = engine.create_container(spec.replace(command=("sh", "-c", "echo bye; echo oops >&2; exit 3")))
    try:
        engine.start(container)
        assert engine.wait(container, timeout=30) == 3
        state = engine.state(container)
        assert state is not None and not state.running and state.exit_code == 3 and state.pid is None
        assert state.status == "exited"
        logs = b"".join(engine.logs(container))
        assert b"bye\n" in logs and b"oops\n" in logs
    finally:
        engine.remove(container)


def test_containers_are_listed_by_label(engine, spec, run_label):
    a = engine.create_container(spec.with_labels({"role": "a"}))
    b = engine.create_container(spec.with_labels({"role": "b"}))
    try:
        engine.start(b)
        assert {c.id for c in engine.list_containers(run_label)} == {a, b}
        assert [c.id for c in engine.list_containers({**run_label, "role": "a"})] == [a]
        listed = {c.id: c for c in engine.list_containers({**run_label, "role": ""})}  # "": any value
        assert set(listed) == {a, b}
        assert listed[b].state == "running" and listed[a].state != "running"
        assert dict(listed[a].labels) == {**run_label, "role": "a"}
        assert engine.list_containers({**run_label, "role": "c"}) == []
        assert engine.list_containers({LABEL: "no-such-run"}) == []
    finally:
        engine.remove(a)
        engine.remove(b)
    assert engine.list_containers(run_label) == []


def test_a_mounted_folder_is_shared_with_the_host(engine, spec, tmp_path):
    from workbench.sandbox.spec import Mount

    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)  # whoever the container's user is on the host
    container = started(engine, spec.with_mounts(Mount(str(shared), "/mnt/shared")))
    try:
        (shared / "in.txt").write_text("from the host")
        chunks, code = run(engine, container, "cat /mnt/shared/in.txt; echo from-inside > /mnt/shared/out.txt")
    finally:
        engine.remove(container)
    assert (joined(chunks, "out"), code) == (b"from the host", 0), chunks
    assert (shared / "out.txt").read_text() == "from-inside\n"


# --- the shape of the seam -------------------------------------------------------------------------------
@pytest.mark.parametrize("implementation", ["DockerEngine", "FakeEngine"])
def test_every_implementation_has_the_protocols_methods_and_parameters(implementation):
    import inspect

    from workbench.sandbox import docker_engine, fake_engine
    from workbench.sandbox.engine import Engine

    cls = getattr(docker_engine if implementation == "DockerEngine" else fake_engine, implementation)
    wanted = {name for name, value in vars(Engine).items() if callable(value) and not name.startswith("_")}
    assert wanted >= {"create_container", "exec_stream", "list_containers", "state"}
    for name in sorted(wanted):
        method = getattr(cls, name, None)
        assert callable(method), f"{implementation} lacks {name}"
        have = inspect.signature(method).parameters
        for parameter in inspect.signature(getattr(Engine, name)).parameters.values():
            assert parameter.name in have, f"{implementation}.{name} lacks the parameter {parameter.name}"
            assert have[parameter.name].kind == parameter.kind, f"{implementation}.{name}({parameter.name})"

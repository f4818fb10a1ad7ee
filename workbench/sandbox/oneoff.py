"""One-off executions: the transport over the engine's exec API (one process tree per execution).

Each one-off execution writes its code to a file in the read-only code folder (/opt/workbench/code inside,
`.workbench/sandbox/code` on the host) and runs the language's command from `workbench.languages` under
`timeout` in its own process group (WRAPPER), so a timeout or cancel kills every process it forked. Its
stdout and stderr stream live and apart (docker-py `exec_create` / `exec_start(stream, demux)` /
`exec_inspect`: `exec_run(stream=True)` loses the exit code). What the exit code means (timeout, an OOM
kill seen on the cgroup's counter, the PID limit) is read here; everything else is the lifecycle's
(`workbench.sandbox.lifecycle`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import replace

from workbench.sandbox import container as container_code
from workbench.sandbox import policy
from workbench.sandbox.engine import ExecHandle
from workbench.sandbox.execution import LiveExecution
from workbench.sandbox.lifecycle import Ended, ExitFacts, Request, SandboxHost, Transport
from workbench.sandbox.types import StreamName

log = logging.getLogger(__name__)

# Runs each one-off execution: `timeout` leads a new process group holding everything the code forks;
# its pid goes to a file so cancel() can signal the group; when the code ends, whatever it left running
# in that group (background jobs, a fork bomb) is killed, so nothing outlives its execution.
# One kill is not always enough: a fork bomb's processes that are mid-fork when the group is signalled
# can leave children behind. So the group is killed again until none of it is left, killed processes
# included, which hold their PID slots until reaped: the next execution must find the PID limit free.
# Then every other process in the container is killed the same way (`kill -1` spares only PID 1 and the
# wrapper itself): code that left its group (`setsid`, a daemon's double fork) must not outlive the
# execution and write into the next one's record. One-off executions of a sandbox run one at a time
# (`Sandbox.one_at_a_time`), so whatever else is alive in the container is this execution's.
# (At most about 3 s each; `sleep` may fail to start while the slots are taken, which only shortens a round.)
# `timeout` and `prlimit` are named by path (container.BY_PATH): one planted in /workspace/.venv/bin, first
# on the PATH, would drop the limits of every later execution.
WRAPPER = ('id=$0; grace=$1; shift; /usr/bin/timeout -k "$grace" "$@" & p=$!; echo $p > /tmp/.wb-$id.pid; '
           'wait $p; rc=$?; i=0; while kill -KILL -$p 2>/dev/null && [ $i -lt 60 ]; do i=$((i+1)); '
           'sleep 0.05 2>/dev/null; done; n=0; while kill -KILL -1 2>/dev/null && [ $n -lt 60 ]; do '
           'n=$((n+1)); sleep 0.05 2>/dev/null; done; '
           'rm -f /tmp/.wb-$id.pid; exit $rc')
# Before the first execution in a container an earlier session used (Sandbox.scrub_tmp): /tmp, the code's
# HOME, is emptied, as a container of its own would have it. Only the code's user writes there, and every
# process of the earlier execution is gone (WRAPPER), so nothing is held open or recreated meanwhile.
SCRUB_TMP = "/usr/bin/find /tmp -mindepth 1 -delete 2>/dev/null; "
KILL_GRACE = 2  # seconds between SIGTERM and SIGKILL for a timed-out or cancelled execution
BACKSTOP_SLACK = 5  # seconds past the timeout and its grace before the host kills what `timeout` did not


class OneOffTransport(Transport):
    def __init__(self, sandbox: SandboxHost, request: Request):
        self.sandbox, self.request = sandbox, request
        self.code_file = sandbox.code_dir / f"x-{request.execution_id}{request.runtime.extension}"
        self.handle: ExecHandle | None = None
        self.chunks: Iterator[tuple[bytes | None, bytes | None]] | None = None
        self.killed_by: str | None = None  # what the host itself did to it (timeout, user)
        self.holds_slot = False

    def prepare(self) -> None:
        sandbox = self.sandbox
        self.code_file.write_text(self.request.code, encoding="utf-8")
        os.chmod(self.code_file, 0o644)
        sandbox.one_at_a_time.acquire()
        self.holds_slot = True

    def launch(self) -> None:
        sandbox, request = self.sandbox, self.request
        inside = f"{policy.CODE_DIR}/code/{self.code_file.name}"
        cmd = request.runtime.command(file=inside, python=sandbox.python_path(),
                                      database=request.database or
                                      f"{policy.WORKSPACE}/{sandbox.settings.sandbox.sql_database}")
        limits = container_code.by_path(policy.prlimit_args(sandbox.settings, sandbox.engine.limits_enforced))
        script = SCRUB_TMP + WRAPPER if sandbox.scrub_tmp else WRAPPER
        wrapped = ["/bin/sh", "-c", script, request.execution_id, str(KILL_GRACE), f"{request.timeout:g}s",
                   *limits, *cmd]
        try:
            container = sandbox.ensure_running()
            self.handle = sandbox.engine.exec_create(container, wrapped, user=sandbox.identity.user,
                                                     env=policy.execution_env(sandbox.project.workspace),
                                                     workdir=policy.WORKSPACE)
            self.chunks = sandbox.engine.exec_stream(self.handle)
            sandbox.scrub_tmp = False
        except Exception as exc:
            raise Ended(self.refused(exc)) from exc

    def refused(self, exc: Exception) -> ExitFacts:
        return ExitFacts(error=f"the engine refused the execution: {exc}")

    def stream(self) -> Iterator[tuple[StreamName, bytes]]:
        assert self.chunks is not None
        try:
            for stdout, stderr in self.chunks:
                if stdout:
                    yield "stdout", stdout
                if stderr:
                    yield "stderr", stderr
        except Exception as exc:  # the engine went away mid-run: still end the execution
            raise Ended(ExitFacts(error=f"lost the engine during the execution: {exc}")) from exc

    def exit_facts(self) -> ExitFacts:
        assert self.handle is not None
        try:
            return ExitFacts(exit_code=self.sandbox.engine.exec_exit_code(self.handle), killed_by=self.killed_by)
        except Exception as exc:
            return ExitFacts(error=f"lost the engine during the execution: {exc}", killed_by=self.killed_by)

    def release(self) -> None:
        try:
            self.code_file.unlink()
        except OSError:
            pass
        if self.holds_slot:  # the wrapper has ended, and with it every process of this execution
            self.holds_slot = False
            self.sandbox.one_at_a_time.release()

    def conclude(self, end, facts: ExitFacts) -> None:
        end()

    # --- signals ----------------------------------------------------------------------------------
    def backstop(self) -> float:
        # `timeout` inside the container is the first line; this is the backstop if it cannot act
        # (e.g. the PID limit is exhausted and nothing can be forked).
        return self.request.timeout + KILL_GRACE + BACKSTOP_SLACK

    def overdue(self) -> None:
        self.killed_by = self.killed_by or "timeout"
        self.signal("KILL")

    def cancel(self, live: LiveExecution) -> None:
        self.killed_by = "user"
        self.signal("TERM")
        if not live.wait(KILL_GRACE):
            self.signal("KILL")

    def disk_low(self, live: LiveExecution) -> None:
        self.signal("KILL")

    def signal(self, sig: str) -> None:
        # dash's kill takes no "--"; "-PID" is the process group `timeout` leads.
        script = f'p=$(cat /tmp/.wb-$0.pid 2>/dev/null) && {{ kill -{sig} -"$p"; kill -{sig} "$p"; }} 2>/dev/null; true'
        try:
            self.sandbox.run_quiet(["/bin/sh", "-c", script, self.request.execution_id])
        except Exception as exc:
            log.warning("could not signal execution %s: %s", self.request.execution_id, exc)

    # --- what the exit code means -----------------------------------------------------------------
    def explain(self, facts: ExitFacts, live: LiveExecution) -> ExitFacts:
        sandbox, exit_code = self.sandbox, facts.exit_code
        killed_by = facts.killed_by
        timed_out = killed_by == "timeout" or (
            killed_by is None and exit_code in (124, 137, 143) and live.duration >= self.request.timeout * 0.98)
        pid_limit = False
        if timed_out:
            killed_by = "timeout"
        elif killed_by is None and exit_code == 137:
            count = sandbox.oom_kills()
            if count is None or count > sandbox.oom_kill_count:
                killed_by = "oom"
            if count is not None:
                sandbox.oom_kill_count = count
        elif exit_code == 125:
            output = live.records["stderr"].summary().kept + live.records["stdout"].summary().kept
            pid_limit = b"runc" in output
        return replace(facts, killed_by=killed_by, timed_out=timed_out, pid_limit=pid_limit)

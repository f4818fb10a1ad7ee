"""Warm executions: the transport over the session container's runner (workbench.sandbox.kernels).

The cell goes to the authenticated runner as one exec request; its stdout/stderr come back as O/E frames
and its end as one J frame, checked field by field (`runner_client.parse_outcome`). The host takes the
duration and the output digests from what it observes itself (the clock around the exchange; every byte as
it arrives); only the exit code and the flags come from the runner.

A frame of another kind, over MAX_REPLY_FRAME, cut short, JSON that is not an object, an unknown field, or
silence past the cell's timeout (and the runner's grace, sweep and `Kernels.reply_slack`) ends that warm
session: the execution ends without an exit code, and the session container is removed before the result
is published (the next execution starts a fresh one).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, Protocol

from workbench import languages
from workbench.errors import EngineUnavailable
from workbench.inert import one_line
from workbench.sandbox.container import protocol
from workbench.sandbox.execution import LiveExecution
from workbench.sandbox.lifecycle import Ended, ExitFacts, Request, SandboxHost, Transport
from workbench.sandbox.runner_client import (
    MAX_REPLY_FRAME,
    RunnerIdentity,
    RunnerMisbehaved,
    keyed_problem,
    parse_outcome,
)
from workbench.sandbox.types import StreamName

DISK_GRACE = 0.3  # seconds a cell still writing after the disk-floor interrupt gets before its restart


class Sessions(Protocol):
    """What a warm execution uses of `workbench.sandbox.kernels.Kernels` (the session container's keeper)."""

    sandbox: SandboxHost
    lock: threading.RLock
    reply_slack: float

    def open_channel(self, timeout: float = 10.0) -> tuple[protocol.Channel, RunnerIdentity]: ...
    def take_incidents(self) -> list[str]: ...
    def discard(self, identity: RunnerIdentity) -> None: ...
    def call(self, message: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]: ...


class WarmTransport(Transport):
    def __init__(self, kernels: Sessions, request: Request):
        assert request.session is not None
        self.kernels, self.request, self.session = kernels, request, request.session
        self.channel: protocol.Channel | None = None
        self.identity: RunnerIdentity | None = None
        self.noted: list[str] = []  # why the session container was replaced before this execution
        self.outcome: dict[str, Any] | None = None
        self.silent = False  # the backstop fired: the runner said nothing in time
        self.doomed = False  # this execution ends the warm session: its container goes
        self.settled = threading.Event()  # set once a doomed session's container is gone (or never doomed)
        self.settled.set()

    def launch(self) -> None:
        sandbox, request = self.kernels.sandbox, self.request
        try:
            self.channel, self.identity = self.kernels.open_channel()
            self.noted = self.kernels.take_incidents()
            message = {"op": "exec", "session": self.session, "language": request.runtime.name,
                       "code": request.code, "timeout": request.timeout, "python": sandbox.python_path()}
            if request.runtime.warm != languages.RUNNER_KERNEL:  # a configured interpreter, started as given
                message |= {"argv": languages.fill(request.runtime.warm, python=sandbox.python_path()),
                            "extension": request.runtime.extension}
            self.channel.send_json(message)
            self.channel.settimeout(None)  # the lifecycle's watchdog bounds the wait (`backstop`)
        except RunnerMisbehaved as exc:
            self.noted = self.noted or self.kernels.take_incidents()
            raise Ended(self.ending(str(exc))) from None
        except (OSError, EngineUnavailable) as exc:
            self.noted = self.noted or self.kernels.take_incidents()
            raise Ended(ExitFacts(error=f"the warm-session runner is unreachable: {one_line(str(exc))}")) from None

    def ending(self, problem: str | None, lost: str | None = None) -> ExitFacts:
        """This execution ends without an exit code, and the session container goes (see `conclude`)."""
        self.doomed = True
        error = (f"{problem}: the warm session was ended and its container removed; the next execution "
                 f"starts a fresh one") if problem is not None else lost
        return ExitFacts(error=error, state_lost=True)

    def stream(self) -> Iterator[tuple[StreamName, bytes]]:
        channel = self.channel
        assert channel is not None
        problem = lost = None
        try:
            while self.outcome is None:
                kind, payload = channel.recv(MAX_REPLY_FRAME)
                if kind == b"O":
                    yield "stdout", payload
                elif kind == b"E":
                    yield "stderr", payload
                elif kind == b"J":
                    self.outcome = parse_outcome(self.answer(payload))
                else:
                    raise RunnerMisbehaved(f"the warm-session runner sent a frame of unknown kind "
                                           f"{one_line(repr(kind))}")
        except protocol.ProtocolError as exc:
            problem = self.silence() or str(keyed_problem(exc))
        except RunnerMisbehaved as exc:
            problem = str(exc)
        except (OSError, EOFError) as exc:
            problem = self.silence()
            lost = None if problem else f"lost the warm-session runner: {one_line(str(exc))}"
        finally:
            try:
                channel.close()
            except OSError:
                pass
        if problem is not None or lost is not None:
            raise Ended(self.ending(problem, lost))

    def silence(self) -> str | None:
        if not self.silent:
            return None
        return (f"the warm-session runner said nothing for {self.request.timeout + protocol.GRACE:g} s and more "
                f"past the cell's start")

    @staticmethod
    def answer(payload: bytes) -> dict[str, Any]:
        try:
            answer = json.loads(payload)
        except ValueError:
            raise RunnerMisbehaved("the warm-session runner's answer is not JSON") from None
        if not isinstance(answer, dict):
            raise RunnerMisbehaved(f"the warm-session runner's answer is JSON but not an object "
                                   f"({type(answer).__name__})")
        return answer

    def exit_facts(self) -> ExitFacts:
        outcome = self.outcome or {}
        error = outcome.get("error")
        return ExitFacts(exit_code=outcome.get("exit_code"), error=one_line(error) if error else None,
                         killed_by=outcome.get("killed_by"), timed_out=bool(outcome.get("timed_out")),
                         interrupted=bool(outcome.get("interrupted")),
                         state_lost=bool(outcome.get("state_lost")),
                         background_killed=outcome.get("background_killed") or 0)

    def conclude(self, end: Callable[[], None], facts: ExitFacts) -> None:
        """A doomed session's clock stops before its container is removed (the duration is the
        execution's, not the cleanup's), and a next execution waits for the removal instead of finding
        the old container."""
        if not self.doomed:
            end()
            return
        self.settled.clear()
        try:
            with self.kernels.lock:
                end()
                if self.identity is not None:
                    self.kernels.discard(self.identity)
        finally:
            self.settled.set()

    def settle(self) -> None:
        self.settled.wait(30)

    def incidents(self) -> list[str]:
        return list(self.noted)

    def explain(self, facts: ExitFacts, live: LiveExecution) -> ExitFacts:
        if self.noted and not facts.state_lost:  # the container was replaced: every session starts empty
            return replace(facts, state_lost=True)
        return facts

    # --- signals ----------------------------------------------------------------------------------
    def backstop(self) -> float:
        # The runner stops a cell at its timeout and kills it GRACE seconds later; past this the host stops
        # waiting (a runner that says nothing must not hang the execution).
        return self.request.timeout + protocol.GRACE + protocol.SWEEP_SECONDS + self.kernels.reply_slack

    def overdue(self) -> None:
        self.silent = True
        if self.channel is not None:
            try:
                self.channel.sock.shutdown(socket.SHUT_RDWR)  # the stream's wait ends at once
            except OSError:
                pass

    def cancel(self, live: LiveExecution) -> None:
        if self.channel is not None:
            try:
                self.channel.send_json({"op": "interrupt"})
            except OSError:
                pass

    def disk_low(self, live: LiveExecution) -> None:
        # An interrupt first; a cell still writing a moment later is not given the usual grace (the disk
        # is filling): its interpreter restarts at once.
        self.cancel(live)
        if not live.wait(DISK_GRACE):
            try:
                self.kernels.call({"op": "restart", "session": self.session, "language": self.request.runtime.name})
            except (OSError, EOFError, ValueError, RunnerMisbehaved, EngineUnavailable):
                pass

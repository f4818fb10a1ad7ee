"""Inside the container: PID 1, and (for warm sessions) the server of live interpreters.

Standard library only: it runs on the image's python3, copied by the host side into the container's
read-only code folder (/opt/workbench) with the modules it imports by their bare names (protocol.py: the
wire protocol and its key; interpreters.py: the live interpreters). It runs as the container's
unprivileged user with all its limits.

    python3 runner.py --init                       PID 1 of a one-off container: reap orphans, exit on TERM
    python3 runner.py --serve SOCKET [--idle S]    PID 1 of the warm-session container: also serve SOCKET,
                                                   and exit (stopping the container) after S idle seconds
    ... --relay SOCKET PORT                        also relay 127.0.0.1:PORT to the network policy proxy's
                                                   SOCKET (relay.py; in PID 1, the one process every
                                                   execution's end spares)

Why our own PID 1: orphans of killed code (a fork bomb's children) must be reaped or their zombies hold
PIDs against the limit; and PID 1 ignores signals it has no handler for, so `kill -9 -1` from user code
cannot take the container down.

Warm sessions: one live interpreter per (session, language) (see interpreters.py). When a cell ends, every
process it left running is killed (see `Server.sweep`): only PID 1 (this runner) and the interpreters
themselves outlive a cell, so a `setsid`, double-forked or `start_new_session` process cannot write into a
later cell's record.

Who may talk to the runner: protocol.py says. This process makes itself non-dumpable first thing (code
of the same uid cannot ptrace it, read /proc/1/mem for the key, or take its listening socket out of
/proc/1/fd), and hangs up on clients it can tell are inside its own PID namespace.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time

# isort: off
if __package__:  # imported on the host, as workbench.sandbox.container.runner (tests)
    from .interpreters import Kernel, oom_kills, process_table, reap, spared
    from .protocol import (GRACE, HEADER, NONCE_SIZE, SWEEP_SECONDS, Channel, ProtocolError, peer_pid,
                           recv_exact, take_key)
else:  # run in the container from /opt/workbench, beside the modules it needs
    from interpreters import Kernel, oom_kills, process_table, reap, spared
    from protocol import (GRACE, HEADER, NONCE_SIZE, SWEEP_SECONDS, Channel, ProtocolError, peer_pid,
                          recv_exact, take_key)
# isort: on

PR_SET_DUMPABLE, PR_GET_DUMPABLE = 4, 3
SEEN_NONCES = 65536  # how many connection nonces the runner remembers (a replayed request is refused)


def make_undumpable() -> bool:
    """PR_SET_DUMPABLE 0: processes of the same uid can no longer ptrace this one nor open /proc/1/fd,
    /proc/1/mem (nor pidfd_getfd its listening socket). Kept across fork, reset by execve (interpreters
    the runner starts are dumpable again: they are user code). True when it took."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 and libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError, ImportError):
        return False


class Server:
    def __init__(self, path: str, idle: float, stop: threading.Event, key: bytes):
        self.path, self.idle, self.stop, self.key = path, idle, stop, key
        self.nonces: set[bytes] = set()
        self.nonce_order: list[bytes] = []
        self.nonce_lock = threading.Lock()
        self.kernels: dict[tuple[str, str], Kernel] = {}
        self.kernels_lock = threading.Lock()
        self.last_activity = time.monotonic()
        self.busy = 0

    # -- lifecycle --
    def serve(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        os.chmod(self.path, 0o600)
        listener.listen(16)
        listener.settimeout(1.0)
        while not self.stop.is_set():
            if not self.busy and time.monotonic() - self.last_activity > self.idle:
                self.stop.set()
                break
            # The project (its .workbench folder) was removed: nobody will come. A socket replaced by user
            # code is left to the host, which refuses whoever answers there and records why.
            if not os.path.lexists(self.path):
                self.stop.set()
                break
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            try:  # 0: outside this PID namespace (the host, under runc); our own pid: how gVisor shows the host
                inside = peer_pid(conn) not in (0, os.getpid())
            except OSError:
                inside = True
            if inside:  # a process in this container: user code, never the host
                conn.close()
                continue
            self.last_activity = time.monotonic()
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()
        listener.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass
        with self.kernels_lock:
            for kernel in self.kernels.values():
                kernel.stop()

    def kernel_pids(self) -> set[int]:
        with self.kernels_lock:
            return {k.proc.pid for k in self.kernels.values()}

    # -- requests --
    def handle(self, sock: socket.socket) -> None:
        self.busy += 1
        conn = sock
        try:
            sock.settimeout(10)  # a client that connects and says nothing does not hold a thread for ever
            conn = self.channel(sock)
            request = conn.recv_object()
            sock.settimeout(None)
            op = request.get("op")
            if op == "exec":
                if not all(isinstance(request.get(key), str) for key in ("session", "language", "code")):
                    raise ProtocolError("an exec request needs session, language and code strings")
                self.execute(conn, request)
            elif op == "list":
                conn.send_json({"sessions": self.listing()})
            elif op == "restart":
                conn.send_json({"restarted": self.restart(request.get("session"), request.get("language"))})
            elif op == "ping":
                conn.send_json({"pong": True, "pid": os.getpid()})
            else:
                conn.send_json({"error": f"unknown op {op!r}"})
        except (EOFError, OSError, ValueError, TypeError):
            pass
        finally:
            self.busy -= 1
            self.last_activity = time.monotonic()
            conn.close()

    def channel(self, sock: socket.socket) -> Channel:
        nonce_kind, size = HEADER.unpack(recv_exact(sock, HEADER.size))
        if nonce_kind != b"N" or size != NONCE_SIZE:
            raise ProtocolError("a connection that does not start with a nonce")
        nonce = recv_exact(sock, NONCE_SIZE)
        with self.nonce_lock:
            if nonce in self.nonces:
                raise ProtocolError("a nonce seen before")
            self.nonces.add(nonce)
            self.nonce_order.append(nonce)
            if len(self.nonce_order) > SEEN_NONCES:
                self.nonces.discard(self.nonce_order.pop(0))
        return Channel(sock, self.key, nonce, client=False)

    def listing(self) -> list[dict]:
        now = time.monotonic()
        with self.kernels_lock:
            return [{"name": k.session, "language": k.language, "state": "busy" if k.lock.locked() else
                     ("idle" if k.alive else "dead"), "executions": k.executions, "idle": now - k.last_used}
                    for k in self.kernels.values()]

    def restart(self, session: str, language: str | None) -> int:
        with self.kernels_lock:
            doomed = [key for key in self.kernels if key[0] == session and language in (None, key[1])]
            kernels = [self.kernels.pop(key) for key in doomed]
        for kernel in kernels:
            kernel.stop()
        if kernels:
            self.sweep()  # what their cells left behind goes with them
        return len(kernels)

    # -- what cells leave behind --
    def sweep(self) -> int:
        """Kill every process in the container except PID 1 (this runner), the interpreters, and the
        process tree of an interpreter whose cell is still running (its process group and descendants).
        Repeated until a scan finds nothing to kill (a process can fork while the scan runs), for at most
        SWEEP_SECONDS. Returns how many processes were killed."""
        killed: set[int] = set()
        deadline = time.monotonic() + SWEEP_SECONDS
        with self.kernels_lock:  # no interpreter is being started meanwhile (its fork would look foreign)
            while True:
                table = process_table()
                spare = spared(self.kernels.values(), table)
                doomed = [pid for pid, (_ppid, _pgrp, state) in table.items() if pid not in spare and state != "Z"]
                if not doomed:
                    break
                for pid in doomed:
                    try:
                        os.kill(pid, signal.SIGKILL)
                        killed.add(pid)
                    except (ProcessLookupError, PermissionError):
                        pass
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
        return len(killed)

    def kernel_for(self, session: str, language: str, python: str, argv: list[str] | None = None,
                   extension: str | None = None) -> tuple[Kernel, bool]:
        """(the kernel, whether it had to be (re)started after dying: state lost)."""
        with self.kernels_lock:
            kernel = self.kernels.get((session, language))
            lost = False
            if kernel is not None and not kernel.alive:
                kernel.stop()
                lost = True
                kernel = None
            if kernel is None:
                kernel = Kernel(session, language, python, argv=argv, extension=extension)
                self.kernels[(session, language)] = kernel
            return kernel, lost

    def execute(self, conn: Channel, request: dict) -> None:
        session, language = request["session"], request["language"]
        try:
            kernel, lost_before = self.kernel_for(session, language, request.get("python") or "python3",
                                                  request.get("argv"), request.get("extension"))
        except (ValueError, OSError) as exc:
            conn.send_json({"done": True, "error": str(exc), "exit_code": None})
            return
        with kernel.lock:
            kernel.running = True
            try:
                outcome = self.run_cell(conn, kernel, request)
            finally:
                kernel.running = False
        outcome["background_killed"] = self.sweep()
        if outcome["background_killed"] and not kernel.closed:
            self.forward_rest(conn, kernel)  # what they wrote before they died belongs to this cell
        outcome["state_lost"] = outcome.get("state_lost", False) or lost_before
        outcome["done"] = True
        kernel.executions += 1
        kernel.last_used = time.monotonic()
        try:
            conn.send_json(outcome)
        except OSError:
            pass

    def run_cell(self, conn: Channel, kernel: Kernel, request: dict) -> dict:
        timeout = float(request.get("timeout") or 120)
        oom_before = oom_kills()
        kernel.submit(request["code"], f"{os.getpid()}-{time.monotonic_ns()}")
        deadline = time.monotonic() + timeout
        interrupted_at = None
        timed_out = interrupted = False
        reply = b""
        out_fd, err_fd = kernel.proc.stdout.fileno(), kernel.proc.stderr.fileno()
        watching = [out_fd, err_fd, kernel.rep_r, conn]
        while True:
            now = time.monotonic()
            if interrupted_at is None and now >= deadline:
                timed_out = True
                interrupted_at = now
                kernel.signal_group(signal.SIGINT)
            if interrupted_at is not None and now - interrupted_at > GRACE:
                return self.lost(kernel, conn, timed_out, interrupted, "timeout" if timed_out else "user")
            wait = max(0.0, min(deadline - now if interrupted_at is None else GRACE, 0.5))
            readable, _, _ = select.select(watching, [], [], wait)
            for fd in readable:
                if fd is conn:
                    try:
                        wants_stop = conn.recv_object().get("op") == "interrupt"
                    except (EOFError, OSError, ValueError):
                        wants_stop = True  # the client went away: do not leave the cell running
                        watching.remove(conn)
                    if wants_stop and interrupted_at is None:
                        interrupted = True
                        interrupted_at = time.monotonic()
                        kernel.signal_group(signal.SIGINT)
                    continue
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if fd == kernel.rep_r:
                    if not data:  # the interpreter died mid-cell
                        self.forward_rest(conn, kernel)
                        return self.died(kernel, oom_before, timed_out, interrupted)
                    reply += data
                    if reply.endswith(b"\n"):
                        self.forward_rest(conn, kernel)
                        status = json.loads(reply)["status"]
                        killed_by = "timeout" if timed_out else ("user" if interrupted else None)
                        return {"exit_code": status, "timed_out": timed_out, "interrupted": interrupted,
                                "killed_by": killed_by, "state_lost": False}
                elif data:
                    self.forward(conn, b"O" if fd == out_fd else b"E", data)

    def forward(self, conn, kind: bytes, data: bytes) -> None:
        try:
            conn.send(kind, data)
        except OSError:
            pass

    def forward_rest(self, conn, kernel: Kernel) -> None:
        for fd, kind in ((kernel.proc.stdout.fileno(), b"O"), (kernel.proc.stderr.fileno(), b"E")):
            while True:
                try:
                    data = os.read(fd, 65536)
                except (BlockingIOError, OSError):
                    break
                if not data:
                    break
                self.forward(conn, kind, data)

    def lost(self, kernel: Kernel, conn, timed_out: bool, interrupted: bool, killed_by: str) -> dict:
        kernel.signal_group(signal.SIGKILL)
        try:
            kernel.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.forward_rest(conn, kernel)
        self.drop(kernel)
        return {"exit_code": 137, "timed_out": timed_out, "interrupted": interrupted, "killed_by": killed_by,
                "state_lost": True}

    def died(self, kernel: Kernel, oom_before: int, timed_out: bool, interrupted: bool) -> dict:
        try:
            code = kernel.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            kernel.signal_group(signal.SIGKILL)
            code = kernel.proc.wait()
        self.drop(kernel)
        killed_by = None
        if code == -signal.SIGKILL and oom_kills() > oom_before >= 0:
            killed_by = "oom"
        elif timed_out:
            killed_by = "timeout"
        elif interrupted:
            killed_by = "user"
        exit_code = 128 - code if code < 0 else code
        return {"exit_code": exit_code, "timed_out": timed_out, "interrupted": interrupted,
                "killed_by": killed_by, "state_lost": True}

    def drop(self, kernel: Kernel) -> None:
        with self.kernels_lock:
            if self.kernels.get((kernel.session, kernel.language)) is kernel:
                del self.kernels[(kernel.session, kernel.language)]
        kernel.stop()


# --- PID 1 -----------------------------------------------------------------------------------------
def main(argv: list[str]) -> int:
    # First, before anything else runs in the container: code of the same uid must not reach into us.
    undumpable = make_undumpable()
    if not undumpable and argv[:1] == ["--serve"]:
        print("runner: cannot make itself non-dumpable (prctl): refusing to serve warm sessions",
              file=sys.stderr)
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    spare = set
    if len(argv) >= 2 and argv[0] == "--serve":
        idle = float(argv[argv.index("--idle") + 1]) if "--idle" in argv else 1800.0
        key = take_key(os.path.dirname(argv[1]))
        if key is None:
            print("runner: no session key beside the socket: refusing to serve warm sessions", file=sys.stderr)
            return 1
        server = Server(argv[1], idle, stop, key)
        spare = server.kernel_pids
        threading.Thread(target=server.serve, daemon=True).start()
    if "--relay" in argv:
        at = argv.index("--relay")
        try:
            from .relay import listen, serve
        except ImportError:
            from relay import listen, serve
        threading.Thread(target=serve, args=(listen(int(argv[at + 2])), argv[at + 1]), daemon=True).start()
    threading.Thread(target=reap, args=(stop, spare), daemon=True).start()
    while not stop.wait(1.0):
        pass
    time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Inside the container: PID 1, and (for warm sessions) the server of live interpreters.

Standard library only: it runs on the image's python3, copied by the host side into the container's
read-only code folder (/opt/workbench). It runs as the container's unprivileged user with all its limits.

    python3 runner.py --init                       PID 1 of a one-off container: reap orphans, exit on TERM
    python3 runner.py --serve SOCKET [--idle S]    PID 1 of the warm-session container: also serve SOCKET,
                                                   and exit (stopping the container) after S idle seconds

Why our own PID 1: orphans of killed code (a fork bomb's children) must be reaped or their zombies hold
PIDs against the limit; and PID 1 ignores signals it has no handler for, so `kill -9 -1` from user code
cannot take the container down.

Warm sessions: one live interpreter per (session, language), a child process in its own process group,
its stdout/stderr on pipes the runner forwards as they arrive, and a control pipe pair on which it
receives a cell and answers its exit status. Python keeps its globals, shell (bash) its working folder and
variables, R its global environment.

Protocol, over a unix socket in the workspace (never a network): frames of
<1 byte kind><4 bytes big-endian length><payload>. Kinds: b"J" a JSON object, b"O" stdout bytes,
b"E" stderr bytes. A client sends one JSON request:
  {"op": "exec", "session", "language", "code", "timeout", "python"}  -> O/E frames, then a J "done" frame
      {"done": true, "exit_code", "timed_out", "interrupted", "state_lost", "killed_by", "restarted"}
      (while it runs the client may send {"op": "interrupt"}; closing the socket interrupts too)
  {"op": "list"}                                  -> {"sessions": [{name, language, state, executions, idle}]}
  {"op": "restart", "session", "language"|null}   -> {"restarted": N}
  {"op": "ping"}                                  -> {"pong": true}
Timeout or interrupt: SIGINT to the interpreter's process group first; when the cell has not stopped
after GRACE seconds the interpreter is killed and restarted, and the answer says `state_lost`.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

HEADER = struct.Struct(">cI")
GRACE = 2.0

PYTHON_KERNEL = r'''
import ast, json, os, sys, traceback
requests = os.fdopen(int(os.environ["WB_IN"]), "rb", 0)
replies = os.fdopen(int(os.environ["WB_OUT"]), "wb", 0)
del os.environ["WB_IN"], os.environ["WB_OUT"]
scope = {"__name__": "__main__", "__builtins__": __builtins__}
sys.argv = ["<session>"]
def run(code):
    tree = ast.parse(code, "<cell>")
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, "<cell>", "exec"), scope)
    if last is not None:
        value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), scope)
        if value is not None:
            print(repr(value))
while True:
    try:
        line = requests.readline()
    except KeyboardInterrupt:
        continue
    if not line:
        break
    status = 0
    try:
        run(json.loads(line)["code"])
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        traceback.print_exc()
        status = 130
    except BaseException:
        traceback.print_exc()
        status = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    replies.write((json.dumps({"status": status}) + "\n").encode())
'''

SHELL_KERNEL = r'''
trap 'echo "interrupted" >&2' INT
while IFS= read -r wb_cell <&"$WB_IN"; do
  . "$wb_cell"
  wb_status=$?
  rm -f "$wb_cell"
  printf '{"status": %d}\n' "$wb_status" >&"$WB_OUT"
done
'''

R_KERNEL = r'''
wb_in <- file(paste0("/proc/self/fd/", Sys.getenv("WB_IN")), "r")
wb_out <- file(paste0("/proc/self/fd/", Sys.getenv("WB_OUT")), "w")
repeat {
  wb_cell <- readLines(wb_in, n = 1)
  if (length(wb_cell) == 0) break
  wb_status <- tryCatch({
    source(wb_cell, local = globalenv(), print.eval = TRUE, echo = FALSE)
    0L
  }, interrupt = function(e) { message("interrupted"); 130L },
     error = function(e) { message("Error: ", conditionMessage(e)); 1L })
  unlink(wb_cell)
  flush(stdout()); flush(stderr())
  cat(sprintf('{"status": %d}\n', wb_status), file = wb_out)
  flush(wb_out)
}
'''


def kernel_command(language: str, python: str) -> tuple[list[str], str | None]:
    """(argv, extension of cell files or None when cells travel inline)."""
    if language == "python":
        return [python, "-u", "-c", PYTHON_KERNEL], None
    if language == "shell":
        return ["bash", "--noprofile", "--norc", "-c", SHELL_KERNEL], ".sh"
    if language == "r":
        return ["R", "--no-save", "--no-restore", "--quiet", "--slave", "-e", R_KERNEL], ".R"
    raise ValueError(f"no warm sessions for {language}")


# --- framing ---------------------------------------------------------------------------------------
def send_frame(sock, kind: bytes, payload: bytes) -> None:
    sock.sendall(HEADER.pack(kind, len(payload)) + payload)


def send_json(sock, obj) -> None:
    send_frame(sock, b"J", json.dumps(obj).encode())


def recv_exact(sock, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        part = sock.recv(size - len(data))
        if not part:
            raise EOFError("connection closed")
        data += part
    return bytes(data)


def recv_frame(sock) -> tuple[bytes, bytes]:
    kind, size = HEADER.unpack(recv_exact(sock, HEADER.size))
    return kind, recv_exact(sock, size)


# --- interpreters ----------------------------------------------------------------------------------
def oom_kills() -> int:
    for path in ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"):
        try:
            with open(path) as handle:
                for line in handle:
                    name, _, value = line.partition(" ")
                    if name == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return -1


class Kernel:
    """One live interpreter."""

    def __init__(self, session: str, language: str, python: str):
        self.session, self.language, self.python = session, language, python
        self.executions = 0
        self.last_used = time.monotonic()
        self.lock = threading.Lock()
        argv, self.cell_ext = kernel_command(language, python)
        req_r, self.req_w = os.pipe()
        self.rep_r, rep_w = os.pipe()
        env = dict(os.environ, WB_IN=str(req_r), WB_OUT=str(rep_w))
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, pass_fds=(req_r, rep_w), env=env,
                                     cwd="/workspace", start_new_session=True)
        os.close(req_r)
        os.close(rep_w)
        for fd in (self.proc.stdout.fileno(), self.proc.stderr.fileno(), self.rep_r):
            os.set_blocking(fd, False)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self) -> None:
        self.signal_group(signal.SIGKILL)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for fd in (self.req_w, self.rep_r):
            try:
                os.close(fd)
            except OSError:
                pass
        for pipe in (self.proc.stdout, self.proc.stderr):
            try:
                pipe.close()
            except OSError:
                pass

    def submit(self, code: str, cell_id: str) -> None:
        if self.cell_ext is None:
            line = json.dumps({"code": code}) + "\n"
        else:
            path = f"/tmp/.wb-cell-{cell_id}{self.cell_ext}"
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(code)
            line = path + "\n"
        os.write(self.req_w, line.encode())


class Server:
    def __init__(self, path: str, idle: float, stop: threading.Event):
        self.path, self.idle, self.stop = path, idle, stop
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
            if not os.path.exists(self.path):  # the project (or its workspace) was removed: nobody will come
                self.stop.set()
                break
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
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
    def handle(self, conn: socket.socket) -> None:
        self.busy += 1
        try:
            kind, payload = recv_frame(conn)
            request = json.loads(payload)
            op = request.get("op")
            if op == "exec":
                self.execute(conn, request)
            elif op == "list":
                send_json(conn, {"sessions": self.listing()})
            elif op == "restart":
                send_json(conn, {"restarted": self.restart(request.get("session"), request.get("language"))})
            elif op == "ping":
                send_json(conn, {"pong": True, "pid": os.getpid()})
            else:
                send_json(conn, {"error": f"unknown op {op!r}"})
        except (EOFError, OSError, ValueError):
            pass
        finally:
            self.busy -= 1
            self.last_activity = time.monotonic()
            conn.close()

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
        return len(kernels)

    def kernel_for(self, session: str, language: str, python: str) -> tuple[Kernel, bool]:
        """(the kernel, whether it had to be (re)started after dying: state lost)."""
        with self.kernels_lock:
            kernel = self.kernels.get((session, language))
            lost = False
            if kernel is not None and not kernel.alive:
                kernel.stop()
                lost = True
                kernel = None
            if kernel is None:
                kernel = Kernel(session, language, python)
                self.kernels[(session, language)] = kernel
            return kernel, lost

    def execute(self, conn: socket.socket, request: dict) -> None:
        session, language = request["session"], request["language"]
        try:
            kernel, lost_before = self.kernel_for(session, language, request.get("python") or "python3")
        except (ValueError, OSError) as exc:
            send_json(conn, {"done": True, "error": str(exc), "exit_code": None})
            return
        with kernel.lock:
            outcome = self.run_cell(conn, kernel, request)
        outcome["state_lost"] = outcome.get("state_lost", False) or lost_before
        outcome["done"] = True
        kernel.executions += 1
        kernel.last_used = time.monotonic()
        try:
            send_json(conn, outcome)
        except OSError:
            pass

    def run_cell(self, conn: socket.socket, kernel: Kernel, request: dict) -> dict:
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
                        kind, payload = recv_frame(conn)
                        wants_stop = json.loads(payload).get("op") == "interrupt"
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
            send_frame(conn, kind, data)
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
def reap(stop: threading.Event, spare=lambda: set()) -> None:
    """Reap every exited child except those in `spare()` (subprocess reaps its own)."""
    while not stop.is_set():
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            info = None
        if info is None:
            time.sleep(0.2)
            continue
        if info.si_pid in spare():
            time.sleep(0.05)
            continue
        try:
            os.waitpid(info.si_pid, 0)
        except ChildProcessError:
            pass


def main(argv: list[str]) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    spare = set
    if len(argv) >= 2 and argv[0] == "--serve":
        idle = float(argv[argv.index("--idle") + 1]) if "--idle" in argv else 1800.0
        server = Server(argv[1], idle, stop)
        spare = server.kernel_pids
        threading.Thread(target=server.serve, daemon=True).start()
    threading.Thread(target=reap, args=(stop, spare), daemon=True).start()
    while not stop.wait(1.0):
        pass
    time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

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
variables, R its global environment. When a cell ends, every process it left running is killed (see
`Server.sweep`): only PID 1 (this runner) and the interpreters themselves outlive a cell, so a `setsid`,
double-forked or `start_new_session` process cannot write into a later cell's record.

Who may talk to the runner (it runs as the same uid as user code, so files cannot tell them apart):
  * the socket lives in a folder mounted only into this container (/run/workbench, a host folder private
    to Workbench), never in the workspace;
  * a session key: the host writes 32 random bytes to /run/workbench/key before the container starts; the
    runner reads and deletes the file before any user code runs, and keeps the key in memory only. Every
    frame either side sends carries a tag (HMAC-SHA256 under a key derived from the session key and a fresh
    nonce the host sends first, over the direction and sequence number too), so whoever does not hold the
    key cannot forge, alter, reorder or replay a frame, and relaying the runner's frames changes nothing;
  * this process makes itself non-dumpable first thing, so code of the same uid cannot ptrace it, read
    /proc/1/mem (the key) or take its listening socket out of /proc/1/fd or with pidfd_getfd;
  * the host also checks who listens (SO_PEERCRED against the engine's State.Pid), so under runc a socket
    bound by user code in its place is refused before the host sends a byte; and this runner hangs up on
    clients it can tell are inside its own PID namespace.
Under gVisor the last two checks see less (every socket of the container is the gofer's on the host, and
inside, every client looks like pid 1; /proc/1/fd stays listable), which is why the key carries the weight.
A separate uid for the runner would need CAP_SETUID in the container (all capabilities are dropped) or a
second user namespace mapping; the key does not.

Protocol, over that unix socket (never a network): the client sends <b"N"><4 bytes: 32><32-byte nonce>,
then both sides send frames of <1 byte kind><4 bytes big-endian length><payload><32-byte tag>.
Kinds: b"J" a JSON object, b"O" stdout bytes, b"E" stderr bytes. A client sends one JSON request:
  {"op": "exec", "session", "language", "code", "timeout", "python"}  -> O/E frames, then a J "done" frame
      {"done": true, "exit_code", "timed_out", "interrupted", "state_lost", "killed_by", "background_killed"}
      (while it runs the client may send {"op": "interrupt"}; closing the socket interrupts too)
  {"op": "list"}                                  -> {"sessions": [{name, language, state, executions, idle}]}
  {"op": "restart", "session", "language"|null}   -> {"restarted": N}
  {"op": "ping"}                                  -> {"pong": true}
Timeout or interrupt: SIGINT to the interpreter's process group first; when the cell has not stopped
after GRACE seconds the interpreter is killed and restarted, and the answer says `state_lost`.
Frames over MAX_REQUEST bytes, other kinds, a wrong tag, and JSON that is not an object end the connection.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
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
MAX_REQUEST = 64 << 20  # a request carries the cell's code
SWEEP_SECONDS = 3.0  # the longest the runner keeps killing what a cell left behind (a fork bomb forks on)
PR_SET_DUMPABLE, PR_GET_DUMPABLE = 4, 3
KEY_FILE = "key"  # beside the socket: the session key, read and removed by the runner before any code runs
KEY_SIZE = NONCE_SIZE = TAG_SIZE = 32
SEEN_NONCES = 65536  # how many connection nonces the runner remembers (a replayed request is refused)

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
  # Jobs the runner killed after the previous cell (its note counts them) are news of that cell, not this one.
  jobs >/dev/null 2>&1
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
class ProtocolError(ValueError):
    """The other end broke the framing (a frame over the limit, or cut short)."""


def send_frame(sock, kind: bytes, payload: bytes) -> None:
    sock.sendall(HEADER.pack(kind, len(payload)) + payload)


def send_json(sock, obj) -> None:
    send_frame(sock, b"J", json.dumps(obj).encode())


def recv_exact(sock, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        part = sock.recv(size - len(data))
        if not part:
            if data:
                raise ProtocolError(f"the connection closed inside a frame ({len(data)} of {size} bytes)")
            raise EOFError("connection closed")
        data += part
    return bytes(data)


def recv_frame(sock, limit: int = MAX_REQUEST) -> tuple[bytes, bytes]:
    kind, size = HEADER.unpack(recv_exact(sock, HEADER.size))
    if size > limit:
        raise ProtocolError(f"a frame of {size} bytes is over the limit of {limit}")
    try:
        return kind, recv_exact(sock, size)
    except EOFError:
        raise ProtocolError(f"the connection closed inside a frame (0 of {size} bytes)") from None


def recv_object(sock, limit: int = MAX_REQUEST) -> dict:
    """One untagged J frame holding a JSON object; anything else is a ProtocolError."""
    return json_object(*recv_frame(sock, limit))


class Channel:
    """One connection's frames, each tagged with HMAC-SHA256 under a key of this connection only.

    The connection key is HMAC(session key, nonce) for the nonce the client sent first; each tag covers
    the direction, the frame's sequence number in that direction, its kind and its payload."""

    def __init__(self, sock, key: bytes, nonce: bytes, client: bool):
        self.sock = sock
        self.key = hmac.digest(key, b"workbench-runner-channel" + nonce, "sha256")
        self.out_label, self.in_label = (b"client", b"server") if client else (b"server", b"client")
        self.sent = self.received = 0
        self.lock = threading.Lock()  # a cell's frames and an interrupt may be sent from two threads

    @classmethod
    def open(cls, sock, key: bytes) -> Channel:
        """The client's side: send a fresh nonce, and use the connection key it makes."""
        nonce = secrets.token_bytes(NONCE_SIZE)
        sock.sendall(HEADER.pack(b"N", NONCE_SIZE) + nonce)
        return cls(sock, key, nonce, client=True)

    def _tag(self, label: bytes, number: int, kind: bytes, payload: bytes) -> bytes:
        return hmac.digest(self.key, label + number.to_bytes(8, "big") + kind + payload, "sha256")

    def fileno(self) -> int:
        return self.sock.fileno()

    def settimeout(self, timeout) -> None:
        self.sock.settimeout(timeout)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, kind: bytes, payload: bytes) -> None:
        with self.lock:
            tag = self._tag(self.out_label, self.sent, kind, payload)
            self.sent += 1
            self.sock.sendall(HEADER.pack(kind, len(payload)) + payload + tag)

    def send_json(self, obj) -> None:
        self.send(b"J", json.dumps(obj).encode())

    def recv(self, limit: int = MAX_REQUEST) -> tuple[bytes, bytes]:
        kind, size = HEADER.unpack(recv_exact(self.sock, HEADER.size))
        if size > limit:
            raise ProtocolError(f"a frame of {size} bytes is over the limit of {limit}")
        try:
            data = recv_exact(self.sock, size + TAG_SIZE)
        except EOFError:
            raise ProtocolError(f"the connection closed inside a frame (0 of {size} bytes)") from None
        payload, tag = data[:size], data[size:]
        if not hmac.compare_digest(tag, self._tag(self.in_label, self.received, kind, payload)):
            raise Forged("a frame that does not carry this session's key (not from the other end we keyed)")
        self.received += 1
        return kind, payload

    def recv_object(self, limit: int = MAX_REQUEST) -> dict:
        kind, payload = self.recv(limit)
        return json_object(kind, payload)


class Forged(ProtocolError):
    """A frame whose tag is wrong: it was not sent by the holder of the session key."""


def json_object(kind: bytes, payload: bytes) -> dict:
    if kind != b"J":
        raise ProtocolError(f"expected a JSON frame, got kind {kind!r}")
    try:
        obj = json.loads(payload)
    except ValueError:
        raise ProtocolError("a JSON frame that is not JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"a JSON frame that is not an object ({type(obj).__name__})")
    return obj


def take_key(folder: str) -> bytes | None:
    """Read the session key the host left beside the socket and remove the file (before any code runs)."""
    path = os.path.join(folder, KEY_FILE)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        key = os.read(fd, KEY_SIZE + 1)
    finally:
        os.close(fd)
    try:
        os.unlink(path)
    except OSError:
        return None  # a key left readable for code to find is no key
    return key if len(key) == KEY_SIZE else None


def peer_pid(sock) -> int:
    """The pid of the process at the other end, as this process's PID namespace sees it (0: outside it)."""
    pid, _uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                          struct.calcsize("3i")))
    return pid


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
        self.running = False  # a cell is in progress: a sweep spares this interpreter's process tree
        self.closed = False
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
        self.closed = True
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
            # /tmp is shared with user code: a name it cannot guess, created here (a planted symlink or
            # FIFO under a guessable name would redirect or block the runner).
            path = f"/tmp/.wb-cell-{cell_id}-{secrets.token_hex(8)}{self.cell_ext}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with open(fd, "w", encoding="utf-8") as handle:
                handle.write(code)
            line = path + "\n"
        os.write(self.req_w, line.encode())


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
                spare = self.spared(table)
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

    def spared(self, table: dict[int, tuple[int, int, str]]) -> set[int]:
        spare = {1, os.getpid()}
        roots = []
        for kernel in self.kernels.values():
            if kernel.alive:
                spare.add(kernel.proc.pid)
                if kernel.running:
                    roots.append(kernel.proc.pid)
        if roots:
            children: dict[int, list[int]] = {}
            for pid, (ppid, pgrp, _state) in table.items():
                children.setdefault(ppid, []).append(pid)
                if pgrp in roots:
                    spare.add(pid)
            todo, seen = list(roots), set(roots)
            while todo:
                for child in children.get(todo.pop(), ()):
                    if child not in seen:
                        seen.add(child)
                        spare.add(child)
                        todo.append(child)
        return spare

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

    def execute(self, conn: Channel, request: dict) -> None:
        session, language = request["session"], request["language"]
        try:
            kernel, lost_before = self.kernel_for(session, language, request.get("python") or "python3")
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
def process_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, process group, state letter) for every process this PID namespace shows."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                fields = handle.read().rpartition(b")")[2].split()
            table[int(name)] = (int(fields[1]), int(fields[2]), fields[0].decode())
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
    return table


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
    threading.Thread(target=reap, args=(stop, spare), daemon=True).start()
    while not stop.wait(1.0):
        pass
    time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

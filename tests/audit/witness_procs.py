"""Witnesses in their own processes on loopback, for the witness tests.

`WitnessProcess` runs the real ``workbench witness serve``. Run as a script, this module is a *lying*
witness: an HTTP server (http.server) that forwards add-checkpoint to a real witness and flips one bit of
the signature in each cosignature it returns, the way a broken or malicious witness would answer.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]
WORKBENCH = REPO / ".venv" / "bin" / "workbench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["WORKBENCH_DATA_DIR"] = str(data_dir)
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"  # the witness key: the 0600 file
    return env


def _read_banner(proc: subprocess.Popen[str], what: str, timeout: float = 20) -> dict[str, str]:
    """The 'listening on URL' and 'vkey VKEY' lines a server prints once it listens."""
    found: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline and not ("url" in found and "vkey" in found):
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                err = proc.stderr.read() if proc.stderr else ""
                raise RuntimeError(f"{what} exited {proc.returncode}: {err.strip()}")
            time.sleep(0.05)
            continue
        if " listening on " in line:
            found["url"] = line.rsplit(" ", 1)[1].strip()
        elif line.startswith("vkey "):
            found["vkey"] = line.split(" ", 1)[1].strip()
    if "url" not in found:
        proc.kill()
        raise RuntimeError(f"{what} did not start within {timeout} s")
    return found


class WitnessProcess:
    """`workbench witness serve` in a subprocess, with its own data folder (key and state)."""

    def __init__(self, data_dir: Path, port: int = 0, allow: tuple[str, ...] = ()):
        self.data_dir = data_dir
        self.port = port
        self.allow = list(allow)
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.vkey = ""

    def start(self) -> WitnessProcess:
        args = [str(WORKBENCH), "witness", "serve", "--listen", f"127.0.0.1:{self.port}"]
        for vkey in self.allow:
            args += ["--allow", vkey]
        # stderr goes to a file: a pipe nobody reads could fill and stall the server
        self.err = (self.data_dir.parent / f"{self.data_dir.name}.stderr").open("a")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.err, text=True,
                                     env=_env(self.data_dir), start_new_session=True)
        banner = _read_banner(self.proc, "the witness")
        self.url, self.vkey = banner["url"], banner["vkey"]
        self.port = urlsplit(self.url).port or self.port
        return self

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Another `workbench witness ...` command on this witness's folder (allow, logs, key)."""
        return subprocess.run([str(WORKBENCH), "witness", *args], capture_output=True, text=True,
                              env=_env(self.data_dir), timeout=60)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None


class LyingWitness:
    """This module run as a script: forwards to `upstream` and corrupts the cosignatures."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> LyingWitness:
        self.proc = subprocess.Popen([sys.executable, __file__, self.upstream], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.url = line.rsplit(" ", 1)[1].strip()
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            if self.proc.stdout:
                self.proc.stdout.close()


class SilentServer:
    """A socket that accepts connections and never answers (a witness that hangs)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self) -> None:
        self.sock.close()


class DripServer:
    """A witness that answers a byte at a time, forever (each read succeeds, the answer never ends)."""

    def __init__(self) -> None:
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import threading

        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
        try:
            conn.sendall(head)
            while not self.stopped.is_set():
                conn.sendall(b"x")
                time.sleep(0.3)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()


def _lie(upstream: str) -> None:
    import base64
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    target = urlsplit(upstream)

    class Liar(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
            conn.request("POST", self.path, body=body)
            answer = conn.getresponse()
            data, status, ctype = answer.read(), answer.status, answer.getheader("Content-Type", "text/plain")
            conn.close()
            if status == 200:
                lines = []
                for line in data.decode().split("\n")[:-1]:
                    name, sig = line.rsplit(" ", 1)
                    raw = bytearray(base64.b64decode(sig))
                    raw[-1] ^= 0x01  # one bit of the Ed25519 signature
                    lines.append(f"{name} {base64.b64encode(bytes(raw)).decode()}\n")
                data = "".join(lines).encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Liar)
    print(f"lying witness listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    _lie(sys.argv[1])

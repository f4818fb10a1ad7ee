"""Issue 19's HTTP attacks, each from code in a real container against the real policy proxy and a real
loopback origin that logs what reaches it: request smuggling (a second request after the first's head or
body, Transfer-Encoding tricks), a CONNECT to an allowed host:port used as a tunnel, an allowed name whose
DNS answer is the host's loopback or its own (gateway) address, the proxy socket itself as a way to read the
secret (the origin echoing the injected header), and the container surviving one-off executions in a
session (exit 0, the same container: the relay lives in PID 1). After each attack the next execution works.

The complement of tests/security/test_http_egress.py (allowed and refused requests, the secret in no process
or file, the leak scan, warm sessions, no policy means network none)."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.sandbox.conftest import Recorder, make_settings, run, still_works
from workbench.network.rules import http_rule

pytestmark = pytest.mark.engine

SECRET = "wb-" + "atk-s3cr3t-77d0e1"
CREDENTIAL = "atk-token"


class EchoOrigin:
    """Answers every request with what it got, the Authorization header included; logs each request."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bytes]] = []
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                origin.seen.append((self.command, self.path, body))
                out = f"origin {self.command} {self.path} auth={self.headers.get('Authorization')}\n".encode()
                self.send_response(200)
                self.send_header("X-Auth", self.headers.get("Authorization") or "")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("0.0.0.0", 0), Handler)  # every address: a DNS trick would reach it
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paths(self) -> list[str]:
        return [path for _method, path, _body in self.seen]


@pytest.fixture(scope="module")
def origin():
    found = EchoOrigin()
    yield found
    found.server.shutdown()
    found.server.server_close()


@pytest.fixture(scope="module")
def attack_recorder():
    return Recorder()


@pytest.fixture(scope="module")
def box(engine_ready, origin, tmp_path_factory, attack_recorder):
    from workbench.network import http_access
    from workbench.project import Project
    from workbench.sandbox import Sandbox

    project = Project.init(tmp_path_factory.mktemp("httpatk") / "proj")
    rules = [http_rule(f"http://127.0.0.1:{origin.port}/ok/", credential=CREDENTIAL,
                       inject="Authorization: Bearer {secret}"),
             http_rule(f"http://api.example.com:{origin.port}/ok/")]  # a name: its DNS answer is checked
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(http_access, "policy_rules", lambda root: rules)
        patch.setattr(http_access, "vault_secret", {CREDENTIAL: SECRET}.__getitem__)
        sandbox = Sandbox.open(project, bus=attack_recorder.bus, settings=make_settings(timeout=60),
                               session_id="httpatk", actor="user:test")
    yield sandbox
    sandbox.close()


# Code that speaks raw bytes to the relay (127.0.0.1:3128) and prints everything that comes back, as hex
# so no byte is lost or read as the secret by accident.
RAW = """
import socket, sys
def raw(data, port=3128, host='127.0.0.1'):
    s = socket.create_connection((host, port), timeout=20)
    s.sendall(data)
    out = b''
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except OSError:
        pass
    s.close()
    return out
"""


def raw(box, payload: bytes) -> bytes:
    result, _ = run(box, "python", RAW + f"print(raw({payload!r}).hex())")
    assert result.exit_code == 0, result.stderr.text()
    return bytes.fromhex(result.stdout.text().strip())


def head(port: int, path: str, method: str = "GET", extra: str = "") -> bytes:
    return f"{method} http://127.0.0.1:{port}{path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}\r\n".encode()


def statuses(answer: bytes) -> list[bytes]:
    return [line.split(b" ")[1] for line in answer.split(b"\r\n") if line.startswith(b"HTTP/1.")]


def test_one_off_executions_keep_their_container_and_exit_zero(box, origin):
    ids = []
    for n in range(3):
        result, _ = run(box, "python", f"import urllib.request; print(urllib.request.urlopen("
                                       f"'http://127.0.0.1:{origin.port}/ok/{n}').status)")
        assert (result.exit_code, result.stdout.text()) == (0, "200\n"), result.stderr.text()
        ids.append(box.container)
    assert len(set(ids)) == 1  # the relay did not die with the execution's processes, nor the container


@pytest.mark.parametrize("smuggled", [
    # a second request pipelined after the first's head
    lambda p: head(p, "/ok/a") + head(p, "/admin"),
    # a second request hidden in what Content-Length says is the body, and one after it
    lambda p: head(p, "/ok/a", extra="Content-Length: 5\r\n") + b"hello" + head(p, "/admin"),
    # Transfer-Encoding with and without Content-Length, spelled oddly, folded, or with a bare LF
    lambda p: head(p, "/ok/a", extra="Content-Length: 4\r\nTransfer-Encoding: chunked\r\n")
    + b"0\r\n\r\n" + head(p, "/admin"),
    lambda p: head(p, "/ok/a", extra="Transfer-Encoding : chunked\r\n") + b"0\r\n\r\n" + head(p, "/admin"),
    lambda p: head(p, "/ok/a", extra="Transfer-Encoding: xchunked\r\n") + head(p, "/admin"),
    lambda p: head(p, "/ok/a", extra="X-A: b\r\n Transfer-Encoding: chunked\r\n") + head(p, "/admin"),
    lambda p: head(p, "/ok/a", extra="X-A: b\nTransfer-Encoding: chunked\r\n") + head(p, "/admin"),
    lambda p: head(p, "/ok/a", extra="Content-Length: 1\r\nContent-Length: 40\r\n") + head(p, "/admin"),
])
def test_request_smuggling_never_reaches_the_origin(box, origin, smuggled):
    origin.seen.clear()
    answer = raw(box, smuggled(origin.port))
    assert "/admin" not in origin.paths(), origin.seen
    assert len(statuses(answer)) == 1, answer  # one answer per connection, whatever was sent
    assert all(path == "/ok/a" for path in origin.paths())
    still_works(box)


def test_a_connect_to_an_allowed_place_is_no_tunnel(box, origin):
    origin.seen.clear()
    tunnel = f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1\r\nHost: 127.0.0.1:{origin.port}\r\n\r\n".encode()
    answer = raw(box, tunnel + b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n")
    assert statuses(answer) == [b"403"] and b"CONNECT" in answer
    assert origin.seen == []
    still_works(box)


@pytest.mark.parametrize("where", ["loopback", "own"])
def test_an_allowed_name_resolving_to_the_host_is_refused(box, origin, attack_recorder, monkeypatch, where):
    from workbench.network import httpproxy

    if where == "loopback":
        address = "127.0.0.1"
    else:  # the host's own address, where the engine's gateway and host services listen
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.connect(("192.0.2.254", 9))
        address = probe.getsockname()[0]
        probe.close()
    monkeypatch.setattr(httpproxy.socket, "getaddrinfo",  # the host's resolver, as a hostile DNS answers it
                        lambda host, port, **kw: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))])
    origin.seen.clear()
    answer = raw(box, f"GET http://api.example.com:{origin.port}/ok/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
                 .encode())
    assert statuses(answer) == [b"403"] and address.encode() in answer, answer
    assert origin.seen == []
    refused = [e.payload for e in attack_recorder.events if e.kind == "net.request"][-1]
    assert refused["status"] == 403 and address in refused["refused"]
    monkeypatch.undo()
    still_works(box)


def test_the_proxy_socket_never_hands_back_the_secret(box, origin, attack_recorder):
    """Straight at the mounted socket, not the relay: garbage, a CONNECT, a refused request, and an allowed
    one to an origin that echoes the injected header in a header and in the body."""
    code = RAW.replace("socket.create_connection((host, port), timeout=20)",
                       "socket.socket(socket.AF_UNIX); s.settimeout(20); s.connect('/mnt/workbench-egress/proxy.sock')")
    asks = [b"\x16\x03\x01 not http\r\n\r\n", f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1\r\n\r\n".encode(),
            head(origin.port, "/nope"), head(origin.port, "/ok/echo", extra="Authorization: x\r\n")]
    code += f"print(b'\\n=====\\n'.join(raw(ask) for ask in {asks!r}).hex())\n"
    result, _ = run(box, "python", code)
    assert result.exit_code == 0, result.stderr.text()
    seen = bytes.fromhex(result.stdout.text().strip())
    assert SECRET.encode() not in seen  # what code could read, in any of the answers
    assert b"auth=Bearer " + b"*" * len(SECRET) in seen and b"X-Auth: Bearer ****" in seen
    assert origin.paths()[-1:] == ["/ok/echo"]  # the allowed one did reach it, with the secret injected
    events = [e for e in attack_recorder.events if e.kind == "net.request" and
              e.payload.get("execution_id") == result.execution_id]
    assert len(events) >= 3 and all(SECRET not in str(dict(e.payload)) for e in events)
    still_works(box)


def test_code_that_prints_an_echoed_answer_keeps_no_secret(box, origin, attack_recorder):
    result, _ = run(box, "python", f"import urllib.request; print(urllib.request.urlopen("
                                   f"'http://127.0.0.1:{origin.port}/ok/me').read().decode())")
    assert result.exit_code == 0 and result.stdout.text().startswith("origin GET /ok/me auth=Bearer ***")
    kept = [e for e in attack_recorder.events if e.payload.get("execution_id") == result.execution_id]
    assert kept and all(SECRET not in str(dict(e.payload)) for e in kept)


def test_asked_destinations_wait_for_a_yes_from_the_container_too(box, origin):
    from workbench.network.approval import gate_session

    asked = []
    gate_session(box, lambda question: asked.append(question["destination"]) or False)
    try:
        origin.seen.clear()
        answer = raw(box, head(origin.port, "/ok/asked"))
        assert statuses(answer) == [b"403"] and b"not approved in this session" in answer
        assert asked == [f"127.0.0.1:{origin.port}"] and origin.seen == []
    finally:
        box.http.proxy.gate = None
    still_works(box)


def test_curl_and_r_reach_an_allowed_api_unchanged(box, origin):
    """The proxy variables are all a client needs: curl and R's download.file, as the image has them."""
    result, _ = run(box, "shell", "command -v curl || echo no-curl; command -v Rscript || echo no-r")
    tools = result.stdout.text()
    origin.seen.clear()
    checked = 0
    if "no-curl" not in tools:
        result, _ = run(box, "shell", f"curl -sS http://127.0.0.1:{origin.port}/ok/curl")
        assert result.stdout.text().startswith("origin GET /ok/curl auth=Bearer ***"), result.stderr.text()
        checked += 1
    if "no-r" not in tools:
        result, _ = run(box, "r", f"f <- tempfile(); download.file('http://127.0.0.1:{origin.port}/ok/r', f, "
                                  "quiet = TRUE); cat(readLines(f), sep = '\\n')")
        assert result.stdout.text().startswith("origin GET /ok/r auth=Bearer ***"), result.stderr.text()
        checked += 1
    assert checked, f"neither curl nor R in the image: {tools}"
    assert SECRET not in result.stdout.text()

"""An origin that echoes the injected credential back (a debug endpoint, an error page quoting the request)
must not hand the secret to code: the proxy blanks it out of the answer, keeping lengths, whatever the
chunking; and it asks for an uncompressed answer so an echo cannot hide in gzip."""

from __future__ import annotations

import random
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from workbench.network.httpproxy import Blanker, PolicyProxy
from workbench.network.rules import http_rule

SECRET = "tok-" + "e4c09b1d5a"


@pytest.fixture
def echo():
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append(dict(self.headers))
            # the secret split over two writes, and once in a header of the answer
            self.send_response(200)
            self.send_header("X-Echo", self.headers.get("Authorization", ""))
            text = f"you sent {self.headers.get('Authorization')}\n".encode()
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text[:14])
            self.wfile.flush()
            self.wfile.write(text[14:])

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


def test_an_echoed_credential_never_reaches_code(echo):
    port, seen = echo
    rule = http_rule(f"http://127.0.0.1:{port}/", credential="api", inject="Authorization: Bearer {secret}")
    records = []
    proxy = PolicyProxy([rule], {"api": SECRET}.__getitem__, records.append)
    ours, theirs = socket.socketpair()
    proxy.handle(theirs)
    ours.sendall(f"GET http://127.0.0.1:{port}/debug HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n".encode())
    ours.settimeout(10)
    answer = b""
    while chunk := ours.recv(65536):
        answer += chunk
    proxy.drain()
    assert seen[0]["Authorization"] == f"Bearer {SECRET}"  # injected on the way out ...
    assert "Accept-Encoding" not in seen[0]  # ... with the answer asked for uncompressed
    assert SECRET.encode() not in answer  # ... and never handed back
    assert b"you sent Bearer " + b"*" * len(SECRET) in answer and b"X-Echo: Bearer ****" in answer
    head, _, body = answer.partition(b"\r\n\r\n")
    assert int(dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])[b"Content-Length"]) == len(body)
    assert records[0].bytes_down == len(answer)


def test_blanking_holds_across_any_chunking():
    rng = random.Random(7)
    value = SECRET.encode()
    for _ in range(500):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(40))) + value + value[:rng.randrange(len(value))]
        blanker, out, at = Blanker(value), b"", 0
        while at < len(data):
            step = rng.randint(1, 9)
            out += blanker.feed(data[at:at + step])
            at += step
        out += blanker.flush()
        assert out == data.replace(value, b"*" * len(value))


@pytest.mark.parametrize("path", ["/ok/..;/admin", "/ok/.;x/../admin", "/ok/%2e%2e;/admin", "/ok/%252e%252e/admin"])
def test_paths_other_servers_read_as_outside_the_prefix_are_refused(echo, path):
    port, seen = echo
    proxy = PolicyProxy([http_rule(f"http://127.0.0.1:{port}/ok/")], lambda name: "", lambda record: None)
    ours, theirs = socket.socketpair()
    proxy.handle(theirs)
    ours.sendall(f"GET http://127.0.0.1:{port}{path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    ours.settimeout(10)
    answer = b""
    while chunk := ours.recv(65536):
        answer += chunk
    proxy.drain()
    assert answer.startswith(b"HTTP/1.1 403"), answer
    assert seen == []

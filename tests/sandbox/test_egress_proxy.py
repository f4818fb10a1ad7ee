"""The install step's egress proxy on its own (no engine): what it lets through, what it refuses, and that
every request is recorded. Clients speak to its Unix socket exactly as the relay in the container does."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

from workbench.sandbox.egress import Destination, EgressProxy, destination_of, parse_allowed


class Origin:
    """An HTTP server on loopback that records what reached it (path and Host header), and a raw TCP count."""

    def __init__(self):
        self.seen: list[tuple[str, str, str]] = []
        seen = self.seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(("GET", self.path, self.headers.get("Host", "")))
                body = b"hello from the origin\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                seen.append(("POST", self.path, self.headers.get("Host", "")))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.destination = Destination("127.0.0.1", self.port)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def origins():
    allowed, other = Origin(), Origin()
    yield allowed, other
    allowed.close()
    other.close()


@pytest.fixture
def proxy(origins, tmp_path):
    allowed, _ = origins
    with EgressProxy([allowed.destination], use_host_proxy=False) as running:
        running.listen_unix(str(tmp_path / "proxy.sock"))
        running.path = str(tmp_path / "proxy.sock")
        yield running


def ask(path: str, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_a_get_to_an_allowed_origin_goes_through_with_its_host_rewritten(proxy, origins):
    allowed, _ = origins
    reply = ask(proxy.path, f"GET http://127.0.0.1:{allowed.port}/simple/x/?q=1 HTTP/1.1\r\n"
                            "Host: evil.example\r\nProxy-Authorization: Basic c2VjcmV0\r\n"
                            "Connection: keep-alive\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.0 200") and reply.endswith(b"hello from the origin\n")
    # The request went where its URL says, with a Host header that matches it.
    assert allowed.seen == [("GET", "/simple/x/?q=1", f"127.0.0.1:{allowed.port}")]
    (attempt,) = proxy.attempts
    assert attempt.allowed and attempt.method == "GET" and attempt.destination == allowed.destination


def test_a_tunnel_to_an_allowed_origin_carries_bytes_both_ways(proxy, origins):
    allowed, _ = origins
    reply = ask(proxy.path, f"CONNECT 127.0.0.1:{allowed.port} HTTP/1.1\r\nHost: x\r\n\r\n"
                            "GET /inside HTTP/1.0\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.0 200")
    assert allowed.seen == [("GET", "/inside", "")]


@pytest.mark.parametrize("request_for", [
    lambda other: f"GET http://127.0.0.1:{other.port}/leak HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    lambda other: f"CONNECT 127.0.0.1:{other.port} HTTP/1.1\r\n\r\n",
    lambda other: f"CONNECT localhost:{other.port} HTTP/1.1\r\n\r\n",  # another name for the same place
    lambda other: "CONNECT 1.1.1.1:443 HTTP/1.1\r\n\r\n",
], ids=["get-other-port", "connect-other-port", "connect-other-name", "connect-internet"])
def test_anything_else_is_refused_recorded_and_never_reached(proxy, origins, request_for):
    allowed, other = origins
    reply = ask(proxy.path, request_for(other).encode())
    assert reply.startswith(b"HTTP/1.1 403 Forbidden") and b"is not an install source" in reply
    assert other.seen == [] and allowed.seen == []
    (attempt,) = proxy.attempts
    assert not attempt.allowed


def test_writes_to_an_allowed_origin_are_refused(proxy, origins):
    allowed, _ = origins
    reply = ask(proxy.path, f"POST http://127.0.0.1:{allowed.port}/upload HTTP/1.1\r\n"
                            "Content-Length: 6\r\n\r\nsecret".encode())
    assert reply.startswith(b"HTTP/1.1 405") and allowed.seen == []
    assert [a.allowed for a in proxy.attempts] == [False]


@pytest.mark.parametrize("garbage, status", [
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n", b"400"),  # TLS, no proxy
    (b"GET /relative HTTP/1.1\r\n\r\n", b"400"),
    (b"GET https://127.0.0.1/ HTTP/1.1\r\n\r\n", b"400"),  # https goes by CONNECT only
    (b"GET http://user:pw@127.0.0.1/ HTTP/1.1\r\n\r\n", b"400"),
    (b"CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n", b"400"),
    (b"GET http://127.0.0.1/ HTTP/2.0\r\n\r\n", b"505"),
    (b"GET http://127.0.0.1/ HTTP/1.1\r\nX: " + b"a" * 40_000 + b"\r\n\r\n", b"431"),
], ids=["tls-without-connect", "relative", "https-by-get", "credentials", "no-port", "http2", "huge-head"])
def test_malformed_requests_get_an_error_and_the_proxy_keeps_serving(proxy, origins, garbage, status):
    allowed, _ = origins
    reply = ask(proxy.path, garbage)
    assert reply.split(b" ")[1] == status
    assert ask(proxy.path, f"GET http://127.0.0.1:{allowed.port}/ok HTTP/1.1\r\n\r\n".encode()).endswith(
        b"hello from the origin\n")


def test_an_allowed_origin_that_is_down_gets_502_and_is_recorded(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    with EgressProxy([Destination("127.0.0.1", port)], use_host_proxy=False) as proxy:
        proxy.listen_unix(str(tmp_path / "p.sock"))
        reply = ask(str(tmp_path / "p.sock"), f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 502")
    (attempt,) = proxy.attempts
    assert attempt.allowed and "could not connect" in attempt.detail


def test_the_hosts_own_proxy_is_used_when_it_has_one(origins, tmp_path, monkeypatch):
    """Chained: our proxy -> the host's proxy (here another EgressProxy on TCP, with credentials) -> origin."""
    allowed, _ = origins
    with EgressProxy([allowed.destination], use_host_proxy=False) as upstream:
        port = upstream.listen_tcp()
        monkeypatch.setenv("http_proxy", f"http://me:p%40ss@127.0.0.1:{port}")
        monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{port}")
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        with EgressProxy([allowed.destination]) as proxy:
            proxy.listen_unix(str(tmp_path / "p.sock"))
            plain = ask(str(tmp_path / "p.sock"),
                        f"GET http://127.0.0.1:{allowed.port}/a HTTP/1.1\r\n\r\n".encode())
            tunnel = ask(str(tmp_path / "p.sock"), f"CONNECT 127.0.0.1:{allowed.port} HTTP/1.1\r\n\r\n"
                                                   "GET /b HTTP/1.0\r\n\r\n".encode())
    assert plain.endswith(b"hello from the origin\n") and b"HTTP/1.0 200" in tunnel
    assert [p for _, p, _ in allowed.seen] == ["/a", "/b"]
    assert [a.method for a in upstream.attempts] == ["GET", "CONNECT"]  # both went through the host's proxy


def test_close_ends_open_tunnels(origins, tmp_path):
    allowed, _ = origins
    proxy = EgressProxy([allowed.destination], use_host_proxy=False)
    proxy.listen_unix(str(tmp_path / "p.sock"))
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(5)
    sock.connect(str(tmp_path / "p.sock"))
    sock.sendall(f"CONNECT 127.0.0.1:{allowed.port} HTTP/1.1\r\n\r\n".encode())
    assert sock.recv(100).startswith(b"HTTP/1.1 200")
    proxy.close()
    assert sock.recv(100) == b""  # the tunnel was shut, not left behind
    sock.close()


@pytest.mark.parametrize("url, expected", [
    ("https://pypi.org/simple", Destination("pypi.org", 443)), ("http://m.lan/debian", Destination("m.lan", 80)),
    ("http://[::1]:8080/x", Destination("::1", 8080)), ("file:///srv", None), ("http://h:bad/", None),
])
def test_destinations_of_urls(url, expected):
    assert destination_of(url) == expected


@pytest.mark.parametrize("entry, expected", [
    ("files.lan", ["files.lan:443", "files.lan:80"]), ("files.lan:8080", ["files.lan:8080"]),
    ("[fd00::5]:3141", ["[fd00::5]:3141"]), ("https://x.lan/simple", ["x.lan:443"]), ("x:0", []), ("x:y", []),
])
def test_allow_hosts_entries(entry, expected):
    assert [str(d) for d in parse_allowed(entry)] == expected


def test_pipelined_requests_after_the_first_are_not_passed_on(proxy, origins):
    allowed, other = origins
    first = f"GET http://127.0.0.1:{allowed.port}/one HTTP/1.1\r\n\r\n"
    smuggled = (f"GET http://127.0.0.1:{other.port}/two HTTP/1.1\r\nHost: 127.0.0.1:{other.port}\r\n\r\n"
                f"POST /three HTTP/1.1\r\nContent-Length: 6\r\n\r\nsecret")
    reply = ask(proxy.path, (first + smuggled).encode())
    assert reply.count(b"HTTP/1.0 200") == 1 and reply.endswith(b"hello from the origin\n")
    assert allowed.seen == [("GET", "/one", f"127.0.0.1:{allowed.port}")] and other.seen == []


def test_a_get_with_a_body_is_refused(proxy, origins):
    allowed, _ = origins
    reply = ask(proxy.path, f"GET http://127.0.0.1:{allowed.port}/x HTTP/1.1\r\nContent-Length: 6\r\n\r\nsecret"
                .encode())
    assert reply.startswith(b"HTTP/1.1 400") and allowed.seen == []


def test_garbage_urls_and_vanishing_clients_never_raise_in_the_proxy(proxy, origins, capsys):
    import threading as th

    allowed, _ = origins
    errors = []
    previous = th.excepthook
    th.excepthook = lambda args: errors.append(args.exc_value)
    try:
        assert ask(proxy.path, b"GET http://[::1/x HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400")
        for request in (f"CONNECT 127.0.0.1:{allowed.port} HTTP/1.1\r\n\r\n",
                        f"GET http://127.0.0.1:{allowed.port}/ HTTP/1.1\r\n\r\n"):
            with socket.socket(socket.AF_UNIX) as sock:  # asks, then hangs up at once
                sock.connect(proxy.path)
                sock.sendall(request.encode())
        assert ask(proxy.path, f"GET http://127.0.0.1:{allowed.port}/ok HTTP/1.1\r\n\r\n".encode()).endswith(
            b"hello from the origin\n")
        import time

        time.sleep(0.3)
    finally:
        th.excepthook = previous
    assert errors == []

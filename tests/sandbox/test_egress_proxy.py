"""The install step's egress proxy on its own (no engine): what it lets through, what it refuses, and that
every request is recorded. Clients speak to its Unix socket exactly as the relay in the container does.

The origins are plain HTTP servers on loopback. One of them is allowed as a TLS source (`tls_source`): a tunnel
carries bytes whatever they are, so a plain server behind it shows what went through."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

from workbench.sandbox.egress import Destination, EgressProxy, destination_of, parse_allowed


class Recording:
    """A file that keeps every byte read through it (the origin's view of what arrived)."""

    def __init__(self, file, sink: bytearray):
        self.file, self.sink = file, sink

    def readline(self, *args):
        data = self.file.readline(*args)
        self.sink += data
        return data

    def read(self, *args):
        data = self.file.read(*args)
        self.sink += data
        return data

    def __getattr__(self, name):
        return getattr(self.file, name)


class Origin:
    """An HTTP server on loopback that records what reached it: each request (method, path, Host header), the
    bytes its parser read, and how many connections it accepted. Lenient as most servers are: it ends lines at
    a bare LF and keeps an HTTP/1.1 connection open, so a request smuggled past the proxy shows up in `seen`."""

    def __init__(self, tls: bool = False):
        self.seen: list[tuple[str, str, str]] = []
        self.received = bytearray()
        self.connections = 0
        seen, origin = self.seen, self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                origin.connections += 1
                self.rfile = Recording(self.rfile, origin.received)

            def do_GET(self):
                seen.append(("GET", self.path, self.headers.get("Host", "")))
                body = b"hello from the origin\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_HEAD(self):
                seen.append(("HEAD", self.path, self.headers.get("Host", "")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self):
                seen.append(("POST", self.path, self.headers.get("Host", "")))
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.destination = Destination("127.0.0.1", self.port, tls=tls)
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
def tls_source():
    origin = Origin(tls=True)
    yield origin
    origin.close()


@pytest.fixture
def proxy(origins, tls_source, tmp_path):
    allowed, _ = origins
    with EgressProxy([allowed.destination, tls_source.destination], use_host_proxy=False) as running:
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
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"hello from the origin\n")
    # The request went where its URL says, with a Host header that matches it.
    assert allowed.seen == [("GET", "/simple/x/?q=1", f"127.0.0.1:{allowed.port}")]
    (attempt,) = proxy.attempts
    assert attempt.allowed and attempt.method == "GET" and attempt.destination == allowed.destination


def test_a_tunnel_to_an_allowed_tls_source_carries_bytes_both_ways(proxy, tls_source):
    reply = ask(proxy.path, f"CONNECT 127.0.0.1:{tls_source.port} HTTP/1.1\r\nHost: x\r\n\r\n"
                            "GET /inside HTTP/1.0\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200")
    assert tls_source.seen == [("GET", "/inside", "")]
    (attempt,) = proxy.attempts
    assert attempt.allowed and attempt.method == "CONNECT" and attempt.destination == tls_source.destination


def test_a_connect_to_an_allowed_plain_http_source_is_refused_and_it_receives_nothing(proxy, origins):
    """A tunnel carries any bytes, so a CONNECT to a plain-http mirror would carry a POST body to it."""
    allowed, _ = origins
    reply = ask(proxy.path, f"CONNECT 127.0.0.1:{allowed.port} HTTP/1.1\r\nHost: 127.0.0.1:{allowed.port}\r\n"
                            "\r\nPOST /upload HTTP/1.1\r\nContent-Length: 6\r\n\r\nsecret".encode())
    assert reply.startswith(b"HTTP/1.1 403 Forbidden") and b"is a plain-http source" in reply
    assert allowed.connections == 0 and allowed.received == b"" and allowed.seen == []
    (attempt,) = proxy.attempts
    assert (attempt.allowed, attempt.method, str(attempt.destination)) == (False, "CONNECT", f"127.0.0.1:{allowed.port}")
    assert "reached over TLS" in attempt.detail


def test_a_plain_get_to_a_tls_source_is_refused(proxy, tls_source):
    reply = ask(proxy.path, f"GET http://127.0.0.1:{tls_source.port}/x HTTP/1.1\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 403 Forbidden") and b"is an https source" in reply
    assert tls_source.connections == 0
    assert [(a.allowed, a.method) for a in proxy.attempts] == [(False, "GET")]


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
    with EgressProxy([Destination("127.0.0.1", port, tls=True)], use_host_proxy=False) as proxy:
        proxy.listen_unix(str(tmp_path / "p.sock"))
        reply = ask(str(tmp_path / "p.sock"), f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 502")
    (attempt,) = proxy.attempts
    assert attempt.allowed and "could not connect" in attempt.detail


def test_the_hosts_own_proxy_is_used_when_it_has_one(origins, tls_source, tmp_path, monkeypatch):
    """Chained: our proxy -> the host's proxy (here another EgressProxy on TCP, with credentials) -> origin."""
    allowed, _ = origins
    places = [allowed.destination, tls_source.destination]
    with EgressProxy(places, use_host_proxy=False) as upstream:
        port = upstream.listen_tcp()
        monkeypatch.setenv("http_proxy", f"http://me:p%40ss@127.0.0.1:{port}")
        monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{port}")
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        with EgressProxy(places) as proxy:
            proxy.listen_unix(str(tmp_path / "p.sock"))
            plain = ask(str(tmp_path / "p.sock"),
                        f"GET http://127.0.0.1:{allowed.port}/a HTTP/1.1\r\n\r\n".encode())
            tunnel = ask(str(tmp_path / "p.sock"), f"CONNECT 127.0.0.1:{tls_source.port} HTTP/1.1\r\n\r\n"
                                                   "GET /b HTTP/1.0\r\n\r\n".encode())
    assert plain.endswith(b"hello from the origin\n") and b"HTTP/1.1 200" in tunnel
    assert [p for _, p, _ in allowed.seen] == ["/a"] and [p for _, p, _ in tls_source.seen] == ["/b"]
    assert [a.method for a in upstream.attempts] == ["GET", "CONNECT"]  # both went through the host's proxy


def test_close_ends_open_tunnels(tls_source, tmp_path):
    proxy = EgressProxy([tls_source.destination], use_host_proxy=False)
    proxy.listen_unix(str(tmp_path / "p.sock"))
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(5)
    sock.connect(str(tmp_path / "p.sock"))
    sock.sendall(f"CONNECT 127.0.0.1:{tls_source.port} HTTP/1.1\r\n\r\n".encode())
    assert sock.recv(100).startswith(b"HTTP/1.1 200")
    proxy.close()
    assert sock.recv(100) == b""  # the tunnel was shut, not left behind
    sock.close()


@pytest.mark.parametrize("url, expected", [
    ("https://pypi.org/simple", Destination("pypi.org", 443, tls=True)),
    ("http://m.lan/debian", Destination("m.lan", 80, tls=False)),
    ("https://m.lan:8443/", Destination("m.lan", 8443, tls=True)),
    ("http://m.lan:443/", Destination("m.lan", 443, tls=False)),  # the scheme says, not the port
    ("http://[::1]:8080/x", Destination("::1", 8080, tls=False)), ("file:///srv", None), ("http://h:bad/", None),
])
def test_destinations_of_urls(url, expected):
    assert destination_of(url) == expected


def test_a_destination_without_a_scheme_takes_it_from_its_port():
    assert Destination("pypi.org", 443).tls and not Destination("m.lan", 8080).tls
    assert Destination("x", 443) == Destination("x", 443, tls=True) != Destination("x", 443, tls=False)
    assert str(Destination("x", 8443, tls=True)) == str(Destination("x", 8443, tls=False)) == "x:8443"


@pytest.mark.parametrize("entry, expected", [
    ("files.lan", [("files.lan:443", True), ("files.lan:80", False)]),
    ("files.lan:8080", [("files.lan:8080", False)]), ("files.lan:443", [("files.lan:443", True)]),
    ("[fd00::5]:3141", [("[fd00::5]:3141", False)]), ("https://x.lan/simple", [("x.lan:443", True)]),
    ("https://x.lan:8443/simple", [("x.lan:8443", True)]), ("http://mirror:8080", [("mirror:8080", False)]),
    ("x:0", []), ("x:y", []),
])
def test_allow_hosts_entries(entry, expected):
    assert [(str(d), d.tls) for d in parse_allowed(entry)] == expected


def test_pipelined_requests_after_the_first_are_not_passed_on(proxy, origins):
    allowed, other = origins
    first = f"GET http://127.0.0.1:{allowed.port}/one HTTP/1.1\r\n\r\n"
    smuggled = (f"GET http://127.0.0.1:{other.port}/two HTTP/1.1\r\nHost: 127.0.0.1:{other.port}\r\n\r\n"
                f"POST /three HTTP/1.1\r\nContent-Length: 6\r\n\r\nsecret")
    reply = ask(proxy.path, (first + smuggled).encode())
    assert reply.count(b"HTTP/1.1 200") == 1 and reply.endswith(b"hello from the origin\n")
    assert allowed.seen == [("GET", "/one", f"127.0.0.1:{allowed.port}")] and other.seen == []


def test_a_get_with_a_body_is_refused(proxy, origins):
    allowed, _ = origins
    reply = ask(proxy.path, f"GET http://127.0.0.1:{allowed.port}/x HTTP/1.1\r\nContent-Length: 6\r\n\r\nsecret"
                .encode())
    assert reply.startswith(b"HTTP/1.1 400") and allowed.seen == []


# Each head below has a request line that points at the allowed origin; what follows it is not clean HTTP/1.1.
# A server that reads it more leniently than a strict proxy would see a second request ("/smuggled") or a body.
SMUGGLED = "POST /smuggled HTTP/1.1\nHost: {a}\nContent-Length: 6\n\nsecret"
STRICT_CASES = {
    "bare-lf-in-a-value": ("GET", "X-A: a\n\n" + SMUGGLED, "bare CR or LF"),
    "bare-cr-in-a-value": ("GET", "X-A: a\r\rPOST /smuggled HTTP/1.1", "bare CR or LF"),
    "lf-line-endings": ("GET", "Host: {a}\nX-A: a\n\n", "bare CR or LF"),  # no CRLF blank line ever comes
    "lf-after-the-request-line": ("GET", "\nX-A: a", "bare CR or LF"),
    "obs-fold": ("GET", "X-A: a\r\n Transfer-Encoding: chunked", "line folding"),
    "tab-fold": ("GET", "X-A: a\r\n\tb", "line folding"),
    "no-colon": ("GET", "X-A: a\r\nPOST /smuggled HTTP/1.1", "has no colon"),
    "space-before-colon": ("GET", "Transfer-Encoding : chunked", "white space before the colon"),
    "tab-before-colon": ("GET", "Content-Length\t: 6", "white space before the colon"),
    "duplicate-content-length": ("GET", "Content-Length: 0\r\nContent-Length: 6", "more than one Content-Length"),
    "duplicate-content-length-on-post": ("POST", "Content-Length: 0\r\nContent-Length: 6",
                                         "more than one Content-Length"),
    "duplicate-host": ("GET", "Host: {a}\r\nHost: elsewhere", "more than one Host"),
    "content-length-0-on-get": ("GET", "Content-Length: 0", "(a body)"),
    "content-length-on-head": ("HEAD", "Content-Length: 6", "(a body)"),
    "transfer-encoding-on-get": ("GET", "Transfer-Encoding: chunked", "(a body)"),
    "nul-in-a-value": ("GET", "X-A: a\x00b", "control character"),
    "escape-in-a-value": ("GET", "X-A: \x1b[31mred", "control character"),
    "del-in-a-value": ("GET", "X-A: a\x7f", "control character"),
    "space-in-a-name": ("GET", "X A: b", "not a token"),
    "control-in-a-name": ("GET", "X\x01A: b", "not a token"),
    "empty-name": ("GET", ": b", "not a token"),
}


@pytest.mark.parametrize("case", STRICT_CASES, ids=list(STRICT_CASES))
def test_a_head_that_is_not_clean_is_refused_recorded_and_never_reaches_the_origin(proxy, origins, case):
    allowed, _ = origins
    method, rest, why = STRICT_CASES[case]
    authority = f"127.0.0.1:{allowed.port}"
    fields = rest.format(a=authority)
    head = f"{method} http://{authority}/ok HTTP/1.1" + ("" if fields.startswith("\n") else "\r\n") + fields
    reply = ask(proxy.path, (head + "\r\n\r\n").encode("latin-1"))
    assert reply.startswith(b"HTTP/1.1 400 Bad Request"), reply
    assert why.encode() in reply, reply
    assert allowed.connections == 0 and allowed.seen == [] and allowed.received == b""
    (attempt,) = proxy.attempts
    assert (attempt.allowed, attempt.method, attempt.destination) == (False, method, allowed.destination)
    assert why in attempt.detail and "\n" not in attempt.detail and "\x1b" not in attempt.detail


def test_a_client_ending_lines_in_lf_is_answered_at_once(proxy, origins):
    """It never sends the CRLF blank line the head reader waits for: the bare LF is enough to answer."""
    import time

    allowed, _ = origins
    start = time.monotonic()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(proxy.path)
        sock.sendall(f"GET http://127.0.0.1:{allowed.port}/ok HTTP/1.1\nHost: x\n".encode())  # and no more
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 400") and time.monotonic() - start < 3


def test_a_body_on_a_connect_is_refused(proxy, tls_source):
    reply = ask(proxy.path, f"CONNECT 127.0.0.1:{tls_source.port} HTTP/1.1\r\nContent-Length: 6\r\n\r\n"
                            "secret".encode())
    assert reply.startswith(b"HTTP/1.1 400") and tls_source.connections == 0
    assert [(a.allowed, a.method) for a in proxy.attempts] == [(False, "CONNECT")]


def test_the_head_sent_on_is_rebuilt_from_the_parsed_fields(proxy, origins):
    """What reaches the origin is the request line again, Host from the URL, the end-to-end headers with their
    spacing normalised, and a close: not the bytes the client sent."""
    allowed, _ = origins
    authority = f"127.0.0.1:{allowed.port}"
    reply = ask(proxy.path, f"GET http://{authority}/p?q=1#frag HTTP/1.1\r\nHost: evil\r\nAccept:   */*  \t\r\n"
                            "Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nTE: trailers\r\n"
                            "User-Agent:pip/24\r\n\r\n".encode())
    assert reply.endswith(b"hello from the origin\n")
    assert bytes(allowed.received) == (f"GET /p?q=1 HTTP/1.1\r\nHost: {authority}\r\nAccept: */*\r\n"
                                       "User-Agent: pip/24\r\nConnection: close\r\n\r\n").encode()


@pytest.mark.parametrize("request_line", [
    "GET http://127.0.0.1:{p}/\xff HTTP/1.1",  # a byte outside visible ASCII in the target
    "GET http://127.0.0.1:{p}/\x01 HTTP/1.1",
    "GET  http://127.0.0.1:{p}/ HTTP/1.1",  # two spaces
    "GET http://127.0.0.1:{p}/ HTTP/1.1 ",
    "G(T http://127.0.0.1:{p}/ HTTP/1.1",  # a method that is not a token
    "GET http://127.0.0.1:{p}/ http/1.1",
], ids=["non-ascii-target", "control-in-target", "double-space", "trailing-space", "bad-method", "lower-version"])
def test_a_request_line_that_is_not_clean_is_refused(proxy, origins, request_line):
    allowed, _ = origins
    reply = ask(proxy.path, (request_line.format(p=allowed.port) + "\r\n\r\n").encode("latin-1"))
    assert reply.startswith(b"HTTP/1.1 400") and allowed.connections == 0


def test_garbage_urls_and_vanishing_clients_never_raise_in_the_proxy(proxy, origins, tls_source, capsys):
    import threading as th

    allowed, _ = origins
    errors = []
    previous = th.excepthook
    th.excepthook = lambda args: errors.append(args.exc_value)
    try:
        assert ask(proxy.path, b"GET http://[::1/x HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400")
        for request in (f"CONNECT 127.0.0.1:{tls_source.port} HTTP/1.1\r\n\r\n",
                        f"GET http://127.0.0.1:{allowed.port}/ HTTP/1.1\r\nX: a\nb\r\n\r\n",
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

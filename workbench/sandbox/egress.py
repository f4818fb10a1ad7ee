"""The install step's only way out: an allowlisting HTTP proxy on the host, reached through a Unix socket.

An install container has `network_mode="none"`, like the container user code runs in: no interface but its
own loopback, no DNS, no route. Its one link to the outside is a Unix socket, bind-mounted from the host,
behind which `EgressProxy` runs in Workbench's own process. Inside the container a small relay
(workbench/sandbox/container/relay.py, run by the image's python3 as the container's first process) listens
on the container's own loopback (127.0.0.1:3128) and hands every connection to that socket; pip, apt and R
are pointed there with `http_proxy`/`https_proxy`. The proxy reads each request and lets through only

    CONNECT host:port HTTP/1.1           TLS to an https source (PyPI, CRAN, an https mirror)
    GET|HEAD http://host:port/... HTTP/1.1   plain http (Debian mirrors, LAN indexes), one request per
                                             connection, no body, its Host header rewritten to the URL's

where host:port is in the allowlist built from the configured sources (each package manager says which), and each
allowed place is reached one way only, the way its source says (`Destination.tls`): an https source by
CONNECT alone, a plain-http one by GET/HEAD alone. A tunnel carries whatever bytes the client likes, so a
CONNECT to a plain-http mirror would let a POST body reach it; it is refused. Anything else (another host,
another port, POST, a CONNECT to a plain-http source) is answered 403/405, and a head that is not clean HTTP/1.1
(see `_parse_head`) 400; each is recorded as refused where its request line names a place, the install reports
what was refused and the audit log keeps it. A plain-http request is never passed on as it came: its head is
rebuilt from the fields parsed, so no byte the parser did not account for reaches the server.

Why this shape rather than a filtered network:
  * it is the same on rootless Podman, rootful Podman and Docker: no bridge, no iptables, no /dev/net/tun,
    no proxy living inside Podman's rootless network namespace;
  * the host's loopback and LAN are reachable only as the exact host:port a source names (a mirror on
    127.0.0.1:8000 opens 127.0.0.1:8000 and nothing else on the host);
  * names are resolved on the host, so the host's resolver, /etc/hosts and upstream proxy all apply.
The host's own proxy settings (`https_proxy`, `http_proxy`, `no_proxy`) are honoured: an allowed request is
chained through the upstream proxy, with its credentials, when the host would use one.

Limits, honestly stated: inside an allowed TLS tunnel the proxy sees only bytes, so a build script may talk to
an allowed host (upload to PyPI, say) or front another site on the same CDN through TLS. Plain-http requests
always go to the host:port named in their URL, whatever their Host header says (it is rewritten). A remote
engine (`DOCKER_HOST=ssh://...`), or one inside a VM (Podman machine, Docker Desktop), cannot mount a socket
from this machine, as it cannot mount the workspace: there, installs from a URL fail with a line saying so,
and folder sources are the way. The relay needs python3 in the image (the base image has it).

Long because the proxy is one trust boundary: parsing a request head, checking it against the allowlist,
rebuilding it and chaining to an upstream proxy are read together, as one attacker-facing parser.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from workbench.sandbox import container

RELAY_PORT = 3128  # on the install container's own loopback
SOCKET_MOUNT = "/mnt/workbench-egress"  # the folder holding the proxy's socket, inside the container
SOCKET_NAME = "proxy.sock"
MAX_HEAD = 32 * 1024  # a request line and its headers
HEAD_TIMEOUT = 30.0  # seconds to send them
IDLE_TIMEOUT = 300.0  # seconds a tunnel may sit silent
CONNECT_TIMEOUT = 15.0
LINGER_TIMEOUT = 1.0  # seconds a refused client gets to finish sending before its connection is closed
LINGER_BYTES = 1 << 20
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate",
              "te", "trailer", "upgrade"}


@dataclass(frozen=True, order=True)
class Destination:
    """A host (lower case, IPv6 without brackets), a TCP port, and how the proxy may reach it.

    `tls` True: an https source, reached only through a CONNECT tunnel (the client's TLS runs inside it).
    `tls` False: a plain-http source, reached only by GET/HEAD requests the proxy has parsed and rebuilt.
    Not given, the port decides: 443 is TLS, any other port plain http. The printed form is host:port only."""

    host: str
    port: int
    tls: bool | None = None

    def __post_init__(self) -> None:
        if self.tls is None:
            object.__setattr__(self, "tls", self.port == 443)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


DEFAULT_PORTS = {"http": 80, "https": 443}


def destination_of(url: str) -> Destination | None:
    """Where an http(s) URL connects to; None for anything else (a folder, file://)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in DEFAULT_PORTS or not parsed.hostname:
        return None
    try:
        port = parsed.port or DEFAULT_PORTS[parsed.scheme]
    except ValueError:
        return None
    return Destination(parsed.hostname.lower().rstrip("."), port, tls=parsed.scheme == "https")


def parse_allowed(entry: str) -> list[Destination]:
    """An `[install] allow_hosts` entry, and how each place it names may be reached:

        https://host[:port]/...      TLS (CONNECT) to that port
        http://host[:port]/...       plain http (GET/HEAD) to that port
        host                         both standard ports: host:443 over TLS, host:80 plain http
        host:port, [v6]:port         the port decides: 443 is TLS, any other plain http (`mirror.lan:8080`);
                                     an https source on another port is written as a URL (`https://h:8443`)

    So an entry opens each port one way only, and an entry that does not say (a bare port) is the way that
    cannot become a raw tunnel: at worst a TLS client is refused, and the refusal says what to write."""
    if "://" in entry:
        found = destination_of(entry)
        return [found] if found else []
    host, port = entry, ""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    host = host.lower().rstrip(".")
    if not host:
        return []
    if port:
        return [Destination(host, int(port))] if port.isdigit() and 0 < int(port) < 65536 else []
    return [Destination(host, 443), Destination(host, 80)]


@dataclass(frozen=True)
class Attempt:
    """One request the install step made to the outside, and what the proxy did with it."""

    destination: Destination
    method: str
    allowed: bool
    detail: str = ""  # why it was refused, or why an allowed one failed


class Refused(Exception):
    def __init__(self, status: str, message: str, destination: Destination | None = None, method: str = ""):
        super().__init__(message)
        self.status, self.destination, self.method = status, destination, method


# --- the host's own proxy ------------------------------------------------------------------------
@dataclass(frozen=True)
class Upstream:
    """The proxy the host itself uses for a destination, from the standard environment variables."""

    address: Destination
    authorization: str | None  # a Proxy-Authorization value, from credentials in the proxy URL


def upstream_for(destination: Destination, scheme: str) -> Upstream | None:
    proxies = urllib.request.getproxies_environment()
    url = proxies.get(scheme)
    if not url or urllib.request.proxy_bypass_environment(destination.host, proxies):
        return None
    if "://" not in url:
        url = "http://" + url
    parsed = urllib.parse.urlsplit(url)
    address = destination_of(url)
    if address is None:
        return None
    authorization = None
    if parsed.username is not None:
        credentials = f"{urllib.parse.unquote(parsed.username)}:{urllib.parse.unquote(parsed.password or '')}"
        authorization = "Basic " + base64.b64encode(credentials.encode()).decode()
    return Upstream(address, authorization)


# --- the proxy -----------------------------------------------------------------------------------
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token: a method, a header name
FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")  # visible characters, spaces, tabs, obs-text
REQUEST_TARGET = re.compile(r"[\x21-\x7e]+")  # visible ASCII: no space, no control character
HTTP_1 = re.compile(r"HTTP/1\.[01]")
BARE_LINE_END = re.compile(rb"\r(?!\n)|(?<!\r)\n")  # a CR or LF that is not part of a CRLF
BODY_FIELDS = ("content-length", "transfer-encoding")


def _shown(text: str, limit: int = 60) -> str:
    """A piece of a request in a refusal: quoted, escaped, bounded, one line."""
    return ascii(text[:limit] + ("..." if len(text) > limit else ""))


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """The request head (up to the blank line) and whatever came after it.

    A head holding a bare CR or LF is handed back as soon as one arrives: it is refused whole (`_parse_head`),
    and a client ending its lines in LF would otherwise be kept waiting for a CRLF blank line."""
    data = b""
    while True:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            head, rest = data[:end], data[end + 4:]
            break
        if BARE_LINE_END.search(data[:-1] if data.endswith(b"\r") else data):  # (a last CR may be a CRLF's)
            head, rest = data, b""
            break
        if len(data) > MAX_HEAD:
            raise Refused("431 Request Header Fields Too Large", f"request head over {MAX_HEAD} bytes")
        chunk = sock.recv(8192)
        if not chunk:
            raise Refused("400 Bad Request", "the connection closed before a whole request arrived")
        data += chunk
    if len(head) > MAX_HEAD:
        raise Refused("431 Request Header Fields Too Large", f"request head over {MAX_HEAD} bytes")
    return head, rest


@dataclass(frozen=True)
class Request:
    """A request head that parsed whole and clean. `destination` is where its request line points (None when
    it names no place), so that a refusal can be recorded against it."""

    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]
    destination: Destination | None


def _named(method: str, target: str) -> Destination | None:
    """Where a request line points: CONNECT's authority (a tunnel, so TLS), or an absolute http:// URL."""
    if method == "CONNECT":
        return _authority(target)
    if target.lower().startswith(("http://", "https://")):
        try:
            return destination_of(target)
        except ValueError:  # what the URL parser makes of garbage (`http://[::1/`)
            return None
    return None


def _parse_head(head: bytes) -> Request:
    """The request line and header fields, parsed strictly (RFC 9112), or Refused.

    Smuggling lives in the gap between two parsers: where this proxy and the server behind it read a head
    differently, bytes the proxy took for part of a header become a second request at the server. So a head
    passes only when it has one reading: every line ends in CRLF (no bare CR or LF anywhere, so none inside a
    value either), no line is folded onto the one before (obs-fold), every header line is `name: value` with a
    token for a name and no white space before the colon, values hold no control characters, and there is at
    most one Content-Length and one Host. The caller then forwards a head rebuilt from these fields."""
    text = head.decode("latin-1")
    line = re.split(r"\r\n|\r|\n", text, maxsplit=1)[0]  # however the client ended it: to name the place
    parts = line.split(" ")
    if len(parts) != 3 or not TOKEN.fullmatch(parts[0]):
        raise Refused("400 Bad Request", "not an HTTP proxy request")
    method, target, version = parts
    if not REQUEST_TARGET.fullmatch(target):
        raise Refused("400 Bad Request", f"request target {_shown(target)} holds a control or non-ASCII byte")
    destination = _named(method, target)

    def refuse(why: str, status: str = "400 Bad Request") -> Refused:
        return Refused(status, why, destination, method)

    if not HTTP_1.fullmatch(version):
        if version.startswith("HTTP/"):
            raise refuse(f"{_shown(version)} is not HTTP/1.x", "505 HTTP Version Not Supported")
        raise refuse(f"{_shown(version)} is not an HTTP version")
    if BARE_LINE_END.search(head):
        raise refuse("a line in the request head ends in a bare CR or LF, not CRLF")
    headers: list[tuple[str, str]] = []
    for field in text.split("\r\n")[1:]:
        if field[:1] in (" ", "\t"):
            raise refuse("a header line starts with white space (obsolete line folding)")
        name, colon, value = field.partition(":")
        if not colon:
            raise refuse(f"header line {_shown(field)} has no colon")
        if name != name.rstrip(" \t"):
            raise refuse(f"white space before the colon in header {_shown(name.rstrip())}")
        if not TOKEN.fullmatch(name):
            raise refuse(f"header name {_shown(name)} is not a token")
        value = value.strip(" \t")
        if not FIELD_VALUE.fullmatch(value):
            raise refuse(f"header {name} holds a control character")
        headers.append((name, value))
    for once in ("content-length", "host"):
        if sum(name.lower() == once for name, _ in headers) > 1:
            raise refuse(f"more than one {once.title()} header")
    return Request(method, target, version, tuple(headers), destination)


def _authority(target: str) -> Destination:
    """CONNECT's target, `host:port` or `[v6]:port`."""
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host or not 0 < int(port) < 65536:
        raise Refused("400 Bad Request", f"CONNECT target {target!r} is not host:port")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return Destination(host.lower().rstrip("."), int(port), tls=True)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    try:
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _splice(client: socket.socket, server: socket.socket) -> None:
    """Copy both ways until both sides are done."""
    back = threading.Thread(target=_pump, args=(server, client), daemon=True)
    back.start()
    _pump(client, server)
    back.join()


@dataclass(frozen=True)
class Route:
    """An allowed request: where it goes, and for plain http the head rebuilt to send there (the request line
    in origin form for the server, in absolute form for the host's proxy, then the header lines)."""

    destination: Destination
    method: str
    origin_line: str
    absolute_line: str
    fields: str


class EgressProxy:
    """An allowlisting forward proxy. Listens on a Unix socket (for install containers) or on TCP (tests,
    chaining). Every request is recorded in `attempts`; `on_attempt` hears each one as it happens."""

    def __init__(self, allowed: Iterable[Destination], *,
                 on_attempt: Callable[[Attempt], None] | None = None, use_host_proxy: bool = True):
        self.allowed = frozenset(allowed)
        self.on_attempt = on_attempt
        self.use_host_proxy = use_host_proxy
        self._attempts: list[Attempt] = []
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    # listening
    def listen_unix(self, path: str, mode: int = 0o600) -> str:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        os.chmod(path, mode)
        self._start(listener)
        return path

    def listen_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        self._start(listener)
        return listener.getsockname()[1]

    def _start(self, listener: socket.socket) -> None:
        listener.listen(128)
        listener.settimeout(0.2)  # so close() is noticed without relying on accept() waking up
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, name="workbench-egress", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for sock in list(self._open):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def __enter__(self) -> EgressProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def attempts(self) -> list[Attempt]:
        with self._lock:
            return list(self._attempts)

    def _record(self, attempt: Attempt) -> None:
        with self._lock:
            self._attempts.append(attempt)
        if self.on_attempt is not None:
            try:
                self.on_attempt(attempt)
            except Exception:  # a listener's bug must not break the install
                pass

    def _track(self, sock: socket.socket, keep: bool) -> None:
        with self._lock:
            (self._open.add if keep else self._open.discard)(sock)

    # one connection
    def _serve(self, client: socket.socket) -> None:
        server: socket.socket | None = None
        self._track(client, True)
        try:
            client.settimeout(HEAD_TIMEOUT)
            try:
                head, rest = _read_head(client)
                route = self._decide(_parse_head(head))
            except Refused as refused:
                if refused.destination is not None:
                    self._record(Attempt(refused.destination, refused.method, False, str(refused)))
                self._refuse(client, refused.status, str(refused))
                return
            except OSError:
                return
            except ValueError as exc:  # what the URL parser makes of garbage (`http://[::1/`)
                self._refuse(client, "400 Bad Request", f"not a request this proxy understands: {exc}")
                return
            destination, method = route.destination, route.method
            try:
                server, early = self._connect(route)
            except (OSError, Refused) as exc:
                self._record(Attempt(destination, method, True, f"could not connect: {exc}"))
                self._answer(client, "502 Bad Gateway", f"{destination}: {exc}")
                return
            self._record(Attempt(destination, method, True))
            self._track(server, True)
            try:
                client.settimeout(IDLE_TIMEOUT)
                server.settimeout(IDLE_TIMEOUT)
                if method == "CONNECT":
                    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n" + early)
                    if rest:
                        server.sendall(rest)
                    _splice(client, server)
                else:
                    # One request per connection: whatever the client sent after its head (pipelined requests
                    # apt likes to send) is not passed on unchecked; the client sees the close and asks again.
                    _pump(server, client)
            except OSError:  # either side went away: the connection is over, nothing to report
                pass
        finally:
            for sock in (client, server):
                if sock is not None:
                    self._track(sock, False)
                    sock.close()

    def _decide(self, request: Request) -> Route:
        """Where a parsed request may go, and what is sent there; Refused when it may not go anywhere."""
        method, destination = request.method, request.destination
        if method not in ("GET", "HEAD", "CONNECT"):
            raise Refused("405 Method Not Allowed", f"{method} is not allowed (only GET, HEAD and CONNECT)",
                          destination, method)
        if any(name.lower() in BODY_FIELDS for name, _ in request.headers):
            # No request this proxy passes has a body: a length or chunking here is a body hidden from it.
            raise Refused("400 Bad Request", f"{method} with Content-Length or Transfer-Encoding (a body) is not "
                                             "passed on", destination, method)
        if method == "CONNECT":
            assert destination is not None  # (_parse_head named it, or refused the request)
            if destination not in self.allowed:
                if replace(destination, tls=False) in self.allowed:
                    raise Refused("403 Forbidden", f"{destination} is a plain-http source: CONNECT (a raw "
                                                   "tunnel) goes only to sources reached over TLS",
                                  destination, method)
                raise Refused("403 Forbidden", f"{destination} is not an install source", destination, method)
            return Route(destination, method, "", "", "")
        parsed = urllib.parse.urlsplit(request.target)
        if parsed.scheme != "http" or not parsed.hostname or parsed.username is not None:
            raise Refused("400 Bad Request", f"{method} needs an absolute http:// URL without credentials",
                          destination, method)
        if destination is None:
            raise Refused("400 Bad Request", f"bad URL {_shown(request.target)}")
        if destination not in self.allowed:
            if replace(destination, tls=True) in self.allowed:
                raise Refused("403 Forbidden", f"{destination} is an https source: plain-http requests are not "
                                               "sent there", destination, method)
            raise Refused("403 Forbidden", f"{destination} is not an install source", destination, method)
        # The head sent on is made from the parsed fields alone: the request line again, Host from the URL,
        # the end-to-end headers (hop-by-hop ones, and those the client's Connection names, are the client's
        # business with this proxy), and a close.
        named = {token.strip().lower() for name, value in request.headers if name.lower() == "connection"
                 for token in value.split(",")}
        kept = [(name, value) for name, value in request.headers
                if name.lower() not in HOP_BY_HOP and name.lower() not in named and name.lower() != "host"]
        path = urllib.parse.urlunsplit(("", "", parsed.path or "/", parsed.query, ""))
        fields = "".join(f"{name}: {value}\r\n" for name, value in [("Host", parsed.netloc), *kept])
        return Route(destination, method, f"{method} {path} {request.version}",
                     f"{method} http://{parsed.netloc}{path} {request.version}", fields + "Connection: close\r\n")

    def _connect(self, route: Route) -> tuple[socket.socket, bytes]:
        """A connection to the route's destination (directly, or through the host's proxy) that has been sent
        its request, and any bytes the far side already sent back past a chained CONNECT's answer."""
        destination = route.destination
        upstream = upstream_for(destination, "https" if route.method == "CONNECT" else "http") \
            if self.use_host_proxy else None
        if upstream is None:
            server = socket.create_connection((destination.host, destination.port), timeout=CONNECT_TIMEOUT)
            if route.method != "CONNECT":
                server.sendall(f"{route.origin_line}\r\n{route.fields}\r\n".encode("latin-1"))
            return server, b""
        server = socket.create_connection((upstream.address.host, upstream.address.port),
                                          timeout=CONNECT_TIMEOUT)
        auth = f"Proxy-Authorization: {upstream.authorization}\r\n" if upstream.authorization else ""
        try:
            if route.method == "CONNECT":
                server.sendall(f"CONNECT {destination} HTTP/1.1\r\nHost: {destination}\r\n{auth}\r\n".encode())
                head, rest = _read_head(server)
                status = head.split(b"\r\n", 1)[0].split(b" ", 2)
                if BARE_LINE_END.search(head) or len(status) < 2 or status[1] != b"200":
                    raise Refused("502 Bad Gateway", "the host's proxy refused: " +
                                  _shown(head.split(b"\r\n", 1)[0].decode("latin-1")))
            else:
                # Absolute form for a proxy, with the same rebuilt head (its Host matches the URL).
                server.sendall(f"{route.absolute_line}\r\n{auth}{route.fields}\r\n".encode("latin-1"))
                rest = b""
        except BaseException:
            server.close()
            raise
        return server, rest

    @staticmethod
    def _answer(client: socket.socket, status: str, message: str) -> None:
        body = f"workbench install egress: {message}\n".encode()
        try:
            client.sendall(f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                           "Connection: close\r\n\r\n".encode() + body)
        except OSError:
            pass

    def _refuse(self, client: socket.socket, status: str, message: str) -> None:
        """Answer, then let the client finish sending (briefly, boundedly) before the close: a socket closed
        with unread bytes resets the connection, and the client may lose the answer that says why."""
        self._answer(client, status, message)
        try:
            client.shutdown(socket.SHUT_WR)
            client.settimeout(LINGER_TIMEOUT)
            drained = 0
            while drained < LINGER_BYTES and (chunk := client.recv(65536)):
                drained += len(chunk)
        except OSError:
            pass


# --- inside the container ------------------------------------------------------------------------
# The relay itself is workbench/sandbox/container/relay.py: it listens on the container's loopback, hands each
# connection to the proxy's socket, runs COMMAND and exits with its status.


def relay_command(command: list[str]) -> list[str]:
    # the image's own interpreter by path: a PATH that reached into the workspace would run a planted python3
    return [container.PYTHON, "-I", "-c", container.source("relay.py"), f"{SOCKET_MOUNT}/{SOCKET_NAME}",
            str(RELAY_PORT), *command]


def proxy_environment() -> dict[str, str]:
    """What points pip, apt, R (libcurl) and most other clients at the relay. Both spellings: libcurl reads
    only the lower-case http_proxy, other tools only the upper case."""
    url = f"http://127.0.0.1:{RELAY_PORT}"
    return {"http_proxy": url, "https_proxy": url, "HTTP_PROXY": url, "HTTPS_PROXY": url,
            "no_proxy": "", "NO_PROXY": ""}

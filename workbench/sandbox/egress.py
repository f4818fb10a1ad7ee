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
(see `parse_head`) 400; each is recorded as refused where its request line names a place, the install reports
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

Parts: where a request may go (`workbench.sandbox.destinations`), the strict request-head parser
(`workbench.sandbox.http_head`), and here the proxy that decides, rebuilds and forwards.
"""

from __future__ import annotations

import os
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from workbench.sandbox import container
from workbench.sandbox.destinations import (  # noqa: F401 (re-exported: where installs may go)
    DEFAULT_PORTS,
    Attempt,
    Destination,
    Upstream,
    destination_of,
    parse_allowed,
    upstream_for,
)
from workbench.sandbox.http_head import (  # noqa: F401 (re-exported for the proxy tests)
    BARE_LINE_END,
    BODY_FIELDS,
    MAX_HEAD,
    Refused,
    Request,
    authority,
    parse_head,
    read_head,
    shown,
)

RELAY_PORT = 3128  # on the install container's own loopback
SOCKET_MOUNT = "/mnt/workbench-egress"  # the folder holding the proxy's socket, inside the container
SOCKET_NAME = "proxy.sock"
HEAD_TIMEOUT = 30.0  # seconds to send them
IDLE_TIMEOUT = 300.0  # seconds a tunnel may sit silent
CONNECT_TIMEOUT = 15.0
LINGER_TIMEOUT = 1.0  # seconds a refused client gets to finish sending before its connection is closed
LINGER_BYTES = 1 << 20
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate",
              "te", "trailer", "upgrade"}


# --- the proxy -----------------------------------------------------------------------------------
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
                head, rest = read_head(client)
                route = self._decide(parse_head(head))
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
            assert destination is not None  # (parse_head named it, or refused the request)
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
            raise Refused("400 Bad Request", f"bad URL {shown(request.target)}")
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
                head, rest = read_head(server)
                status = head.split(b"\r\n", 1)[0].split(b" ", 2)
                if BARE_LINE_END.search(head) or len(status) < 2 or status[1] != b"200":
                    raise Refused("502 Bad Gateway", "the host's proxy refused: " +
                                  shown(head.split(b"\r\n", 1)[0].decode("latin-1")))
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

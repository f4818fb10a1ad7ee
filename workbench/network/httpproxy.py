"""The HTTP policy proxy code's requests go through: only what a `[[network.http]]` rule allows leaves.

Code in the container speaks plain HTTP/1.1 proxy requests (`GET http://host[:port]/path HTTP/1.1`) to the
relay on its loopback, which hands each connection to this proxy's Unix socket (the install egress's relay
and socket mount: workbench.sandbox.egress). For each connection the proxy

  * reads ONE request head with the install proxy's strict parser (workbench.sandbox.http_head), so a
    head with two readings (smuggling) is refused, and only one request per connection is ever passed on;
  * matches it against the rules: the host, the port (an explicit port must be the rule's; none means the
    rule's scheme's default), the path prefix (dot segments and encoded slashes are refused, so
    `/ok/../admin` cannot pass as `/ok/`) and the method. Anything else is a 403 with a one-line reason;
    CONNECT is refused: a tunnel's bytes could not be checked, so https origins are reached by the proxy
    itself (code calls http://, the proxy opens TLS, verified against the system store or the rule's CA);
  * resolves the name on the host, once, and refuses an address of another class than the rule implies
    (loopback, link-local and metadata, unspecified, multicast, one of this machine's own such as the
    engine's gateway) unless the rule names that address;
  * rebuilds the head from the parsed fields: hop-by-hop fields dropped, Host from the URL, and for a rule
    with a credential every Authorization / Proxy-Authorization / Cookie field and the template's own
    header dropped and the template's header added with the secret. A body is passed only with a single
    Content-Length (Transfer-Encoding is refused), byte for byte and no further;
  * copies the answer back, counting bytes, and reports one `Record` when the connection is done.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from workbench.errors import WorkbenchError
from workbench.network import upstream
from workbench.network.rules import HttpRule, is_address
from workbench.sandbox.http_head import Refused, Request, parse_head, read_head, shown

HEAD_TIMEOUT = 30.0
IDLE_TIMEOUT = 300.0
CONNECT_TIMEOUT = 15.0
MAX_BODY = 64 << 20
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate",
              "te", "trailer", "upgrade", "host", "expect"}
CREDENTIAL_FIELDS = {"authorization", "proxy-authorization", "cookie"}
METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


@dataclass
class Record:
    """One request and what became of it (the proxy's side of a `net.request` event)."""

    destination: str
    method: str = ""
    path: str = ""
    status: int | None = None
    bytes_up: int = 0
    bytes_down: int = 0
    duration: float = 0.0
    rule: str = ""
    refused: str = ""
    credential: str = ""


def _port_matches(rule: HttpRule, explicit: int | None) -> bool:
    return rule.port == explicit if explicit is not None else rule.port == (443 if rule.scheme == "https" else 80)


def _prefix(rule_path: str, path: str) -> bool:
    return path.startswith(rule_path) or (rule_path.endswith("/") and path == rule_path[:-1])


def _safe_path(path: str) -> bool:
    lowered = path.lower()
    if "%2f" in lowered or "%5c" in lowered or "\\" in path or not path.startswith("/"):
        return False
    # a segment's path parameters (`..;x`) count for nothing: servers that strip them (Tomcat, Spring, Jetty)
    # read `/ok/..;/admin` as `/admin`; and a double-escaped dot (`%252e`) is one a second decoding makes
    return "%25" not in lowered and all(urllib.parse.unquote(part.split(";", 1)[0]) not in (".", "..")
                                        for part in path.split("/"))


def match(rules: Iterable[HttpRule], host: str, explicit: int | None, method: str, path: str) -> HttpRule:
    """The rule a request falls under, or Refused (403) naming the first thing that did not match."""
    place = f"{host}:{explicit}" if explicit is not None else host
    at = [r for r in rules if r.host == host and _port_matches(r, explicit)]
    if not at:
        raise Refused("403 Forbidden", f"{place} is not in the project's network policy")
    if not _safe_path(path):
        raise Refused("403 Forbidden", f"the path {shown(path)} holds dot segments or encoded slashes")
    under = [r for r in at if _prefix(r.path, path)]
    if not under:
        raise Refused("403 Forbidden", f"{shown(path)} is outside the allowed paths of {place} "
                                       f"({', '.join(r.path for r in at)})")
    for rule in under:
        if method in rule.methods:
            return rule
    raise Refused("403 Forbidden", f"{method} is not allowed for {under[0].url} "
                                   f"(allowed: {','.join(under[0].methods)})")


def address_problem(rule: HttpRule, address: str) -> str:
    """Why `address` (what the rule's host resolved to) is refused; "" when it may be used."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if is_address(rule.host) or rule.host == "localhost" and ip.is_loopback:
        return ""  # the rule names the address (or loopback) itself
    for why, hit in (("metadata", ip in METADATA), ("loopback", ip.is_loopback),
                     ("link-local", ip.is_link_local), ("unspecified", ip.is_unspecified),
                     ("multicast", ip.is_multicast)):
        if hit:
            return f"{rule.host} resolved to {address} ({why}), which the rule does not name"
    if is_own_address(address):
        return f"{rule.host} resolved to {address} (this machine's own: the engine's gateway), which the rule " \
               "does not name"
    return ""


def is_own_address(address: str) -> bool:
    """Whether `address` is one of this machine's (a bind to it succeeds): besides loopback, the bridge or
    gateway address an engine put on the host, and its LAN address, where host services listen."""
    probe = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind((address, 0))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def resolve(rule: HttpRule) -> str:
    """One address for the rule's host, resolved on this machine, once per connection."""
    try:
        found = socket.getaddrinfo(rule.host, rule.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise Refused("502 Bad Gateway", f"cannot resolve {rule.host}: {exc}") from None
    addresses = [info[4][0] for info in found]
    for address in addresses:  # every answer is checked: a resolver could hand back a good one first
        problem = address_problem(rule, address)
        if problem:
            raise Refused("403 Forbidden", problem)
    return addresses[0]


class PolicyProxy:
    """Serves connections handed over by `serve(client)`; `report` hears one Record per request."""

    def __init__(self, rules: Iterable[HttpRule], secret: Callable[[str], str],
                 report: Callable[[Record], None]):
        self.rules = tuple(rules)
        self.secret = secret
        self.report = report
        # after a rule matched: "" lets the request go on, else the refusal's reason (the session's
        # approval of new destinations: workbench.network.approval)
        self.gate: Callable[[str, HttpRule], str] | None = None
        self._active: set[threading.Thread] = set()
        self._lock = threading.Lock()

    def handle(self, client: socket.socket) -> None:
        """Serve `client` on a thread of its own (tracked, so `drain` can wait for its record)."""
        thread = threading.Thread(target=self._serve_tracked, args=(client,), daemon=True)
        with self._lock:
            self._active.add(thread)
        thread.start()

    def _serve_tracked(self, client: socket.socket) -> None:
        try:
            self.serve(client)
        finally:
            with self._lock:
                self._active.discard(threading.current_thread())

    def drain(self, timeout: float = 3.0) -> None:
        """Wait (boundedly) for requests in flight, so their records reach the session before it closes."""
        deadline = time.monotonic() + timeout
        with self._lock:
            active = list(self._active)
        for thread in active:
            thread.join(max(0.0, deadline - time.monotonic()))

    def serve(self, client: socket.socket) -> None:
        started = time.monotonic()
        record = Record(destination="")
        server: socket.socket | None = None
        try:
            client.settimeout(HEAD_TIMEOUT)
            try:
                head, rest = read_head(client)
                record.bytes_up = len(head) + 4
                request = parse_head(head)
                record.method = request.method
                rule, host, explicit, target, body_size = self._decide(request, record)
                gate = self.gate
                why = gate(record.destination, rule) if gate is not None else ""
                if why:
                    raise Refused("403 Forbidden", why)
                server = self._connect(rule, host, explicit, request, target, record)
                # the origin may echo the injected header (a debug endpoint, an error page): code must not
                # read the secret there either, so it is blanked out of the answer on its way back
                blank = self.secret(rule.credential).encode("latin-1", "replace") \
                    if rule.credential and rule.inject else b""
                body = rest[:body_size]
                server.sendall(body)
                body_size -= len(body)
                record.bytes_up += len(body)
                while body_size > 0:
                    chunk = client.recv(min(65536, body_size))
                    if not chunk:
                        break
                    server.sendall(chunk)
                    body_size -= len(chunk)
                    record.bytes_up += len(chunk)
                self._copy_back(server, client, record, blank)
            except Refused as refused:
                if not record.destination and refused.destination is not None:  # a head refused whole
                    record.destination, record.method = str(refused.destination), refused.method
                record.refused = str(refused)
                record.status = int(refused.status.split()[0])
                _answer(client, refused.status, str(refused))
            except (OSError, ValueError) as exc:
                if record.status is None:
                    record.refused = record.refused or f"connection failed: {exc}"
                    _answer(client, "502 Bad Gateway", record.refused)
                    record.status = 502
        finally:
            for sock in (server, client):
                if sock is not None:
                    try:
                        sock.close()
                    except OSError:
                        pass
            record.duration = round(time.monotonic() - started, 6)
            if record.destination or record.method:
                try:
                    self.report(record)
                except Exception:  # a listener's bug must not break the request's end
                    pass

    def _decide(self, request: Request, record: Record) -> tuple[HttpRule, str, int | None, str, int]:
        if request.method == "CONNECT":
            record.destination = request.target
            raise Refused("403 Forbidden", "CONNECT (a tunnel the proxy cannot check) is not allowed: call "
                                           "http://HOST/PATH, and the proxy opens TLS itself for an https rule")
        parsed = urllib.parse.urlsplit(request.target)
        if parsed.scheme.lower() != "http" or not parsed.hostname or parsed.username is not None:
            raise Refused("400 Bad Request", "a request to the proxy is an absolute http:// URL without "
                                             "credentials (for an https API too: the proxy opens TLS)")
        host = parsed.hostname.lower().rstrip(".")
        explicit = parsed.port
        path = parsed.path or "/"
        record.destination = f"[{host}]:{explicit}" if ":" in host and explicit else \
            f"{host}:{explicit}" if explicit else host
        record.path = path
        rule = match(self.rules, host, explicit, request.method, path)
        record.rule = rule.url
        fields = {name.lower(): value for name, value in request.headers}
        if "transfer-encoding" in fields:
            raise Refused("411 Length Required", "a chunked body is not passed on: send it with Content-Length")
        length = fields.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_BODY:
            raise Refused("400 Bad Request", f"Content-Length {shown(length)} is not a size up to {MAX_BODY}")
        target = urllib.parse.urlunsplit(("", "", path, parsed.query, ""))
        return rule, host, explicit, target, int(length)

    def _connect(self, rule: HttpRule, host: str, explicit: int | None, request: Request, target: str,
                 record: Record) -> socket.socket:
        via = upstream.for_rule(rule)  # the host's own proxy, when it uses one for this origin
        address = None if via is not None else rule.host if is_address(rule.host) else resolve(rule)
        named = {t.strip().lower() for n, v in request.headers if n.lower() == "connection" for t in v.split(",")}
        drop = HOP_BY_HOP | named
        extra: list[tuple[str, str]] = []
        if rule.credential and rule.inject:
            header = rule.header_name or ""
            # Accept-Encoding too: a compressed answer would hide an echoed secret from the blanking
            drop |= CREDENTIAL_FIELDS | {header.lower(), "accept-encoding"}
            try:
                value = self.secret(rule.credential)
            except WorkbenchError as exc:  # not in the vault: the line names the secret and the fix
                raise Refused("502 Bad Gateway", exc.one_line()) from None
            extra.append((header, rule.inject.split(":", 1)[1].strip().replace("{secret}", value)))
            record.credential = rule.credential
        kept = [(n, v) for n, v in request.headers if n.lower() not in drop]
        default = rule.port == (443 if rule.scheme == "https" else 80)
        netloc = rule.host if default else f"{rule.host}:{rule.port}"
        if ":" in rule.host:
            netloc = f"[{rule.host}]" if default else f"[{rule.host}]:{rule.port}"
        absolute = via is not None and rule.scheme == "http"  # a plain-http request to the host's proxy
        lines = [f"{request.method} {'http://' + netloc if absolute else ''}{target} HTTP/1.1", f"Host: {netloc}",
                 *(f"{n}: {v}" for n, v in kept + extra), "Connection: close"]
        if absolute and via is not None and via.authorization:
            lines.insert(1, f"Proxy-Authorization: {via.authorization}")
        server = upstream.open_through(via, rule) if via is not None else \
            socket.create_connection((address, rule.port), timeout=CONNECT_TIMEOUT)
        try:
            if rule.scheme == "https":
                context = ssl.create_default_context(cafile=rule.ca_file)
                server = context.wrap_socket(server, server_hostname=rule.host)
            server.settimeout(IDLE_TIMEOUT)
            server.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        except ssl.SSLCertVerificationError as exc:
            server.close()
            raise Refused("502 Bad Gateway", f"the certificate of {rule.host}:{rule.port} does not verify: "
                                             f"{exc.verify_message} (a private CA: --ca-file PATH)") from None
        except ssl.SSLError as exc:
            server.close()
            raise Refused("502 Bad Gateway", f"TLS to {rule.host}:{rule.port} failed: {exc}") from None
        except BaseException:
            server.close()
            raise
        return server

    @staticmethod
    def _copy_back(server: socket.socket, client: socket.socket, record: Record, blank: bytes = b"") -> None:
        first = b""
        client.settimeout(IDLE_TIMEOUT)
        blanker = Blanker(blank)
        while data := server.recv(65536):
            if record.status is None:
                first += data
                line = first.split(b"\r\n", 1)[0].split(b" ")
                if len(line) >= 2 and line[1].isdigit():
                    record.status = int(line[1])
            data = blanker.feed(data)
            client.sendall(data)
            record.bytes_down += len(data)
        tail = blanker.flush()
        client.sendall(tail)
        record.bytes_down += len(tail)
        if record.status is None:
            record.status = 502 if not record.bytes_down else 0


class Blanker:
    """Replaces one byte string in a stream with as many '*' (lengths, Content-Length included, hold),
    across chunk boundaries: the last len-1 bytes of each chunk wait for the next."""

    def __init__(self, value: bytes):
        self.value, self.held = value, b""

    def feed(self, data: bytes) -> bytes:
        if not self.value:
            return data
        data = (self.held + data).replace(self.value, b"*" * len(self.value))
        keep = min(len(self.value) - 1, len(data))
        self.held = data[len(data) - keep:]
        return data[:len(data) - keep]

    def flush(self) -> bytes:
        held, self.held = self.held, b""
        return held


def _answer(client: socket.socket, status: str, message: str) -> None:
    """The proxy's own answer (it never holds a secret: reasons name rules and places only), then a short
    linger so the client reads it rather than a reset."""
    body = f"workbench network policy: {message}\n".encode()
    try:
        client.sendall(f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                       "Connection: close\r\n\r\n".encode() + body)
        client.shutdown(socket.SHUT_WR)
        client.settimeout(1.0)
        drained = 0
        while drained < (1 << 20) and (chunk := client.recv(65536)):
            drained += len(chunk)
    except OSError:
        pass


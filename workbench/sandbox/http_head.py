"""The egress proxy's request-head parser: one reading of an HTTP/1.1 proxy request, or a refusal.

Smuggling lives in the gap between two parsers, so this module is deliberately strict (`parse_head`) and
small enough to read whole; the proxy (`workbench.sandbox.egress`) decides where a parsed request may go
and forwards a head rebuilt from these fields, never the bytes as they came.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from workbench.sandbox.destinations import Destination, destination_of

MAX_HEAD = 32 * 1024  # a request line and its headers


class Refused(Exception):
    def __init__(self, status: str, message: str, destination: Destination | None = None, method: str = ""):
        super().__init__(message)
        self.status, self.destination, self.method = status, destination, method


TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token: a method, a header name
FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")  # visible characters, spaces, tabs, obs-text
REQUEST_TARGET = re.compile(r"[\x21-\x7e]+")  # visible ASCII: no space, no control character
HTTP_1 = re.compile(r"HTTP/1\.[01]")
BARE_LINE_END = re.compile(rb"\r(?!\n)|(?<!\r)\n")  # a CR or LF that is not part of a CRLF
BODY_FIELDS = ("content-length", "transfer-encoding")


def shown(text: str, limit: int = 60) -> str:
    """A piece of a request in a refusal: quoted, escaped, bounded, one line."""
    return ascii(text[:limit] + ("..." if len(text) > limit else ""))


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """The request head (up to the blank line) and whatever came after it.

    A head holding a bare CR or LF is handed back as soon as one arrives: it is refused whole (`parse_head`),
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


def named(method: str, target: str) -> Destination | None:
    """Where a request line points: CONNECT's authority (a tunnel, so TLS), or an absolute http:// URL."""
    if method == "CONNECT":
        return authority(target)
    if target.lower().startswith(("http://", "https://")):
        try:
            return destination_of(target)
        except ValueError:  # what the URL parser makes of garbage (`http://[::1/`)
            return None
    return None


def parse_head(head: bytes) -> Request:
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
        raise Refused("400 Bad Request", f"request target {shown(target)} holds a control or non-ASCII byte")
    destination = named(method, target)

    def refuse(why: str, status: str = "400 Bad Request") -> Refused:
        return Refused(status, why, destination, method)

    if not HTTP_1.fullmatch(version):
        if version.startswith("HTTP/"):
            raise refuse(f"{shown(version)} is not HTTP/1.x", "505 HTTP Version Not Supported")
        raise refuse(f"{shown(version)} is not an HTTP version")
    if BARE_LINE_END.search(head):
        raise refuse("a line in the request head ends in a bare CR or LF, not CRLF")
    headers: list[tuple[str, str]] = []
    for field in text.split("\r\n")[1:]:
        if field[:1] in (" ", "\t"):
            raise refuse("a header line starts with white space (obsolete line folding)")
        name, colon, value = field.partition(":")
        if not colon:
            raise refuse(f"header line {shown(field)} has no colon")
        if name != name.rstrip(" \t"):
            raise refuse(f"white space before the colon in header {shown(name.rstrip())}")
        if not TOKEN.fullmatch(name):
            raise refuse(f"header name {shown(name)} is not a token")
        value = value.strip(" \t")
        if not FIELD_VALUE.fullmatch(value):
            raise refuse(f"header {name} holds a control character")
        headers.append((name, value))
    for once in ("content-length", "host"):
        if sum(name.lower() == once for name, _ in headers) > 1:
            raise refuse(f"more than one {once.title()} header")
    return Request(method, target, version, tuple(headers), destination)


def authority(target: str) -> Destination:
    """CONNECT's target, `host:port` or `[v6]:port`."""
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host or not 0 < int(port) < 65536:
        raise Refused("400 Bad Request", f"CONNECT target {target!r} is not host:port")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return Destination(host.lower().rstrip("."), int(port), tls=True)

"""Where an install (or, later, user code) may connect: `Destination`s, read from source URLs and
`[install] allow_hosts` entries, and the host's own upstream proxy for each.

Shared by the egress proxy, the package managers' allowlists and the request-head parser.
"""

from __future__ import annotations

import base64
import urllib.parse
import urllib.request
from dataclasses import dataclass


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

"""The host's own proxy, when it uses one, for the policy proxy's allowed requests (as installs do).

A machine behind a corporate proxy reaches the outside only through it (`https_proxy`, `http_proxy`,
`no_proxy` in Workbench's environment, with credentials in the URL if needed: workbench.sandbox.destinations
reads them). An allowed request then goes through it: an https origin by a CONNECT tunnel the policy proxy
opens its own (verified) TLS in, a plain-http one in absolute form with the host proxy's credentials.
The origin's name is resolved by that proxy, not here: the address checks of `httpproxy.resolve` apply to
direct connections only (behind a proxy, this machine's loopback is not where a name can lead).
"""

from __future__ import annotations

import socket

from workbench.network.rules import HttpRule
from workbench.sandbox.destinations import Destination, Upstream, upstream_for
from workbench.sandbox.http_head import BARE_LINE_END, Refused, read_head, shown

CONNECT_TIMEOUT = 15.0


def for_rule(rule: HttpRule) -> Upstream | None:
    """The host's proxy for the rule's origin, or None (none set, or no_proxy names the origin)."""
    return upstream_for(Destination(rule.host, rule.port, tls=rule.scheme == "https"), rule.scheme)


def open_through(upstream: Upstream, rule: HttpRule) -> socket.socket:
    """A connection to the host's proxy; for an https origin, already tunnelled to it (TLS is the caller's)."""
    server = socket.create_connection((upstream.address.host, upstream.address.port), timeout=CONNECT_TIMEOUT)
    if rule.scheme != "https":
        return server
    place = str(Destination(rule.host, rule.port))
    auth = f"Proxy-Authorization: {upstream.authorization}\r\n" if upstream.authorization else ""
    try:
        server.sendall(f"CONNECT {place} HTTP/1.1\r\nHost: {place}\r\n{auth}\r\n".encode())
        head, rest = read_head(server)
        status = head.split(b"\r\n", 1)[0].split(b" ", 2)
        if BARE_LINE_END.search(head) or len(status) < 2 or status[1] != b"200" or rest:
            raise Refused("502 Bad Gateway", "the host's proxy refused the tunnel: " +
                          shown(head.split(b"\r\n", 1)[0].decode("latin-1")))
    except BaseException:
        server.close()
        raise
    return server

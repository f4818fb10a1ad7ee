"""A DNS answer that points an allowed name at this machine itself (its LAN address, an engine's bridge or
gateway address), not only at loopback, is refused before any connection: host services listen there."""

from __future__ import annotations

import socket

from tests.network.http_server import Origin
from workbench.network import httpproxy
from workbench.network.httpproxy import PolicyProxy, address_problem, is_own_address
from workbench.network.rules import http_rule


def own_address() -> str:
    """A non-loopback address of this machine (the one its default route leaves from)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.254", 9))  # no packet is sent: this only picks the outgoing address
        return probe.getsockname()[0]
    finally:
        probe.close()


def test_own_addresses_are_told_apart_from_others():
    mine = own_address()
    assert is_own_address(mine) and is_own_address("127.0.0.1")
    assert not is_own_address("203.0.113.9")
    assert "gateway" in address_problem(http_rule("http://api.example.com/"), mine)
    assert address_problem(http_rule(f"http://{mine}:8080/"), mine) == ""  # the rule names it: allowed


def test_an_allowed_name_resolving_to_the_host_never_connects(monkeypatch):
    origin = Origin()
    mine = own_address()
    # the origin listens on every address, so a connection through the trick would reach it
    origin.server.server_close()
    import threading
    from http.server import ThreadingHTTPServer

    origin.server = ThreadingHTTPServer(("0.0.0.0", 0), origin.server.RequestHandlerClass)
    origin.port = origin.server.server_address[1]
    threading.Thread(target=origin.server.serve_forever, daemon=True).start()
    monkeypatch.setattr(httpproxy.socket, "getaddrinfo",
                        lambda host, port, **kw: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (mine, port))])
    records = []
    proxy = PolicyProxy([http_rule(f"http://api.example.com:{origin.port}/")], lambda name: "", records.append)
    ours, theirs = socket.socketpair()
    proxy.handle(theirs)
    ours.sendall(f"GET http://api.example.com:{origin.port}/x HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    ours.settimeout(10)
    answer = b""
    while chunk := ours.recv(65536):
        answer += chunk
    proxy.drain()
    origin.close()
    assert answer.startswith(b"HTTP/1.1 403") and b"gateway" in answer, answer
    assert origin.seen == []
    assert records[0].status == 403 and "gateway" in records[0].refused

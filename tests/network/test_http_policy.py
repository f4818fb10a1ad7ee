"""The HTTP policy proxy on its own, with a real loopback origin: what a rule lets through (with the
credential injected and the code's own dropped), and the 403s for everything else, which never reach the
origin. The same proxy serves containers in tests/security/test_http_egress.py."""

from __future__ import annotations

import socket

import pytest

from tests.network.http_server import Origin
from workbench.network.httpproxy import PolicyProxy, address_problem
from workbench.network.rules import http_rule

SECRET = "tok-" + "9f1e77c2"


@pytest.fixture
def origin():
    found = Origin()
    yield found
    found.close()


def proxy_for(origin, *rules):
    records = []
    proxy = PolicyProxy(rules or (http_rule(f"http://127.0.0.1:{origin.port}/ok/", credential="api",
                                            inject="Authorization: Bearer {secret}"),),
                        {"api": SECRET}.__getitem__, records.append)
    return proxy, records


def ask(proxy, head: bytes) -> bytes:
    """Send one proxy request over a socketpair the proxy serves, as the relay hands it over."""
    ours, theirs = socket.socketpair()
    proxy.handle(theirs)
    ours.sendall(head)
    ours.settimeout(10)
    data = b""
    while chunk := ours.recv(65536):
        data += chunk
    ours.close()
    proxy.drain()
    return data


def get(port, path, method="GET", extra=b""):
    return (f"{method} http://127.0.0.1:{port}{path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n").encode() \
        + extra + b"\r\n"


def test_an_allowed_get_reaches_the_origin_with_the_credential_and_not_the_codes(origin):
    proxy, records = proxy_for(origin)
    answer = ask(proxy, get(origin.port, "/ok/items?q=1", extra=b"Authorization: Basic c3B5\r\nCookie: a=b\r\n"))
    assert answer.startswith(b"HTTP/1.0 200") and b"origin-ok GET /ok/items?q=1" in answer
    [seen] = origin.seen
    assert seen["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert "Cookie" not in seen["headers"]
    [record] = records
    assert (record.status, record.path, record.credential, record.refused) == (200, "/ok/items", "api", "")
    assert record.bytes_down == len(answer) and record.bytes_up > 0 and record.rule.endswith("/ok/")
    assert SECRET not in repr(record)


@pytest.mark.parametrize("head, why", [
    (lambda p: get(p, "/other"), "outside the allowed paths"),
    (lambda p: get(p, "/ok/../admin"), "dot segments"),
    (lambda p: get(p, "/ok/%2e%2e/admin"), "dot segments"),
    (lambda p: get(p, "/ok/x", "POST", b"Content-Length: 2\r\n") + b"hi", "POST is not allowed"),
    (lambda p: get(p + 1, "/ok/x"), "is not in the project's network policy"),
    (lambda p: get(p, "/ok/x").replace(b"127.0.0.1", b"example.com", 1), "is not in the project"),
    (lambda p: f"CONNECT 127.0.0.1:{p} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), "CONNECT"),
    (lambda p: get(p, "/ok/x", extra=b"Transfer-Encoding: chunked\r\n"), "chunked"),
    (lambda p: get(p, "/ok/x", extra=b"Content-Length: 1\r\nContent-Length: 2\r\n"), "more than one"),
])
def test_everything_else_is_refused_in_one_line_and_never_reaches_the_origin(origin, head, why):
    proxy, records = proxy_for(origin)
    answer = ask(proxy, head(origin.port))
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.split(b" ")[1] in (b"403", b"400", b"411"), answer
    assert why in body.decode() and body.decode().count("\n") == 1
    assert origin.seen == []
    assert SECRET not in answer.decode()
    [record] = records  # every refusal is recorded, a head refused whole too
    assert record.refused and record.status >= 400 and record.destination


def test_a_post_passes_only_under_a_rule_that_allows_it_with_its_body_exactly(origin):
    proxy, _ = proxy_for(origin, http_rule(f"http://127.0.0.1:{origin.port}/api/", methods="POST"))
    answer = ask(proxy, get(origin.port, "/api/x", "POST", b"Content-Length: 5\r\n") + b"hello" + b"GET / HTTP/1.1")
    assert b"200" in answer.split(b"\r\n")[0]
    assert [(s["method"], s["body"]) for s in origin.seen] == [("POST", b"hello")]  # the smuggled rest: not


def test_a_name_resolving_to_loopback_or_metadata_is_refused_unless_the_rule_names_the_address():
    named = http_rule("https://api.example.com/")
    assert "loopback" in address_problem(named, "127.0.0.1")
    assert "metadata" in address_problem(named, "169.254.169.254")
    assert "link-local" in address_problem(named, "fe80::1")
    assert address_problem(named, "93.184.216.34") == ""
    assert address_problem(http_rule("http://127.0.0.1:8080/"), "127.0.0.1") == ""


def test_a_dns_answer_turning_an_allowed_name_into_loopback_never_connects(origin, monkeypatch):
    # a resolver that answers the allowed name with the host's loopback (DNS rebinding)
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: real("127.0.0.1", *a, **k)
                        if host == "api.rebind.test" else real(host, *a, **k))
    proxy, records = proxy_for(origin, http_rule(f"http://api.rebind.test:{origin.port}/"))
    answer = ask(proxy, get(origin.port, "/x").replace(b"127.0.0.1", b"api.rebind.test", 1))
    assert b" 403 " in answer.split(b"\r\n")[0] and b"resolved to 127.0.0.1 (loopback)" in answer
    assert origin.seen == [] and records[-1].refused


def test_a_missing_secret_is_one_line_naming_the_command(origin):
    proxy = PolicyProxy([http_rule(f"http://127.0.0.1:{origin.port}/", credential="nope",
                                   inject="X-Key: {secret}")], _missing, lambda r: None)
    answer = ask(proxy, get(origin.port, "/x"))
    assert b" 502 " in answer.split(b"\r\n")[0] and b"workbench secret set nope" in answer
    assert origin.seen == []


def _missing(name):
    from workbench.network.secrets import get_secret

    return get_secret(name)

"""Behind the host's own proxy (https_proxy / http_proxy, as a corporate network has): an allowed request
goes through it, plain http in absolute form, https by a tunnel the policy proxy opens verified TLS in. The
host's proxy here is a real one: Workbench's install egress proxy on loopback TCP, allowing the origin."""

from __future__ import annotations

from tests.network.http_server import Origin
from tests.network.test_http_access import tls_origin  # noqa: F401 (the fixture)
from tests.network.test_http_policy import ask, get
from workbench.network.httpproxy import PolicyProxy
from workbench.network.rules import http_rule
from workbench.sandbox.destinations import Destination
from workbench.sandbox.egress import EgressProxy


def host_proxy(monkeypatch, allowed):
    proxy = EgressProxy(allowed, use_host_proxy=False)
    port = proxy.listen_tcp()
    for name in ("http_proxy", "https_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{port}")
    for name in ("no_proxy", "NO_PROXY", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return proxy


def test_a_plain_http_origin_is_reached_through_the_hosts_proxy(monkeypatch):
    origin = Origin()
    try:
        upstream = host_proxy(monkeypatch, [Destination("127.0.0.1", origin.port, tls=False)])
        proxy = PolicyProxy([http_rule(f"http://127.0.0.1:{origin.port}/ok/", credential="k",
                                       inject="X-Key: {secret}")], {"k": "up-secret-1"}.__getitem__, lambda r: None)
        answer = ask(proxy, get(origin.port, "/ok/x"))
        assert b"origin-ok GET /ok/x" in answer
        assert origin.seen[0]["headers"]["X-Key"] == "up-secret-1"
        assert [(str(a.destination), a.method, a.allowed) for a in upstream.attempts] == [
            (f"127.0.0.1:{origin.port}", "GET", True)]
        upstream.close()
    finally:
        origin.close()


def test_an_https_origin_is_tunnelled_through_the_hosts_proxy_with_verified_tls(monkeypatch, tls_origin):  # noqa: F811
    origin, ca = tls_origin
    upstream = host_proxy(monkeypatch, [Destination("127.0.0.1", origin.port, tls=True)])
    proxy = PolicyProxy([http_rule(f"https://127.0.0.1:{origin.port}/", ca_file=ca)], lambda n: "", lambda r: None)
    answer = ask(proxy, get(origin.port, "/t"))
    assert b"origin-ok GET /t" in answer
    assert [(a.method, a.allowed) for a in upstream.attempts] == [("CONNECT", True)]
    upstream.close()


def test_a_tunnel_the_hosts_proxy_refuses_is_one_line(monkeypatch, tls_origin):  # noqa: F811
    origin, ca = tls_origin
    upstream = host_proxy(monkeypatch, [])
    proxy = PolicyProxy([http_rule(f"https://127.0.0.1:{origin.port}/", ca_file=ca)], lambda n: "", lambda r: None)
    answer = ask(proxy, get(origin.port, "/t"))
    assert b" 502 " in answer.split(b"\r\n")[0] and b"the host's proxy refused the tunnel" in answer
    assert origin.seen == []
    upstream.close()


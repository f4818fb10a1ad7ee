"""The session side of the HTTP policy: the proxy opens (verified) TLS to an https origin the code called
over plain http, and the project's socket keeps serving while two sessions of it come and go."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from http.server import ThreadingHTTPServer

import pytest

from tests.network.http_server import Origin
from tests.network.test_http_policy import ask, get
from workbench.network.http_access import HttpAccess
from workbench.network.httpproxy import PolicyProxy
from workbench.network.rules import http_rule


@pytest.fixture
def tls_origin(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    origin = Origin()
    origin.server.server_close()
    origin.server.shutdown()
    server = ThreadingHTTPServer(("127.0.0.1", 0), origin.server.RequestHandlerClass)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    origin.server, origin.port = server, server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield origin, str(cert)
    origin.close()


def test_an_https_rule_is_reached_over_verified_tls_with_the_credential(tls_origin):
    origin, ca = tls_origin
    records = []
    proxy = PolicyProxy([http_rule(f"https://127.0.0.1:{origin.port}/v2/", credential="k",
                                   inject="Authorization: Token {secret}", ca_file=ca)],
                        {"k": "tls-secret-1"}.__getitem__, records.append)
    answer = ask(proxy, get(origin.port, "/v2/items"))  # plain http from the code, TLS from the proxy
    assert b"origin-ok GET /v2/items" in answer
    assert origin.seen[0]["headers"]["Authorization"] == "Token tls-secret-1"
    assert records[-1].status == 200


def test_an_origin_whose_certificate_does_not_verify_is_a_502_and_gets_nothing(tls_origin):
    origin, _ca = tls_origin
    proxy = PolicyProxy([http_rule(f"https://127.0.0.1:{origin.port}/", credential="k",
                                   inject="Authorization: Token {secret}")],
                        {"k": "tls-secret-1"}.__getitem__, lambda r: None)
    answer = ask(proxy, get(origin.port, "/x"))  # the system store does not know the self-signed cert
    assert b" 502 " in answer.split(b"\r\n")[0] and b"does not verify: self-signed certificate" in answer
    assert b"tls-secret-1" not in answer and origin.seen == []


def test_the_socket_serves_again_when_a_second_session_of_the_project_closes(tmp_path):
    origin = Origin()
    try:
        rules = [http_rule(f"http://127.0.0.1:{origin.port}/")]
        first = HttpAccess.open(tmp_path, tmp_path, lambda event: None, rules=rules)
        second = HttpAccess.open(tmp_path, tmp_path, lambda event: None, rules=rules)
        second.close()  # removes its socket: the first binds again
        path = tmp_path / "http" / "proxy.sock"
        deadline = time.monotonic() + 5
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        client = socket.socket(socket.AF_UNIX)
        client.connect(str(path))
        client.sendall(get(origin.port, "/again"))
        data = b""
        while chunk := client.recv(65536):
            data += chunk
        client.close()
        assert b"origin-ok GET /again" in data
        first.close()
        assert not path.exists()
    finally:
        origin.close()

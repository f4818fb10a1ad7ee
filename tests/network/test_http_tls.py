"""An https:// rule: code speaks plain http to the proxy and the proxy opens TLS to the origin itself, with
the certificate verified (here against the CA file the rule names; a real loopback TLS server with a CA and
a server certificate made for the test by openssl). A certificate the CA did not sign, or one for another
name, is a 502 naming the failure, and nothing is sent: the credential never goes to an unverified peer."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import need
from workbench.network.httpproxy import PolicyProxy
from workbench.network.rules import http_rule

SECRET = "tls-" + "5ec2e7a9b1"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    need(shutil.which("openssl") is not None, "openssl (Debian's openssl package)")
    folder = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                "-days", "2", "-subj", f"/CN=workbench test {ca}", cwd=folder)
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1", cwd=folder)
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "san.cnf", cwd=folder)
    return folder


@pytest.fixture(scope="module")
def tls_origin(pki):
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append((self.path, self.headers.get("Authorization"), self.headers.get("Host")))
            body = b"tls-ok\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki / "server.pem", pki / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


def get(proxy, port, path):
    ours, theirs = socket.socketpair()
    proxy.handle(theirs)
    ours.sendall(f"GET http://127.0.0.1:{port}{path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                 "Authorization: Basic planted\r\n\r\n".encode())
    ours.settimeout(20)
    data = b""
    while chunk := ours.recv(65536):
        data += chunk
    proxy.drain()
    return data


def test_code_calls_http_and_the_proxy_speaks_verified_tls_with_the_credential(pki, tls_origin):
    port, seen = tls_origin
    seen.clear()
    rule = http_rule(f"https://127.0.0.1:{port}/v2/", credential="api", inject="Authorization: Bearer {secret}",
                     ca_file=str(pki / "ca.pem"))
    records = []
    answer = get(PolicyProxy([rule], {"api": SECRET}.__getitem__, records.append), port, "/v2/items")
    assert answer.startswith(b"HTTP/1.0 200") and answer.endswith(b"tls-ok\n"), answer
    assert seen == [("/v2/items", f"Bearer {SECRET}", f"127.0.0.1:{port}")]
    assert records[0].status == 200 and records[0].credential == "api" and records[0].rule.startswith("https://")


@pytest.mark.parametrize("ca", ["other-ca.pem", None])
def test_an_origin_the_ca_did_not_sign_gets_nothing(pki, tls_origin, ca):
    port, seen = tls_origin
    seen.clear()
    rule = http_rule(f"https://127.0.0.1:{port}/v2/", credential="api", inject="Authorization: Bearer {secret}",
                     ca_file=str(pki / ca) if ca else None)  # None: the system store, which knows no test CA
    records = []
    answer = get(PolicyProxy([rule], {"api": SECRET}.__getitem__, records.append), port, "/v2/items")
    assert answer.startswith(b"HTTP/1.1 502") and b"does not verify" in answer, answer
    assert seen == []  # the handshake failed: no request, no credential went out
    assert records[0].status == 502 and "does not verify" in records[0].refused

"""Layer 4 for the install step: an install container has no network, and its only way out (the egress proxy
behind a mounted Unix socket) reaches the configured sources' host:port and nothing else.

Two attackers: a script run in an install container exactly as pip, apt or R would be (same spec, same
relay, same proxy), probing every way out it can think of; and a package whose build script (an sdist's
PEP 517 backend, which pip runs during the install) tries to send a secret out.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.sandbox import repos
from tests.sandbox.conftest import Recorder, run
from workbench import trust

pytestmark = pytest.mark.engine

PROBES = textwrap.dedent("""
    import json, os, socket, sys, urllib.request
    allowed, other, host_ip = sys.argv[1], sys.argv[2], sys.argv[3]
    found = {"interfaces": sorted(os.listdir("/sys/class/net"))}

    def proxy(request):
        # Speak to the relay on the container's loopback, as pip and apt do.
        with socket.create_connection(("127.0.0.1", 3128), timeout=10) as sock:
            sock.sendall(request.encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return data.split(b"\\r\\n", 1)[0].decode()

    found["get allowed"] = proxy(f"GET http://{allowed}/ok HTTP/1.1\\r\\n\\r\\n")
    found["get other port"] = proxy(f"GET http://{other}/leak HTTP/1.1\\r\\n\\r\\n")
    found["connect other port"] = proxy(f"CONNECT {other} HTTP/1.1\\r\\n\\r\\n")
    found["connect internet"] = proxy("CONNECT 1.1.1.1:443 HTTP/1.1\\r\\n\\r\\n")
    found["post allowed"] = proxy(f"POST http://{allowed}/up HTTP/1.1\\r\\nContent-Length: 2\\r\\n\\r\\nhi")
    found["fronted"] = proxy(f"GET http://{allowed}/front HTTP/1.1\\r\\nHost: {other}\\r\\n\\r\\n")
    # The proxy's socket itself, without the relay: the same gate.
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect("/mnt/workbench-egress/proxy.sock")
        sock.sendall(f"CONNECT {other} HTTP/1.1\\r\\n\\r\\n".encode())
        found["socket other port"] = sock.recv(100).split(b"\\r\\n", 1)[0].decode()
    for name, (host, port) in {"host address": (host_ip, int(other.rsplit(":", 1)[1])),
                               "podman gateway": ("10.88.0.1", 80), "internet": ("1.1.1.1", 53),
                               "host name": ("host.containers.internal", 80)}.items():
        if not host:
            continue
        try:
            socket.create_connection((host, port), timeout=3).close()
            found["direct " + name] = "reached"
        except OSError as exc:
            found["direct " + name] = type(exc).__name__
    try:
        socket.getaddrinfo("pypi.org", 443)
        found["dns"] = "resolved"
    except OSError as exc:
        found["dns"] = type(exc).__name__
    print(json.dumps(found))
""")


@pytest.fixture
def two_origins(tmp_path):
    """The allowed source (a loopback index) and another service on this machine, on every address."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "ok").write_text("fine\n")
    allowed = repos.Served(tmp_path / "a")
    other = repos.Served(tmp_path / "b", host="0.0.0.0")
    yield allowed, other
    allowed.close()
    other.close()


def test_an_install_container_reaches_its_source_and_nothing_else(engine_ready, module_project, two_origins):
    from workbench.sandbox import Sandbox
    from workbench.sandbox.egress import Destination
    from workbench.sandbox.managers.install_container import run_container

    allowed, other = two_origins
    host_ip = repos.host_address() or ""
    with Sandbox.open(module_project) as box:
        done = run_container(box, image=box.image,
                             command=["python3", "-c", PROBES, f"127.0.0.1:{allowed.port}",
                                       f"127.0.0.1:{other.port}", host_ip],
                             user=box.identity.user, allowed=frozenset({Destination("127.0.0.1", allowed.port)}),
                             mounts={}, workspace=False, hardened=True, progress=None)
        assert done.exit_code == 0, done.output
        found = json.loads(done.output.strip().splitlines()[-1])
        assert found["interfaces"] == ["lo"]
        assert found["get allowed"].startswith("HTTP/1.0 200")
        assert found["fronted"].startswith("HTTP/1.0 404")  # asked of the allowed origin, whatever Host said
        for refused in ("get other port", "connect other port", "connect internet", "socket other port"):
            assert found[refused] == "HTTP/1.1 403 Forbidden", (refused, found)
        assert found["post allowed"].startswith("HTTP/1.1 405")
        for key in [k for k in found if k.startswith("direct ")]:
            assert found[key] != "reached", (key, found)
        assert found["dns"] != "resolved"
        assert other.paths == []  # nothing ever arrived there
        assert set(allowed.paths) == {"/front", "/ok"}  # (a 404 is logged twice)
        refusals = {(a.method, str(a.destination)) for a in done.attempts if not a.allowed}
        assert ("CONNECT", "1.1.1.1:443") in refusals and ("GET", f"127.0.0.1:{other.port}") in refusals
        still, _ = run(box, "python", "print('still fine')")
        assert still.ok and still.stdout.kept == b"still fine\n"


STRICT_PROBES = textwrap.dedent("""
    import json, socket, sys
    mirror, tls_source = sys.argv[1], sys.argv[2]
    found = {}

    def ask(request, path=None):
        # Through the relay on the container's loopback, as pip and apt do; or the proxy's socket itself.
        if path:
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(path)
        else:
            sock = socket.create_connection(("127.0.0.1", 3128), timeout=10)
        with sock:
            sock.settimeout(10)
            sock.sendall(request.encode("latin-1"))
            data = b""
            try:
                while chunk := sock.recv(65536):
                    data += chunk
            except OSError as exc:  # (what came before the error still counts)
                data += (" [%s]" % type(exc).__name__).encode()
        return data.split(b"\\r\\n", 1)[0].decode("latin-1")

    upload = "POST /upload HTTP/1.1\\r\\nHost: %s\\r\\nContent-Length: 6\\r\\n\\r\\nsecret" % mirror
    found["get mirror"] = ask("GET http://%s/ok HTTP/1.1\\r\\n\\r\\n" % mirror)
    found["connect mirror"] = ask("CONNECT %s HTTP/1.1\\r\\nHost: %s\\r\\n\\r\\n" % (mirror, mirror) + upload)
    found["connect mirror, socket"] = ask("CONNECT %s HTTP/1.1\\r\\n\\r\\n" % mirror + upload,
                                          "/mnt/workbench-egress/proxy.sock")
    found["connect tls source"] = ask("CONNECT %s HTTP/1.1\\r\\n\\r\\nGET /through-the-tunnel HTTP/1.0\\r\\n\\r\\n"
                                      % tls_source)
    # Each behind an allowed GET: a second request or a body that a lenient server would read as one. What
    # follows the request line starts with its line ending (CRLF, or a bare LF for a client that uses LF only).
    smuggled = "POST /smuggled HTTP/1.1\\nHost: %s\\nContent-Length: 6\\n\\nsecret" % mirror
    for name, (method, after) in {
        "bare lf in a value": ("GET", "\\r\\nX-A: a\\n\\n" + smuggled),
        "bare cr in a value": ("GET", "\\r\\nX-A: a\\r\\r" + smuggled),
        "lf line endings": ("GET", "\\nHost: %s\\n\\n" % mirror + smuggled),
        "obs-fold": ("GET", "\\r\\nX-A: a\\r\\n Transfer-Encoding: chunked"),
        "no colon": ("GET", "\\r\\nX-A: a\\r\\n" + smuggled.replace("\\n", "\\r\\n")),
        "space before colon": ("GET", "\\r\\nTransfer-Encoding : chunked"),
        "duplicate content-length": ("GET", "\\r\\nContent-Length: 0\\r\\nContent-Length: 6"),
        "transfer-encoding on get": ("GET", "\\r\\nTransfer-Encoding: chunked"),
        "content-length on head": ("HEAD", "\\r\\nContent-Length: 6"),
        "control character": ("GET", "\\r\\nX-A: a\\x00b"),
    }.items():
        found["smuggle " + name] = ask("%s http://%s/ok HTTP/1.1" % (method, mirror) + after + "\\r\\n\\r\\n")
    print(json.dumps(found))
""")


class Upstream:
    """A plain HTTP/1.1 server on loopback that records every connection and every byte its parser read. Lenient,
    as most servers are (a bare LF ends a line, a connection stays open for a next request), so a request
    smuggled past the proxy would show in `requests`."""

    def __init__(self):
        import http.server
        import threading

        self.requests: list[tuple[str, str]] = []
        self.received = bytearray()
        self.connections = 0
        upstream = self

        class Tee:
            def __init__(self, file):
                self.file = file

            def readline(self, *args):
                data = self.file.readline(*args)
                upstream.received.extend(data)
                return data

            def read(self, *args):
                data = self.file.read(*args)
                upstream.received.extend(data)
                return data

            def __getattr__(self, name):
                return getattr(self.file, name)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                upstream.connections += 1
                self.rfile = Tee(self.rfile)

            def answer(self):
                upstream.requests.append((self.command, self.path))
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"ok\n")

            do_GET = do_POST = do_HEAD = answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.timeout(300)
def test_no_tunnel_to_a_plain_http_mirror_and_no_smuggled_request(engine_ready, module_project):
    """From inside an install container: a CONNECT to an allowed plain-http mirror (a raw tunnel that would carry a
    POST body there) is refused, and requests smuggled behind an allowed GET by a head that is not clean HTTP/1.1
    are refused whole. The mirror receives only the one clean GET; each refusal is recorded against it."""
    from workbench.sandbox import Sandbox
    from workbench.sandbox.egress import Destination
    from workbench.sandbox.managers.install_container import run_container

    mirror, tls_source = Upstream(), Upstream()
    try:
        with Sandbox.open(module_project) as box:
            allowed = frozenset({Destination("127.0.0.1", mirror.port, tls=False),  # http://127.0.0.1:PORT
                                 Destination("127.0.0.1", tls_source.port, tls=True)})  # as an https source
            done = run_container(box, image=box.image,
                                 command=["python3", "-c", STRICT_PROBES, f"127.0.0.1:{mirror.port}",
                                           f"127.0.0.1:{tls_source.port}"],
                                 user=box.identity.user, allowed=allowed, mounts={}, workspace=False,
                                 hardened=True, progress=None)
            still, _ = run(box, "python", "print('still fine')")
    finally:
        mirror.close()
        tls_source.close()
    assert done.exit_code == 0, done.output
    found = json.loads(done.output.strip().splitlines()[-1])
    assert found["get mirror"] == "HTTP/1.1 200 OK"  # the mirror itself is allowed, by GET
    assert found["connect tls source"] == "HTTP/1.1 200 Connection established"  # and tunnels to TLS sources
    assert found["connect mirror"] == found["connect mirror, socket"] == "HTTP/1.1 403 Forbidden", found
    smuggles = {name: status for name, status in found.items() if name.startswith("smuggle ")}
    assert len(smuggles) == 10 and set(smuggles.values()) == {"HTTP/1.1 400 Bad Request"}, smuggles
    # What arrived upstream: the one clean GET on one connection; no tunnel, no smuggled request, no body.
    assert mirror.requests == [("GET", "/ok")] and mirror.connections == 1, mirror.requests
    assert b"smuggled" not in mirror.received and b"secret" not in mirror.received and b"upload" not in mirror.received
    assert tls_source.requests == [("GET", "/through-the-tunnel")]
    # The record says so: each refusal against the mirror, with why.
    place = f"127.0.0.1:{mirror.port}"
    refused = [a for a in done.attempts if not a.allowed]
    assert all(str(a.destination) == place for a in refused), refused
    tunnels = [a for a in refused if a.method == "CONNECT"]
    assert len(tunnels) == 2 and all("plain-http source" in a.detail for a in tunnels)
    assert sorted(a.method for a in refused if a.method != "CONNECT") == ["GET"] * 9 + ["HEAD"]
    assert sorted(str(a.destination) for a in done.attempts if a.allowed) == sorted(
        [place, f"127.0.0.1:{tls_source.port}"])
    assert still.ok and still.stdout.kept == b"still fine\n"


def test_a_build_script_cannot_send_a_secret_out(engine_ready, project, tmp_path):
    """pip installs an sdist from the configured index; its build runs with the proxy as its only way out."""
    from workbench.sandbox import Sandbox

    (tmp_path / "exfil").mkdir()
    exfil = repos.Served(tmp_path / "exfil", host="0.0.0.0")
    targets = {"loopback": ("127.0.0.1", exfil.port)}
    if repos.host_address():
        targets["host address"] = (repos.host_address(), exfil.port)
    root = tmp_path / "index"
    repos.hostile_sdist(root / "files", targets)
    served = repos.Served(repos.simple_index(root, {"wbevil": root / "files" / "wbevil-1.0.tar.gz"}))
    (project.root / ".workbench" / "config.toml").write_text(f'[install]\npip_index_url = "{served.url}/simple"\n')
    trust.trust(project)  # edited by hand, then trusted
    recorder = Recorder()
    try:
        with Sandbox.open(project, bus=recorder.bus) as box:
            result = box.install("pip", ["wbevil"])
            check, _ = run(box, "python", "import wbevil; print(wbevil.VALUE)")
    finally:
        served.close()
        exfil.close()
    assert result.ok, result.output
    assert check.stdout.kept == b"built\n", check.stderr.text()  # the build itself went ahead
    found = json.loads((project.workspace / "wbevil-attack.json").read_text())
    assert found["interfaces"] == ["lo"] and found["dns"].startswith("failed")
    for name in targets:
        assert found[f"direct {name}"].startswith("failed"), found
        assert "403" in found[f"proxy {name}"], found
    assert exfil.paths == []  # the secret never arrived
    assert f"127.0.0.1:{exfil.port}" in result.refused
    assert result.reached == (f"127.0.0.1:{served.port}",)
    (event,) = recorder.of("install.egress")
    assert f"127.0.0.1:{exfil.port}" in event.payload["refused"]
    assert event.payload["reached"] == [f"127.0.0.1:{served.port}"]


def test_the_proxy_socket_is_gone_after_the_install(engine_ready, project, tmp_path):
    """Nothing of the way out outlives the install: the socket folder is removed, the proxy stops."""
    import glob
    import tempfile

    from workbench.sandbox import Sandbox

    before = set(glob.glob(f"{tempfile.gettempdir()}/workbench-egress-*"))
    served = repos.Served(repos.simple_index(tmp_path / "index"))
    (project.root / ".workbench" / "config.toml").write_text(f'[install]\npip_index_url = "{served.url}/simple"\n')
    trust.trust(project)  # edited by hand, then trusted
    try:
        with Sandbox.open(project) as box:
            assert box.install("pip", ["wbdemo-b"]).ok
    finally:
        served.close()
    assert set(glob.glob(f"{tempfile.gettempdir()}/workbench-egress-*")) == before


def test_without_the_proxy_socket_the_install_says_why(engine_ready, module_project, monkeypatch):
    """An engine that cannot see the socket (a VM, a remote machine): one line saying so, not a bare error."""
    from workbench.sandbox import Sandbox, egress
    from workbench.sandbox.egress import Destination
    from workbench.sandbox.managers.install_container import run_container

    real = egress.relay_command
    monkeypatch.setattr(egress, "relay_command",
                        lambda command: [*real(command)[:4], "/nonexistent/proxy.sock", *real(command)[5:]])
    fetch = "import urllib.request\ntry:\n urllib.request.urlopen('http://127.0.0.1:9/', timeout=5)\n" \
            "except Exception as exc:\n print('failed', type(exc).__name__)"
    with Sandbox.open(module_project) as box:
        done = run_container(box, image=box.image, command=["python3", "-c", fetch], user=box.identity.user,
                             allowed=frozenset({Destination("127.0.0.1", 9)}), mounts={}, workspace=False,
                             hardened=True, progress=None)
    assert "failed" in done.output
    assert done.output.count("cannot reach Workbench's egress proxy") == 1, done.output


def test_only_the_container_user_can_reach_the_proxy_socket():
    """As root (a rootful engine run by root, as in CI), the socket folder is handed to the sandbox uid alone;
    as this user, it stays ours alone."""
    import os
    import shutil
    import socket
    import stat
    import subprocess
    import tempfile
    from pathlib import Path

    from workbench.sandbox.managers.install_container import open_to

    base = Path(tempfile.mkdtemp(prefix="wb-egress-test-", dir="/tmp"))
    base.chmod(0o755)  # (pytest's own tmp folders are closed to other users)
    folder = base / "egress"
    folder.mkdir()
    path = folder / "proxy.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(1)
    os.chmod(path, 0o600)
    try:
        if os.getuid() != 0:
            open_to(os.getuid(), str(folder), str(path))
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
            return
        open_to(10999, str(folder), str(path))
        assert (folder.stat().st_uid, stat.S_IMODE(folder.stat().st_mode)) == (10999, 0o700)
        assert (path.stat().st_uid, stat.S_IMODE(path.stat().st_mode)) == (10999, 0o600)
        probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\ntry:\n s.connect(sys.argv[1]); print('in')\n"
                 "except OSError as e:\n print(type(e).__name__)")
        python = "/usr/bin/python3"  # (not a shim under root's home, which other users cannot enter)
        other = subprocess.run(["setpriv", "--reuid=10998", "--regid=10998", "--clear-groups", python, "-c",
                                probe, str(path)], capture_output=True, text=True, timeout=30)
        owner = subprocess.run(["setpriv", "--reuid=10999", "--regid=10999", "--clear-groups", python, "-c",
                                probe, str(path)], capture_output=True, text=True, timeout=30)
        assert other.stdout.strip() == "PermissionError", other.stderr
        assert owner.stdout.strip() == "in", owner.stderr
    finally:
        listener.close()
        shutil.rmtree(base, ignore_errors=True)


def test_no_room_for_the_proxy_socket_is_one_line_and_starts_no_container(engine_ready, project, monkeypatch,
                                                                          tmp_path):
    """A full or read-only temporary folder: the install stops before any container, saying where."""
    import tempfile

    from workbench.sandbox import Sandbox
    from workbench.sandbox.errors import InstallFailed
    from workbench.sandbox.managers import MANAGERS

    def no_room(*args, **kwargs):
        raise OSError(28, "No space left on device")

    (project.root / ".workbench" / "config.toml").write_text('[install]\npip_index_url = "https://pypi.org/simple"\n')
    trust.trust(project)  # edited by hand, then trusted
    with Sandbox.open(project) as box:
        created = []
        monkeypatch.setattr(box.engine, "create_container", lambda spec: created.append(spec))
        monkeypatch.setattr(tempfile, "mkdtemp", no_room)
        monkeypatch.setattr(MANAGERS.get("pip"), "preflight", lambda settings: None)
        with pytest.raises(InstallFailed) as caught:
            box.install("pip", ["six"])
    line = caught.value.one_line()
    assert "No space left on device" in line and "check free space" in line and "\n" not in line
    assert created == []


def test_the_cli_says_what_the_install_was_refused(engine_ready, project, tmp_path, workbench_cmd):
    import subprocess

    (tmp_path / "exfil").mkdir()
    exfil = repos.Served(tmp_path / "exfil")
    root = tmp_path / "index"
    repos.hostile_sdist(root / "files", {"loopback": ("127.0.0.1", exfil.port)})
    served = repos.Served(repos.simple_index(root, {"wbevil": root / "files" / "wbevil-1.0.tar.gz"}))
    (project.root / ".workbench" / "config.toml").write_text(f'[install]\npip_index_url = "{served.url}/simple"\n')
    trust.trust(project)  # edited by hand, then trusted
    try:
        done = subprocess.run([*workbench_cmd, "install", "-p", str(project.root), "--manager", "pip", "wbevil"],
                              capture_output=True, text=True, timeout=300)
    finally:
        served.close()
        exfil.close()
    assert done.returncode == 0, done.stderr
    assert "installed wbevil 1.0 (pip)" in done.stdout
    assert f"workbench: the install was refused 127.0.0.1:{exfil.port}: only downloads from the install sources" \
        in done.stderr
    assert exfil.paths == []

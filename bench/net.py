"""What the governed network costs: the HTTP policy proxy and PgBouncer, each beside its direct baseline, in one run.

    .venv/bin/python bench/net.py [--requests 200] [--queries 200] [--no-pg]

HTTP rows: a real loopback origin (http.server, threaded, small JSON answer); each request a fresh connection,
since the proxy serves one request per connection, timed from connect to the last byte of the answer:

  direct        client -> origin over loopback TCP
  proxy         client -> the session's policy proxy socket (`HttpAccess`, as the container's relay hands
                it a connection) -> origin: rule match, head rebuilt, net.request emitted
  proxy+inject  the same, under a rule with a credential: the header made from the vault's secret (read
                once, as a session does), the code's own Authorization dropped, the answer scanned for the
                secret

PostgreSQL rows (bench/net_pg.py, needs Debian's postgresql and pgbouncer): `select 1` round trips on one
connection through the relay and PgBouncer vs direct. Printed: p50 / p95 in ms and the ratios to direct.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workbench.network.http_access import SOCKET_NAME, HttpAccess  # noqa: E402
from workbench.network.rules import http_rule  # noqa: E402

BODY = b'{"items": [1, 2, 3], "ok": true}\n'


class Origin(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(BODY)


def fetch(sock: socket.socket, head: bytes) -> bytes:
    sock.sendall(head)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    if not data.startswith(b"HTTP/1.") or b" 200 " not in data.split(b"\r\n", 1)[0] or BODY not in data:
        raise RuntimeError(f"unexpected answer: {data[:200]!r}")
    return data


def timed(count: int, once) -> list[float]:
    for _ in range(10):  # warm-up: thread pools, the resolver, the secret lookup
        once()
    found = []
    for _ in range(count):
        start = time.perf_counter()
        once()
        found.append((time.perf_counter() - start) * 1000)
    return found


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def http_rows(requests: int) -> dict[str, list[float]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    events: list[object] = []
    rows: dict[str, list[float]] = {}
    try:
        direct_head = f"GET /v2/items HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
        rows["direct"] = timed(requests, lambda: fetch(socket.create_connection(("127.0.0.1", port)), direct_head))
        for name, rule in (("proxy", http_rule(f"http://127.0.0.1:{port}/v2/")),
                           ("proxy+inject", http_rule(f"http://127.0.0.1:{port}/v2/", credential="bench-token",
                                                      inject="Authorization: Bearer {secret}"))):
            state = Path(tempfile.mkdtemp(prefix="wb-netbench-"))
            access = HttpAccess.open(state, state, events.append, rules=[rule],
                                     secret=lambda _name: "bench-" + "s3cr3t-value")
            assert access is not None
            path = str(access.folder / SOCKET_NAME)
            head = (f"GET http://127.0.0.1:{port}/v2/items HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                    "Authorization: Basic Y29kZTpvd24=\r\n\r\n").encode()

            def through(path=path, head=head):
                sock = socket.socket(socket.AF_UNIX)
                sock.connect(path)
                fetch(sock, head)

            try:
                rows[name] = timed(requests, through)
            finally:
                access.close()
    finally:
        server.shutdown()
        server.server_close()
    if len(events) < 2 * (requests + 10):
        raise RuntimeError(f"the proxy reported {len(events)} net.request events for {2 * (requests + 10)} requests")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--no-pg", action="store_true", help="HTTP rows only")
    args = parser.parse_args()
    rows = http_rows(args.requests)
    base50, base95 = pct(rows["direct"], 50), pct(rows["direct"], 95)
    print(f"HTTP: {args.requests} GETs to a loopback origin, a fresh connection each (ms)")
    print(f"  {'path':<14}{'p50':>8}{'p95':>8}{'p50 ratio':>11}{'p95 ratio':>11}")
    for name, values in rows.items():
        p50, p95 = pct(values, 50), pct(values, 95)
        print(f"  {name:<14}{p50:>8.3f}{p95:>8.3f}{p50 / base50:>10.2f}x{p95 / base95:>10.2f}x")
    if args.no_pg:
        return 0
    try:
        from bench import net_pg
    except ImportError:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import net_pg  # type: ignore[no-redef]
    try:
        figures = net_pg.run(queries=args.queries)
    except SystemExit as exc:  # no PostgreSQL / PgBouncer here: said, the HTTP rows stand
        print(f"PostgreSQL: not measured: {exc}")
        return 0
    print(f"PostgreSQL: select 1, {args.queries} round trips on one connection (ms)")
    print(f"  {'path':<14}{'p50':>8}{'p95':>8}{'p50 ratio':>11}{'p95 ratio':>11}")
    d50, d95 = figures["direct_p50"], figures["direct_p95"]
    for label, key in (("direct", "direct"), ("relay+bouncer", "relayed"), ("bouncer only", "bouncer")):
        p50, p95 = figures[f"{key}_p50"], figures[f"{key}_p95"]
        print(f"  {label:<14}{p50:>8.3f}{p95:>8.3f}{p50 / d50:>10.2f}x{p95 / d95:>10.2f}x")
    print(f"  connect (a psql each): direct {figures['connect_direct_p50']:.1f} ms, through the relay "
          f"{figures['connect_relayed_p50']:.1f} ms (p50)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

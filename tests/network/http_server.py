"""A real loopback HTTP server for the policy-proxy tests: it logs every request that reaches it (method,
path, headers, body), so a test can tell a refused request never arrived."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Origin:
    def __init__(self) -> None:
        self.seen: list[dict] = []
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                origin.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                    "body": body})
                out = f"origin-ok {self.command} {self.path}\n".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out)

            do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paths(self) -> list[str]:
        return [s["path"] for s in self.seen]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

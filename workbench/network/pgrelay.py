"""The socket the sandbox sees at /run/workbench/pg: a relay in Workbench's process, in front of PgBouncer.

Code in the container connects to `/run/workbench/pg/.s.PGSQL.5432` (libpq's name for host=/run/workbench/pg
and the default port), a socket Workbench binds in the project's `.workbench/pg/` folder and mounts read-only
(code cannot plant or replace anything there; a socket on a read-only mount still connects). The relay
reads the client's first message only, the PostgreSQL StartupMessage, and then copies bytes both ways:

  * SSLRequest / GSSENCRequest: answered "N" (no encryption on a local socket), as a server does;
  * CancelRequest: passed to PgBouncer as it came (it cancels only a query of a key PgBouncer handed out);
  * StartupMessage (protocol 3.0): the database it names must be one the project's policy allows, else the
    client gets a FATAL error naming the allowed ones and the connection is recorded as refused. It is
    passed on rebuilt: `user` is the rule's role, `database` the name checked, `replication` never (so no
    admin console, no replication protocol, whatever the client asked).

Why a relay rather than PgBouncer's own socket mounted: PgBouncer lets any client with its own uid into
its admin console (user "pgbouncer", database "pgbouncer"), and under rootless Podman code runs with the
user's own uid; and the relay is where each connection's bytes and duration are counted for its
`net.connection` event (PgBouncer's SHOW STATS is per database, not per connection).

Until PgBouncer's first ReadyForQuery the relay also reads the server's messages, each whole (type, length,
body), only to recognise the database refusing the credential (SQLSTATE class 28): that error is replaced
by one line naming the vault secret and how to fix it. After that it is a plain byte copy.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workbench.inert import one_line
from workbench.network.pgbouncer import Target
from workbench.network.shared_socket import SharedSocket

log = logging.getLogger(__name__)

SOCKET_NAME = ".s.PGSQL.5432"
PROTOCOL_3 = 196608
SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST = 80877103, 80877104, 80877102
MAX_STARTUP = 10_000  # PostgreSQL's own limit on a startup packet
MAX_SERVER_MESSAGE = 1 << 20  # before ReadyForQuery: notices, parameters, errors; never data
STARTUP_TIMEOUT = 30.0


@dataclass
class Connection:
    """What one connection's `net.connection` event says."""

    database: str = ""
    role: str = ""
    credential: str = ""
    bytes_up: int = 0
    bytes_down: int = 0
    started: float = 0.0
    refused: str = ""
    execution_id: str = ""


Report = Callable[[Connection, float], None]  # the connection, its duration in seconds


def error_message(code: str, text: str) -> bytes:
    """A PostgreSQL ErrorResponse: severity FATAL, SQLSTATE `code`, message `text`."""
    fields = b"".join(kind + value.encode() + b"\0" for kind, value in
                      ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", code), (b"M", text)))
    body = fields + b"\0"
    return b"E" + struct.pack("!I", len(body) + 4) + body


def error_fields(body: bytes) -> dict[str, str]:
    found = {}
    for part in body.split(b"\0"):
        if part:
            found[chr(part[0])] = part[1:].decode(errors="replace")
    return found


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return bytes(data)


def parse_startup(body: bytes) -> dict[str, str] | None:
    """The parameters of a StartupMessage body after its protocol code; None when malformed."""
    parts = body.split(b"\0")
    if len(parts) < 2 or parts[-1] != b"" or parts[-2] != b"":
        return None
    pairs = parts[:-2]
    if len(pairs) % 2:
        return None
    try:
        found = {pairs[i].decode(): pairs[i + 1].decode() for i in range(0, len(pairs), 2)}
    except UnicodeDecodeError:
        return None
    return found if all(found) else None


def build_startup(params: dict[str, str]) -> bytes:
    body = struct.pack("!I", PROTOCOL_3) + b"".join(
        k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items()) + b"\0"
    return struct.pack("!I", len(body) + 4) + body


class Relay:
    """Serves `folder`/.s.PGSQL.5432 for the sandbox, forwarding allowed connections to `upstream`."""

    def __init__(self, folder: Path, upstream: Path | None, targets: list[Target], report: Report,
                 owner: tuple[int, int] | None = None, refusal: str = "",
                 running: Callable[[], str] = lambda: ""):
        self.folder, self.upstream, self.owner = folder, upstream, owner
        self.running = running  # the execution running now, for the connection's record
        self.refusal = refusal  # why PgBouncer is not there: every allowed connection is told so
        self.targets = {t.dbname: t for t in targets}
        self.report = report
        self.socket = SharedSocket(folder, SOCKET_NAME, self._serve_on_a_thread, owner, "pg-relay")

    def start(self) -> Relay:
        self.socket.start()
        return self

    def stop(self) -> None:
        self.socket.close()

    def _serve_on_a_thread(self, client: socket.socket) -> None:
        threading.Thread(target=self._serve, args=(client,), name="pg-relay-conn", daemon=True).start()

    # --- one connection ------------------------------------------------------------------------------
    def _serve(self, client: socket.socket) -> None:
        conn = Connection(started=time.monotonic(), execution_id=self.running())
        server: socket.socket | None = None
        try:
            client.settimeout(STARTUP_TIMEOUT)
            params = self._startup(client, conn)
            if params is None:
                return
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            server.settimeout(STARTUP_TIMEOUT)
            server.connect(str(self.upstream))
            first = build_startup(params)
            server.sendall(first)
            if not self._until_ready(client, server, conn):
                return
            client.settimeout(None)
            server.settimeout(None)
            self._splice(client, server, conn)
        except (OSError, EOFError) as exc:
            if not conn.refused and not conn.database:
                conn.refused = f"the connection ended before it named a database ({type(exc).__name__})"
        finally:
            for sock in (client, server):
                if sock is not None:
                    sock.close()
            if conn.database or conn.refused:
                try:
                    self.report(conn, time.monotonic() - conn.started)
                except Exception:  # noqa: BLE001 - a reporting failure must not take the relay down
                    log.exception("could not record a database connection")

    def _startup(self, client: socket.socket, conn: Connection) -> dict[str, str] | None:
        """The rebuilt startup parameters, or None when the connection ends here (refused or a cancel)."""
        for _ in range(3):  # SSLRequest, then GSSENCRequest, then the real one, at most
            head = _recv_exact(client, 8)
            conn.bytes_up += 8
            length, code = struct.unpack("!II", head)
            if length < 8 or length > MAX_STARTUP:
                conn.refused = "a malformed startup message"
                return None
            body = _recv_exact(client, length - 8)
            conn.bytes_up += len(body)
            if code in (SSL_REQUEST, GSSENC_REQUEST) and length == 8:
                client.sendall(b"N")
                conn.bytes_down += 1
                continue
            if code == CANCEL_REQUEST and length == 16:
                if self.upstream is not None:
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as server:
                        server.connect(str(self.upstream))
                        server.sendall(head + body)
                return None
            if code != PROTOCOL_3:
                self._refuse(client, conn, "0A000", f"protocol {code >> 16}.{code & 0xFFFF} is not supported")
                return None
            params = parse_startup(body)
            if params is None:
                self._refuse(client, conn, "08P01", "a malformed startup message")
                return None
            database = params.get("database") or params.get("user", "")
            conn.database = one_line(database)[:200]
            target = self.targets.get(database)
            if target is None or "replication" in params:
                allowed = ", ".join(sorted(self.targets)) or "none"
                what = "replication connections are" if target else f'the database "{conn.database}" is'
                self._refuse(client, conn, "3D000", f"Workbench: {what} not allowed by this project's network "
                             f"policy (allowed databases: {allowed}; see: workbench network list)")
                return None
            conn.role, conn.credential = target.role, target.credential
            if self.refusal or self.upstream is None:
                self._refuse(client, conn, "08006", f"Workbench: {self.refusal or 'no PgBouncer for this session'}")
                return None
            rest = {k: v for k, v in params.items() if k not in ("user", "database", "replication")}
            return {"user": target.role, "database": target.dbname, **rest}
        self._refuse(client, conn, "08P01", "too many encryption requests")
        return None

    def _refuse(self, client: socket.socket, conn: Connection, code: str, text: str) -> None:
        text = text if text.startswith("Workbench: ") else f"Workbench: {text}"
        conn.refused = text
        message = error_message(code, text)
        try:
            client.sendall(message)
            conn.bytes_down += len(message)
        except OSError:
            pass

    def _until_ready(self, client: socket.socket, server: socket.socket, conn: Connection) -> bool:
        """Pass the server's messages on until ReadyForQuery (True); an error instead ends it (False), and a
        refused credential is said in our words."""
        while True:
            head = _recv_exact(server, 5)
            kind, length = head[:1], struct.unpack("!I", head[1:])[0]
            if length < 4 or length > MAX_SERVER_MESSAGE:
                raise EOFError
            body = _recv_exact(server, length - 4)
            if kind == b"E":
                fields = error_fields(body)
                code, text = fields.get("C", ""), fields.get("M", "")
                if code.startswith("28") or "password authentication failed" in text or "login failed" in text:
                    self._refuse(client, conn, "28P01", (
                        f"Workbench: the database {conn.database} refused the credential {conn.credential!r} "
                        f"for role {conn.role} (fix: workbench secret set {conn.credential}, or give the "
                        f"right role with workbench network allow ... --as ROLE)"))
                else:
                    conn.refused = one_line(f"{text} ({code})" if code else text)[:300]
                    client.sendall(head + body)
                    conn.bytes_down += len(head) + len(body)
                return False
            client.sendall(head + body)
            conn.bytes_down += len(head) + len(body)
            if kind == b"Z":
                return True

    @staticmethod
    def _splice(client: socket.socket, server: socket.socket, conn: Connection) -> None:
        def pump(source: socket.socket, sink: socket.socket, up: bool) -> None:
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
                    if up:
                        conn.bytes_up += len(data)
                    else:
                        conn.bytes_down += len(data)
            except OSError:
                pass
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        back = threading.Thread(target=pump, args=(server, client, False), daemon=True)
        back.start()
        pump(client, server, True)
        back.join()

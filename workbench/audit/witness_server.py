"""A cosigning witness (C2SP tlog-witness) served over HTTP: ``workbench witness serve``.

A witness remembers, for each log it was told to trust (by the log key's vkey, whose name is the log's
origin), the latest checkpoint it cosigned. It cosigns a new checkpoint only when the request proves
(RFC 6962 consistency proof) that the new tree extends that one, so a history rewritten after a
cosignature can never get another. It answers as c2sp.org/tlog-witness says:

    200  cosignature line(s) (c2sp.org/tlog-cosignature, timestamped Ed25519)
    400  a malformed request, or an old size larger than the checkpoint's
    403  no signature by a trusted key of that log verifies
    404  a log (origin) it does not know
    409  the old size is not the size it cosigned last (body: that size, text/x.tlog.size), or the same
         size with another root
    422  the consistency proof does not verify

Check-and-update is atomic (a process lock and one SQLite IMMEDIATE transaction), and the new state is
durable before the answer is sent. Requests a trusted log signed but that the witness refused (409 on a
root, 422) are kept as evidence of misbehaviour.

Files, in the witness folder (default ``<user data dir>/witness``, 0700): ``witness.db`` (state, the
trusted log keys, evidence) and, where no OS keyring is usable, ``witness-signing-key`` (0600). The key is
kept like the audit signing key (`workbench.audit.keys.KeyStore`), under its own keyring entry.

The HTTP server is the standard library's `http.server.ThreadingHTTPServer`: a thread per connection,
keep-alive (HTTP/1.1), a socket timeout per request so a slow client cannot hold a thread, and bodies
capped at `MAX_BODY`.
"""

from __future__ import annotations

import binascii
import hashlib
import logging
import socket
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from workbench import paths
from workbench.audit import merkle
from workbench.audit.checkpoint import Checkpoint, check_origin
from workbench.audit.cosign import WitnessKey, check_key_name, cosign, key_id, note_body, parse_vkey
from workbench.audit.errors import AuditError
from workbench.audit.keys import ED25519_ALG, KeyInfo, KeyStore, PublicKey, SigningKey, unb64

log = logging.getLogger(__name__)

STATE_FILE = "witness.db"
KEY_FILE = "witness-signing-key"
KEY_ENTRY = "witness-signing-key"
MAX_BODY = 64 * 1024
MAX_PROOF = 63
REQUEST_TIMEOUT_S = 10
SIZE_TYPE = "text/x.tlog.size"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS logs (origin TEXT NOT NULL, vkey TEXT NOT NULL, added TEXT NOT NULL,
                                 PRIMARY KEY (origin, vkey));
CREATE TABLE IF NOT EXISTS latest (origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL,
                                   note TEXT NOT NULL, time TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evidence (id INTEGER PRIMARY KEY, time TEXT NOT NULL, origin TEXT NOT NULL,
                                     status INTEGER NOT NULL, reason TEXT NOT NULL, request TEXT NOT NULL);
"""


class WitnessServerError(AuditError):
    """The witness cannot start or be configured (exit 1)."""


class BadRequest(Exception):
    """Internal: a request answered with `status` and a one-line reason."""

    def __init__(self, status: int, reason: str, content_type: str = "text/plain; charset=utf-8"):
        super().__init__(reason)
        self.status = status
        self.content_type = content_type


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    text: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def default_dir() -> Path:
    return paths.user_data_dir() / "witness"


def default_name() -> str:
    host = "".join(c for c in socket.gethostname().lower() if c.isalnum() or c in "-.") or "localhost"
    return f"workbench.local/witness/{host}"


@dataclass(frozen=True)
class AllowedLog:
    origin: str
    key: PublicKey
    vkey: str


class WitnessService:
    """The witness's state and its one operation, `add_checkpoint`; no HTTP here."""

    def __init__(self, folder: Path, name: str | None = None, key_store: KeyStore | None = None):
        self.folder = folder
        self._lock = threading.Lock()
        try:
            paths.ensure_dir(folder)
            self.conn = sqlite3.connect(folder / STATE_FILE, timeout=30, isolation_level=None,
                                        check_same_thread=False)
            self.conn.execute("PRAGMA busy_timeout = 30000")
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = FULL")  # the state is persisted before each answer
            self.conn.executescript(SCHEMA)
            (folder / STATE_FILE).chmod(0o600)
        except (OSError, sqlite3.DatabaseError) as exc:
            raise WitnessServerError(f"the witness state {folder / STATE_FILE} cannot be opened: {exc}",
                                     "move it aside only if you retire this witness: a witness that forgets "
                                     "what it cosigned can be made to cosign a rewritten log") from exc
        stored = self._meta("name")
        if stored is None:
            chosen = name or default_name()
            try:
                check_key_name(chosen)
            except ValueError as exc:
                raise WitnessServerError(f"bad witness name: {exc}") from exc
            self.conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('name', ?)", (chosen,))
            stored = self._meta("name") or chosen
        elif name is not None and name != stored:
            raise WitnessServerError(f"this witness is named {stored!r}, not {name!r}",
                                     "its key ID depends on its name: keep the name, or use another --dir")
        self.name = stored
        entry = KEY_ENTRY if folder.resolve() == default_dir().resolve() else \
            f"{KEY_ENTRY}:{hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]}"
        self.key_store = key_store or KeyStore(folder, entry=entry, file_name=KEY_FILE)
        loaded = self.key_store.load(create=True)
        assert loaded is not None
        self._signing_key: SigningKey = loaded[0]
        self.key_info: KeyInfo = loaded[1]
        self.key = WitnessKey(self.name, self._signing_key.public)

    def close(self) -> None:
        self.conn.close()

    def _meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    # --- which logs it trusts ---------------------------------------------------------------------
    def allow(self, vkey: str) -> AllowedLog:
        """Trust a log's key (a signed-note Ed25519 vkey whose name is the log's origin)."""
        try:
            origin, key = parse_vkey(vkey, ED25519_ALG)
            check_origin(origin)
        except (ValueError, AuditError) as exc:
            raise WitnessServerError(f"not a log verifier key: {getattr(exc, 'message', exc)}",
                                     "give the vkey that `workbench audit witness add` printed") from exc
        with self._lock:
            self.conn.execute("INSERT OR IGNORE INTO logs (origin, vkey, added) VALUES (?, ?, ?)",
                              (origin, vkey.strip(), _now()))
        return AllowedLog(origin, key, vkey.strip())

    def allowed(self, origin: str | None = None) -> list[AllowedLog]:
        sql, params = "SELECT origin, vkey FROM logs", ()
        if origin is not None:
            sql, params = sql + " WHERE origin = ?", (origin,)
        found = []
        for o, v in self.conn.execute(sql + " ORDER BY origin, added", params).fetchall():
            try:
                found.append(AllowedLog(str(o), parse_vkey(str(v), ED25519_ALG)[1], str(v)))
            except ValueError:
                continue
        return found

    def latest(self) -> list[tuple[str, int, bytes, str]]:
        return [(str(o), int(s), bytes(r), str(t)) for o, s, r, t in
                self.conn.execute("SELECT origin, size, root, time FROM latest ORDER BY origin").fetchall()]

    def evidence(self) -> list[tuple[str, str, int, str]]:
        return [(str(t), str(o), int(s), str(r)) for t, o, s, r in
                self.conn.execute("SELECT time, origin, status, reason FROM evidence ORDER BY id").fetchall()]

    # --- add-checkpoint ---------------------------------------------------------------------------
    def add_checkpoint(self, body: bytes) -> Answer:
        try:
            return self._add_checkpoint(body)
        except BadRequest as exc:
            text = str(exc) if exc.content_type == SIZE_TYPE else f"{exc}\n"
            return Answer(exc.status, exc.content_type, text)

    def _add_checkpoint(self, body: bytes) -> Answer:
        old, proof, note = parse_request(body)
        try:
            cp = Checkpoint.from_note(note)
            check_origin(cp.origin)
        except AuditError as exc:
            raise BadRequest(400, f"the checkpoint does not parse: {exc.message}") from exc
        text = note_body(note)
        if cp.body() != text:
            raise BadRequest(400, "the checkpoint is not in canonical form")
        logs = self.allowed(cp.origin)
        if not logs:
            raise BadRequest(404, f"unknown log origin {cp.origin[:100]!r}")
        self._check_log_signature(cp, text, logs)
        if old > cp.size:
            raise BadRequest(400, f"old size {old} is larger than the checkpoint size {cp.size}")
        if old == 0 and proof:
            raise BadRequest(400, "a request from old size 0 carries no proof")
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                row = self.conn.execute("SELECT size, root FROM latest WHERE origin = ?", (cp.origin,)).fetchone()
                known_size, known_root = (int(row[0]), bytes(row[1])) if row else (0, None)
                if old != known_size:
                    raise BadRequest(409, f"{known_size}\n", SIZE_TYPE)
                if old == cp.size:
                    expected = known_root if known_root is not None else merkle.EMPTY_ROOT
                    if cp.root != expected:
                        self._keep_evidence(cp.origin, 409, f"size {cp.size} with another root than cosigned", body)
                        raise BadRequest(409, f"size {cp.size} was cosigned with another root")
                elif old == 0:
                    pass  # the first checkpoint of this log: nothing to be consistent with
                elif known_root is None or not merkle.verify_consistency(old, cp.size, known_root, cp.root, proof):
                    self._keep_evidence(cp.origin, 422, f"no consistency from size {old} to {cp.size}", body)
                    raise BadRequest(422, f"the consistency proof from size {old} to {cp.size} does not verify")
                self.conn.execute(
                    "INSERT INTO latest (origin, size, root, note, time) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (origin) DO UPDATE SET size = excluded.size, root = excluded.root, "
                    "note = excluded.note, time = excluded.time", (cp.origin, cp.size, cp.root, note, _now()))
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("COMMIT")  # keeps evidence rows; `latest` was not touched
                raise
        cosignature = cosign(self._signing_key, self.name, text)
        return Answer(200, "text/plain; charset=utf-8", cosignature.line())

    def _check_log_signature(self, cp: Checkpoint, text: str, logs: list[AllowedLog]) -> None:
        message = text.encode("utf-8")
        verified = False
        for sig in cp.signatures:
            for allowed in logs:
                if sig.name == allowed.origin and sig.key_hash == key_id(allowed.origin, ED25519_ALG, allowed.key.raw):
                    if not allowed.key.verify(sig.signature, message):
                        raise BadRequest(403, "a signature by a trusted key of this log does not verify")
                    verified = True
        if not verified:
            raise BadRequest(403, "no signature by a trusted key of this log")

    def _keep_evidence(self, origin: str, status: int, reason: str, body: bytes) -> None:
        self.conn.execute("INSERT INTO evidence (time, origin, status, reason, request) VALUES (?, ?, ?, ?, ?)",
                          (_now(), origin, status, reason, body.decode("utf-8", "replace")))


def parse_request(body: bytes) -> tuple[int, list[bytes], str]:
    """(old size, proof hashes, checkpoint note) of an add-checkpoint body; BadRequest(400) if malformed."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(400, "the request is not UTF-8") from exc
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise BadRequest(400, "the request holds control characters")
    first, sep, rest = text.partition("\n")
    if not sep or not first.startswith("old "):
        raise BadRequest(400, "the request does not start with an 'old <size>' line")
    size_text = first[4:]
    if not size_text.isdigit() or len(size_text) > 20 or (size_text != "0" and size_text.startswith("0")):
        raise BadRequest(400, f"bad old size {size_text[:30]!r}")
    proof: list[bytes] = []
    while True:
        line, sep, rest = rest.partition("\n")
        if not sep:
            raise BadRequest(400, "the request has no blank line before the checkpoint")
        if line == "":
            break
        if len(proof) >= MAX_PROOF:
            raise BadRequest(400, f"more than {MAX_PROOF} proof lines")
        try:
            hash_ = unb64(line)
        except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
            raise BadRequest(400, "a proof line is not base64") from exc
        if len(hash_) != merkle.HASH_SIZE:
            raise BadRequest(400, "a proof line is not a 32-byte hash")
        proof.append(hash_)
    return int(size_text), proof, rest


# --- HTTP --------------------------------------------------------------------------------------------
def make_handler(service: WitnessService, prefix: str = "") -> type[BaseHTTPRequestHandler]:
    add_path = f"{prefix.rstrip('/')}/add-checkpoint"

    class WitnessHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "workbench-witness"
        sys_version = ""
        timeout = REQUEST_TIMEOUT_S

        def _send(self, status: int, content_type: str, text: str) -> None:
            data = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            if self.path != add_path:
                self._send(404, "text/plain; charset=utf-8", "not found\n")
                return
            length_text = self.headers.get("Content-Length")
            if length_text is None or not length_text.strip().isdigit():
                self.close_connection = True
                self._send(411, "text/plain; charset=utf-8", "a Content-Length is required\n")
                return
            length = int(length_text)
            if length > MAX_BODY:
                self.close_connection = True
                self._send(413, "text/plain; charset=utf-8", f"the body is over {MAX_BODY} bytes\n")
                return
            body = self.rfile.read(length)
            if len(body) != length:
                self.close_connection = True
                return
            try:
                answer = service.add_checkpoint(body)
            except Exception:  # noqa: BLE001 - a bug answers 500, the server goes on
                log.exception("add-checkpoint failed")
                answer = Answer(500, "text/plain; charset=utf-8", "internal error\n")
            self._send(answer.status, answer.content_type, answer.text)

        def do_GET(self) -> None:  # noqa: N802
            if self.path in ("/", f"{prefix.rstrip('/')}/"):
                self._send(200, "text/plain; charset=utf-8",
                           f"c2sp.org/tlog-witness\n{service.key.vkey()}\n")
                return
            if self.path == add_path:
                self.send_response(405)
                self.send_header("Allow", "POST")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._send(404, "text/plain; charset=utf-8", "not found\n")

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
            log.info("%s %s", self.address_string(), format % args)

    return WitnessHandler


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT ("[::1]:8080" for IPv6); ValueError in one line."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text[:60]!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{port_text[:20]!r} is not a port number (0 to 65535; 0 picks a free one)")
    return host, int(port_text)


class WitnessHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]):
        host = address[0]
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__(address, handler)


def serve(service: WitnessService, listen: str, prefix: str = "",
          ready: Callable[[WitnessHTTPServer], None] | None = None) -> None:
    """Serve until interrupted; `ready` is called once the socket listens (with the bound address)."""
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise WitnessServerError(f"--listen: {exc}") from exc
    try:
        server = WitnessHTTPServer((host, port), make_handler(service, prefix))
    except OSError as exc:
        raise WitnessServerError(f"cannot listen on {listen}: {exc.strerror or exc}") from exc
    try:
        if ready is not None:
            ready(server)
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()

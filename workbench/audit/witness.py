"""Pushing checkpoints to cosigning witnesses (C2SP tlog-witness client), with an on-disk queue.

Why this shape:

* **Registrations are per user, outside the project** (``<user data dir>/witnesses.db``, 0600), keyed by
  the log's origin. Whoever can rewrite a project's files could otherwise add a witness key of their own
  and forge its cosignatures, or point pushes at a host of their choosing; a received project registers
  nothing on the receiver's machine.
* **Push on sign, queue on failure.** When the log signs a checkpoint (`hooks.checkpoint_signed`), it is
  queued for every witness registered for that origin and the queue is delivered at once, with short
  timeouts. A witness that does not answer (an offline laptop) leaves the item queued; the next signing
  and ``workbench audit witness push`` retry. After a *timeout* (not a refused connection, which costs
  nothing) the next tries wait `BACKOFF_S`, so an unreachable network does not slow every checkpoint.
* **The log is changed only by success**: the one thing written to ``audit.db`` is a cosignature that
  verified against the witness's registered key. Refusals and bad answers are kept here, in the
  registry, as evidence, and said in one line.
* **The consistency proof** from the witness's size to the checkpoint is computed from the stored
  compact range at the old size (every size a witness cosigned is one of our checkpoints) and the leaves
  after it: O(new entries), not O(log). When the witness names a size we never signed (409), the whole
  tree is used.

Protocol details (c2sp.org/tlog-witness): ``POST <url>/add-checkpoint`` with ``old <size>``, the proof
hashes (base64, one a line), a blank line and the checkpoint note; 200 brings cosignature lines, 409 the
witness's size (``text/x.tlog.size``) or a conflicting root at the same size, 403 an untrusted log key,
404 an unknown origin, 422 a proof that does not verify (the log is not an extension of what the witness
saw).
"""

from __future__ import annotations

import fcntl
import http.client
import os
import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from workbench.audit import hooks, merkle
from workbench.audit.checkpoint import Checkpoint
from workbench.audit.cosign import store_cosignature
from workbench.audit.cosignature import Cosignature, note_body, signature_lines
from workbench.audit.errors import AuditError
from workbench.audit.keys import b64
from workbench.audit.witness_registry import (  # noqa: F401 - the registry's names, as callers know them
    REGISTRY_FILE,
    Known,
    Queued,
    Registry,
    Witness,
    WitnessError,
    check_url,
)
from workbench.inert import one_line

TIMEOUT_S = 5.0  # per request; WORKBENCH_WITNESS_TIMEOUT overrides it
BACKOFF_S = 60.0
MAX_ANSWER = 64 * 1024
MAX_PROOF = 63  # tlog-witness: a client sends at most 63 proof lines


# --- consistency proofs from the log file --------------------------------------------------------
def consistency_proof(db_path: Path, old: int, new: int) -> list[bytes]:
    """The proof that the log's tree of size `old` is a prefix of its tree of size `new`."""
    if not 0 <= old <= new:
        raise ValueError(f"no proof from size {old} to {new}")
    if old in (0, new):
        return []
    conn = sqlite3.connect(f"{Path(db_path).absolute().as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        row = conn.execute("SELECT frontier FROM checkpoints WHERE size = ? ORDER BY id DESC LIMIT 1",
                           (old,)).fetchone()
        frontier = None
        if row is not None:
            try:
                frontier = merkle.CompactRange.from_bytes(old, bytes(row[0]))
            except ValueError:
                frontier = None
        start = old if frontier is not None else 0
        leaves = [bytes(r[0]) for r in conn.execute(
            "SELECT hash FROM entries WHERE seq >= ? AND seq < ? ORDER BY seq", (start, new))]
    finally:
        conn.close()
    if len(leaves) != new - start:
        raise WitnessError(f"the log has fewer than {new} entries: it cannot prove checkpoint size {new}")
    if frontier is not None:
        return merkle.consistency_proof_from_frontier(frontier, leaves, old, new)
    return merkle.TreeLevels(leaves).consistency_proof(old)


# --- talking to a witness ------------------------------------------------------------------------
class Unreachable(Exception):
    """The witness did not answer (connection refused, no route, DNS, timeout, TLS); `slow`: it timed out."""

    def __init__(self, message: str, slow: bool = False):
        super().__init__(message)
        self.slow = slow


def request_timeout() -> float:
    try:
        value = float(os.environ.get("WORKBENCH_WITNESS_TIMEOUT", TIMEOUT_S))
    except ValueError:
        value = TIMEOUT_S
    return min(max(value, 0.1), 120.0)


def post_add_checkpoint(url: str, body: bytes, timeout: float | None = None) -> tuple[int, str, str]:
    """POST the request body; (status, content type, text of the answer).

    `timeout` bounds each connect and read; the whole exchange is cut at three times that, so a witness
    that drips its answer a byte at a time cannot hold the signing thread either.
    """
    timeout = request_timeout() if timeout is None else timeout
    parts = urlsplit(url)
    host = parts.hostname or ""
    cut = threading.Event()
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, parts.port, timeout=timeout, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(host, parts.port, timeout=timeout)

    def cut_off() -> None:
        cut.set()
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv (close alone does not)
            except OSError:
                pass

    watchdog = threading.Timer(3 * timeout, cut_off)
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request("POST", f"{parts.path}/add-checkpoint", body=body,
                     headers={"Content-Type": "text/plain; charset=utf-8", "User-Agent": "workbench-witness-client"})
        response = conn.getresponse()
        chunks: list[bytes] = []
        received = 0
        while received <= MAX_ANSWER:
            chunk = response.read1(MAX_ANSWER + 1 - received)
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
        data = b"".join(chunks)
        ctype = response.getheader("Content-Type", "") or ""
        status = response.status
    except TimeoutError as exc:
        raise Unreachable(f"no answer within {timeout:g} s", slow=True) from exc
    except (OSError, http.client.HTTPException) as exc:
        if cut.is_set():
            raise Unreachable(f"no complete answer within {3 * timeout:g} s", slow=True) from exc
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise Unreachable(one_line(reason)[:160]) from exc
    finally:
        watchdog.cancel()
        conn.close()
    if cut.is_set():
        raise Unreachable(f"no complete answer within {3 * timeout:g} s", slow=True)
    if len(data) > MAX_ANSWER:
        return status, ctype, ""
    return status, ctype.split(";")[0].strip(), data.decode("utf-8", "replace")


@dataclass(frozen=True)
class Outcome:
    """What happened to one checkpoint for one witness.

    kind: ``cosigned`` (stored in the log), ``queued`` (no answer: kept for later), ``refused`` (the
    witness will not cosign it: evidence kept), ``bad-answer`` (the witness answered with no cosignature
    that verifies against its registered key: nothing stored), ``superseded`` (the witness already
    cosigned a larger checkpoint of this log), ``not-allowed`` (403/404: the witness does not trust this
    log's key yet; it stays queued), ``waiting`` (not tried: backing off after a timeout).
    """

    witness: Witness
    size: int
    kind: str
    message: str

    def line(self) -> str:
        return one_line(f"witness {self.witness.name} ({self.witness.url}): {self.message}")


def _request_body(old: int, proof: list[bytes], note: str) -> bytes:
    return (f"old {old}\n" + "".join(f"{b64(h)}\n" for h in proof) + "\n" + note).encode("utf-8")


def push_one(registry: Registry, witness: Witness, note: str, db_path: Path, log_vkey: str = "") -> Outcome:
    """Offer one checkpoint to one witness, following its 409s; store the cosignature on success."""
    cp = Checkpoint.from_note(note)
    vkey = witness.key.vkey()
    known = registry.known(witness.origin, vkey)
    old = known[0].size if known else 0
    tried: set[int] = set()
    while True:
        if old > cp.size:
            return Outcome(witness, cp.size, "superseded", f"it has already cosigned size {old}, past {cp.size}")
        tried.add(old)
        try:
            proof = consistency_proof(db_path, old, cp.size)
        except WitnessError as exc:
            return Outcome(witness, cp.size, "refused", exc.message)
        if len(proof) > MAX_PROOF:
            return Outcome(witness, cp.size, "refused", f"the proof from size {old} is {len(proof)} hashes long")
        status, ctype, text = post_add_checkpoint(witness.url, _request_body(old, proof, note))
        if status == 200:
            return _accept(registry, witness, cp, note, text, db_path)
        if status == 409 and ctype == "text/x.tlog.size":
            size_text = text.strip()
            if not size_text.isdigit() or len(size_text) > 20:
                return Outcome(witness, cp.size, "bad-answer", f"its 409 answer {size_text[:30]!r} is not a tree size")
            size = int(size_text)
            registry.set_known(witness.origin, vkey, size, None, None)
            if size in tried:
                return Outcome(witness, cp.size, "bad-answer", f"it keeps answering 409 with size {size}")
            if size > cp.size:
                log_size = _log_size(db_path)
                if size > log_size:
                    reason = (f"it has cosigned size {size} for this log, which now has only {log_size} entries: "
                              "the log was rolled back or truncated")
                    registry.refuse(witness.origin, vkey, cp.size, status, reason)
                    return Outcome(witness, cp.size, "refused", reason)
            old = size
            continue
        reason = _refusal(status, text, cp, old, log_vkey)
        if status in (403, 404):  # not allowed yet: stays queued until the operator allows the log
            return Outcome(witness, cp.size, "not-allowed", reason)
        registry.refuse(witness.origin, vkey, cp.size, status, reason)
        return Outcome(witness, cp.size, "refused", reason)


def _log_size(db_path: Path) -> int:
    conn = sqlite3.connect(f"{Path(db_path).absolute().as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        row = conn.execute("SELECT MAX(seq) FROM entries").fetchone()
        return int(row[0]) + 1 if row and row[0] is not None else 0
    finally:
        conn.close()


def _refusal(status: int, text: str, cp: Checkpoint, old: int, log_vkey: str) -> str:
    said = one_line(text.strip())[:120]
    tail = f" ({said})" if said else ""
    allow = f"workbench witness allow {log_vkey}" if log_vkey else "workbench witness allow <the log's vkey>"
    if status == 403:
        return f"it does not trust this log's key (403); its operator can run: {allow}"
    if status == 404:
        return f"it does not know this log (404); its operator can run: {allow}"
    if status == 422:
        return (f"it refused size {cp.size}: the log is not an extension of the size {old} it cosigned (422, the "
                f"consistency proof does not verify){tail}: the log was rewritten")
    if status == 409:
        return (f"it refused size {cp.size}: it cosigned another root at that size (409){tail}: the log was "
                "rewritten")
    if status == 400:
        return f"it rejected the request as malformed (400){tail}"
    return f"it answered HTTP {status}{tail}"


def _accept(registry: Registry, witness: Witness, cp: Checkpoint, note: str, text: str, db_path: Path) -> Outcome:
    """A 200: keep the cosignature that verifies against the registered key, else say the answer is bad."""
    body = note_body(note)
    try:
        lines = signature_lines(text)
    except ValueError:
        lines = []
    good = None
    claimed = False
    for line in lines:
        try:
            cosig = Cosignature.from_line(line)
        except ValueError:
            continue
        if cosig.name == witness.key.name and cosig.key_id == witness.key.key_id:
            claimed = True
            if witness.key.verify(cosig, body) and cosig.timestamp <= time.time() + 600:
                good = cosig
                break
    if good is None:
        why = ("its cosignature does not verify against the registered key" if claimed else
               "its answer holds no cosignature from the registered key")
        reason = f"it answered 200 for size {cp.size} but {why}: nothing was stored (is the registered vkey right?)"
        registry.refuse(witness.origin, witness.key.vkey(), cp.size, 200, reason)
        return Outcome(witness, cp.size, "bad-answer", reason)
    registry.set_known(witness.origin, witness.key.vkey(), cp.size, cp.root, good.line())
    try:
        store_cosignature(db_path, note, witness.key, good)
    except (sqlite3.DatabaseError, OSError) as exc:
        # Cosigned but not kept in the log yet (the file was busy): stays queued, re-asked next time.
        return Outcome(witness, cp.size, "queued", f"cosigned size {cp.size}, but the log could not store it "
                                                  f"yet ({one_line(exc)[:80]})")
    registry.dequeue(witness.origin, witness.key.vkey(), cp.size)
    return Outcome(witness, cp.size, "cosigned", f"cosigned size {cp.size}")


@contextmanager
def _push_lock(registry: Registry) -> Iterator[None]:
    """One process at a time delivers (two would race each other's 409s)."""
    fd = os.open(registry.path.with_name(".witnesses.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def deliver(registry: Registry, origin: str, db_path: Path, force: bool = False, log_vkey: str = "") -> list[Outcome]:
    """Deliver this origin's queue, oldest checkpoint first, each witness until it stops answering.

    `force` ignores the back-off after a timeout (the `push` command).
    """
    outcomes: list[Outcome] = []
    with _push_lock(registry):
        for witness in registry.witnesses(origin):
            vkey = witness.key.vkey()
            for item in registry.queued(origin, vkey):
                if not force and item.next_try > time.time():
                    outcomes.append(Outcome(witness, item.size, "waiting",
                                            f"size {item.size} stays queued (it did not answer: {item.last_error})"))
                    break
                try:
                    outcome = push_one(registry, witness, item.note, db_path, log_vkey)
                except Unreachable as exc:
                    registry.failed(item, str(exc), BACKOFF_S if exc.slow else 0.0)
                    count = len(registry.queued(origin, vkey))
                    outcomes.append(Outcome(witness, item.size, "queued",
                                            f"did not answer ({exc}); {count} checkpoint(s) queued, retried at the "
                                            "next signing or with: workbench audit witness push"))
                    break
                except AuditError as exc:  # the queued note no longer parses (edited by hand)
                    registry.dequeue(origin, vkey, item.size)
                    outcomes.append(Outcome(witness, item.size, "refused", f"queued size {item.size}: {exc.message}"))
                    continue
                if outcome.kind in ("refused", "superseded"):
                    registry.dequeue(origin, vkey, item.size)
                elif outcome.kind in ("bad-answer", "queued", "not-allowed"):
                    registry.failed(item, outcome.message, 0.0)
                outcomes.append(outcome)
                if outcome.kind in ("bad-answer", "queued", "not-allowed"):
                    break
    return outcomes


def queue_and_deliver(origin: str, db_path: Path, checkpoint: Checkpoint, force: bool = False,
                      registry: Registry | None = None, log_vkey: str = "") -> list[Outcome]:
    """Queue `checkpoint` for every witness registered for `origin`, then deliver."""
    own = registry is None
    reg = registry or Registry.open()
    try:
        witnesses = reg.witnesses(origin)
        if not witnesses:
            return []
        for witness in witnesses:
            known = reg.known(origin, witness.key.vkey())
            if known and (known[0].size > checkpoint.size or
                          (known[0].size == checkpoint.size and known[0].root == checkpoint.root)):
                continue  # it has this checkpoint (or a newer one) already; a different root is still offered
            reg.enqueue(origin, witness.key.vkey(), checkpoint)
        return deliver(reg, origin, db_path, force=force, log_vkey=log_vkey)
    finally:
        if own:
            reg.close()


@hooks.on_checkpoint_signed
def push_on_sign(project_root: Path | None, db_path: Path, checkpoint: Checkpoint) -> None:
    """The hook: a newly signed checkpoint goes to this user's witnesses for its log (if any)."""
    if not Registry.default_path().exists():
        return  # no witness was ever registered: nothing to open, nothing to do
    import logging

    log = logging.getLogger(__name__)
    for outcome in queue_and_deliver(checkpoint.origin, Path(db_path), checkpoint):
        if outcome.kind == "cosigned":
            log.info("%s", outcome.line())
        else:
            log.warning("%s", outcome.line())

"""JSONL export a reviewer verifies offline, and its verifier.

Why this shape: the reviewer has the file and (ideally) the signer's public key, nothing else. So the
export carries everything needed, one JSON object per line:

1. a header: ``{"type": "header", "format": "workbench-audit-export/1", "origin", "tree_size",
   "complete", "filter", "fingerprint", "vkey", "keys": [{"fingerprint", "public_key", "vkey", "added",
   "rotation"}]}``, where ``vkey`` is the key that signed the checkpoints as a C2SP verifier key
   (``name+keyhash+base64key``, named after the origin: what signed-note tools such as Go's
   ``note.NewVerifier`` take);
2. every checkpoint of the log up to the head: ``{"type": "checkpoint", "id", "time", "note",
   "consistency": [hex...], "cosigners": [vkey...]}``, where ``consistency`` is the RFC 6962 proof that
   the tree at this checkpoint is a prefix of the head (the last checkpoint, whose size is ``tree_size``),
   and ``note`` is the checkpoint's signed note with the witnesses' cosignature lines (C2SP
   tlog-cosignature) after the log's own signature, as a tlog-proof file carries it; ``cosigners`` names
   the witness key stored beside each cosignature (a convenience, not a reason to trust it: a verifier
   trusts the witness keys it registered, ``workbench audit witness add``, or is given);
3. the entries: ``{"type": "entry", "seq", "time", "kind", "session_id", "actor", "user", "event_id",
   "payload", "prev", "hash"}`` plus, when the export is filtered (``complete`` false), ``"inclusion":
   [hex...]``, the RFC 6962 audit path of the entry in the head tree. ``payload`` is the JSON object;
   its canonical encoding reproduces the stored text (``payload_text`` is given instead if it would not).

A complete export is verified by recomputing the chain and the tree; a filtered one entry by entry
against the signed head root, plus the chain links between consecutive entries. Either way every
cosignature line is checked against the trusted witness keys (and the listed cosigners): one that does
not verify over its checkpoint fails the export; `VerifyResult.cosignatures` says who cosigned what, so
``verify --export FILE --require-witness`` can insist on the newest checkpoint being cosigned.
"""

from __future__ import annotations

import json
import time as clock
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from workbench.audit import merkle
from workbench.audit.canonical import canonical_json, entry_leaf_data
from workbench.audit.checkpoint import Checkpoint
from workbench.audit.cosign import Cosigned, WitnessReport, trusted_witness_keys
from workbench.audit.cosignature import FUTURE_SLACK_S, Cosignature, WitnessKey
from workbench.audit.errors import AuditError
from workbench.audit.keys import PublicKey, unb64
from workbench.audit.log import AuditLog, entry_filter
from workbench.audit.proof import cosigned_notes
from workbench.audit.store import GENESIS
from workbench.audit.verify import (
    Failure,
    VerifyResult,
    check_checkpoint,
    parse_key_rows,
    scan_entries,
    trusted,
)

FORMAT = "workbench-audit-export/1"


@dataclass(frozen=True)
class ExportFilter:
    since: datetime | None = None
    until: datetime | None = None
    session: str | None = None

    @property
    def empty(self) -> bool:
        return self.since is None and self.until is None and self.session is None

    def to_dict(self) -> dict[str, str | None]:
        return {"since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None, "session": self.session}


def export_lines(log: AuditLog, flt: ExportFilter = ExportFilter()) -> Iterator[str]:
    """The export, line by line (no newline), of everything up to the latest checkpoint.

    The log is verified first: a log that does not verify is not exported.
    """
    result = log.verify()
    if not result.ok:
        raise AuditError(f"the audit log does not verify, so it was not exported: {result.first_error}")
    store = log.store
    with store.lock:
        checkpoints = log.checkpoints()
        if not checkpoints:
            raise AuditError("no checkpoint has been signed yet, so nothing can be exported verifiably",
                             "run: workbench audit checkpoint --new")
        head = checkpoints[-1]
        levels = merkle.TreeLevels(store.leaf_hashes(0, head.size))
        keys = store.key_rows()
        notes = cosigned_notes(store, checkpoints)
        where, params = entry_filter(flt.since, flt.until, flt.session, None)
        where = f"{where} {'AND' if where else 'WHERE'} seq < ?"
        rows = store.entry_rows(where, (*params, head.size)).fetchall()
    complete = flt.empty
    yield _dump({"type": "header", "format": FORMAT, "origin": log.origin, "tree_size": head.size,
                 "complete": complete, "filter": flt.to_dict(), "fingerprint": result.fingerprint,
                 "vkey": result.vkey, "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
                 "keys": [{"fingerprint": fp, "public_key": pub, "vkey": _vkey(pub, log.origin), "added": added,
                           "rotation": json.loads(rot) if rot else None} for fp, pub, added, rot in keys]})
    for cp, (note, cosigners) in zip(checkpoints, notes, strict=True):
        proof = levels.consistency_proof(cp.size)
        yield _dump({"type": "checkpoint", "id": cp.id, "time": cp.time, "note": note,
                     "consistency": [h.hex() for h in proof], "cosigners": cosigners})
    for seq, time, kind, sid, actor, user, eid, payload, prev, digest in rows:
        line: dict[str, Any] = {"type": "entry", "seq": seq, "time": time, "kind": kind, "session_id": sid,
                                "actor": actor, "user": user, "event_id": eid}
        try:
            data = json.loads(payload)
            exact = canonical_json(data) == payload
        except ValueError:
            exact = False
        if exact:
            line["payload"] = data
        else:
            line["payload_text"] = payload
        line["prev"] = bytes(prev).hex()
        line["hash"] = bytes(digest).hex()
        if not complete:
            line["inclusion"] = [h.hex() for h in levels.inclusion_proof(seq)]
        yield _dump(line)


def write_export(log: AuditLog, out: IO[str], flt: ExportFilter = ExportFilter()) -> int:
    """Write the export to `out`; returns the number of entries written."""
    count = 0
    for line in export_lines(log, flt):
        out.write(line + "\n")
        count += line.startswith('{"type":"entry"')
    return count


def _vkey(public_key: str, origin: str) -> str:
    try:
        return PublicKey(unb64(public_key)).vkey(origin)
    except Exception:  # noqa: BLE001 - a damaged key row would not have verified; it names no key
        return ""


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


# --- offline verification --------------------------------------------------------------------------
def verify_export(path: Path, pinned: list[PublicKey] | None = None, reference: Checkpoint | None = None,
                  witnesses: Sequence[WitnessKey] | None = None) -> VerifyResult:
    """Verify an export file on its own (no project, no database).

    `witnesses`: witness keys to trust besides the ones this user registered for the log's origin.
    """
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise AuditError(f"cannot read the export {path}: {exc.strerror or exc}") from exc
    with handle:
        return verify_export_lines(handle, pinned, reference, witnesses)


def _records(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise Failure(f"export line {number} is not JSON ({exc})") from exc
        if not isinstance(record, dict) or "type" not in record:
            raise Failure(f"export line {number} is not an export record")
        yield number, record


def verify_export_lines(lines: Iterable[str], pinned: list[PublicKey] | None = None,
                        reference: Checkpoint | None = None,
                        witnesses: Sequence[WitnessKey] | None = None) -> VerifyResult:
    result = VerifyResult(ok=False, entries=0, root="", fingerprint="", pinned=bool(pinned))
    try:
        _verify_records(_records(lines), pinned or [], reference, result, witnesses)
        result.ok = True
    except Failure as exc:
        result.first_error = str(exc)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        result.first_error = f"the export is malformed ({type(exc).__name__}: {exc})"
    return result


def _verify_records(records: Iterator[tuple[int, dict[str, Any]]], pinned: list[PublicKey],
                    reference: Checkpoint | None, result: VerifyResult,
                    witnesses: Sequence[WitnessKey] | None = None) -> None:
    number, header = next(records, (0, {}))
    if header.get("type") != "header" or header.get("format") != FORMAT:
        raise Failure(f"the export does not start with a {FORMAT} header")
    origin = str(header["origin"])
    tree_size = int(header["tree_size"])
    complete = bool(header["complete"])
    key_rows = [(k["fingerprint"], k["public_key"], k.get("added", ""),
                 json.dumps(k["rotation"]) if k.get("rotation") else None) for k in header["keys"]]
    keys = trusted(parse_key_rows(key_rows), pinned, True)
    checkpoints: list[tuple[int, Checkpoint, list[bytes]]] = []
    cosigners: dict[int, list[WitnessKey]] = {}  # export line -> the witness keys it lists
    entries: list[tuple[int, dict[str, Any]]] = []
    for number, record in records:
        if record["type"] == "checkpoint":
            try:
                cp = Checkpoint.from_note(record["note"])
            except AuditError as exc:
                raise Failure(f"export line {number} (checkpoint #{record.get('id')}): {exc.message}") from exc
            cp = Checkpoint(cp.origin, cp.size, cp.root, cp.signatures, cp.extensions, record.get("id"))
            checkpoints.append((number, cp, [bytes.fromhex(h) for h in record.get("consistency", [])]))
            cosigners[number] = _listed_witnesses(number, record.get("cosigners") or [])
        elif record["type"] == "entry":
            entries.append((number, record))
        else:
            raise Failure(f"export line {number}: unknown record type {record['type']!r}")
    if not checkpoints:
        raise Failure("the export holds no checkpoint")
    signer = None
    for number, cp, _proof in checkpoints:
        try:
            signer = check_checkpoint(cp, origin, keys)
        except Failure as exc:
            raise Failure(f"export line {number}: {exc}") from exc
    head = checkpoints[-1][1]
    if head.size != tree_size:
        raise Failure(f"the export's last checkpoint has size {head.size}, its header says {tree_size}")
    for number, cp, proof in checkpoints:
        if not merkle.verify_consistency(cp.size, head.size, cp.root, head.root, proof):
            raise Failure(f"export line {number}: {cp.label()} is not consistent with the head "
                          f"(size {head.size}): the log was rewritten between them")
    if reference is not None:
        _check_reference(reference, origin, keys, head, checkpoints)
        result.consistent_with = reference.size
    if complete:
        _verify_complete(entries, checkpoints, tree_size)
    else:
        _verify_filtered(entries, head)
    # After the log's own checks (they name the entry); the witnesses' say what else was seen.
    witness_keys = list(witnesses or [])
    witness_keys += [k for k in trusted_witness_keys(origin) if k not in witness_keys]
    result.cosignatures = check_cosignatures(checkpoints, cosigners, witness_keys, result.warnings)
    result.entries = len(entries)
    result.signed_entries = len(entries)
    result.checkpoints = len(checkpoints)
    result.root = head.root.hex()
    result.fingerprint = signer.fingerprint if signer else ""
    result.vkey = signer.vkey(origin) if signer else ""
    if not pinned:
        result.warnings.append("no key pinned: compare the fingerprint with the signer's, or pass --pubkey")


# --- the witnesses' cosignatures in an export -------------------------------------------------------
def _listed_witnesses(number: int, vkeys: Any) -> list[WitnessKey]:
    if not isinstance(vkeys, list):
        raise Failure(f"export line {number}: its cosigners are not a list of witness keys")
    try:
        return [WitnessKey.parse(str(vkey)) for vkey in vkeys]
    except ValueError as exc:
        raise Failure(f"export line {number}: a cosigner's witness key is malformed ({exc})") from exc


def check_cosignatures(checkpoints: list[tuple[int, Checkpoint, list[bytes]]], listed: dict[int, list[WitnessKey]],
                       trusted: Sequence[WitnessKey], warnings: list[str] | None = None) -> WitnessReport:
    """Check every cosignature line of the exported checkpoint notes; who cosigned what, as a report.

    A line claimed by a trusted witness key (by name and key ID) is ``verified`` when it verifies over its
    checkpoint; one claimed only by a key the export lists beside it is ``unregistered`` (good, but that
    key is nobody this machine trusts: it does not satisfy ``--require-witness``). A claimed line that does
    not verify, or carries a time in the future, fails the export: it was copied from another checkpoint,
    forged or damaged. Lines no key claims cannot be checked; `warnings` says how many there were.
    """
    report = WitnessReport(newest=checkpoints[-1][1] if checkpoints else None, registered=len(trusted))
    unchecked = 0
    for number, cp, _proof in checkpoints:
        body = cp.body()
        found: list[Cosigned] = []
        for sig in cp.signatures:
            line = sig.line()
            try:
                cosignature = Cosignature.from_line(line)
            except ValueError:
                continue  # not shaped like a cosignature: the log's own signature
            claims = [(key, True) for key in trusted] + [(key, False) for key in listed.get(number, [])]
            claimed = [(key, ours) for key, ours in claims
                       if key.name == cosignature.name and key.key_id == cosignature.key_id]
            if not claimed:
                unchecked += 1
                continue
            key, ours = claimed[0]
            if not key.verify(cosignature, body) or cosignature.timestamp > clock.time() + FUTURE_SLACK_S:
                raise Failure(f"export line {number}: {cp.label()}: the cosignature of witness {cosignature.name} "
                              "does not verify (it was copied from another checkpoint, forged or damaged)")
            if all(c.vkey != key.vkey() for c in found):
                found.append(Cosigned(cosignature.name, key.vkey(), cosignature.timestamp,
                                      "verified" if ours else "unregistered", line))
        if found:
            report.by_checkpoint[cp.size] = found
    if unchecked and warnings is not None:
        warnings.append(f"{unchecked} cosignature line(s) by witness keys neither trusted here nor listed in the "
                        "export were not checked")
    return report


def _check_reference(reference: Checkpoint, origin: str, keys: list[PublicKey], head: Checkpoint,
                     checkpoints: list[tuple[int, Checkpoint, list[bytes]]]) -> None:
    label = f"your checkpoint (size {reference.size})"
    try:
        check_checkpoint(reference, origin, keys)
    except Failure as exc:
        raise Failure(f"{label}: {exc}") from exc
    if reference.size > head.size:
        raise Failure(f"{label} is newer than the export's head (size {head.size})")
    for _number, cp, _proof in checkpoints:
        if cp.size == reference.size:
            if cp.root != reference.root:
                raise Failure(f"{label}: the log's checkpoint of that size has another root: it was rewritten")
            return
    raise Failure(f"{label}: the export has no checkpoint of that size to prove consistency with")


def _entry_row(number: int, record: dict[str, Any]) -> tuple[Any, ...]:
    payload = record["payload_text"] if "payload_text" in record else canonical_json(record["payload"])
    return (record["seq"], record["time"], record["kind"], record["session_id"], record["actor"],
            record["user"], record["event_id"], payload, bytes.fromhex(record["prev"]),
            bytes.fromhex(record["hash"]))


def _verify_complete(entries: list[tuple[int, dict[str, Any]]],
                     checkpoints: list[tuple[int, Checkpoint, list[bytes]]], tree_size: int) -> None:
    rows = [_entry_row(number, record) for number, record in entries]
    scan = scan_entries([rows], {cp.size for _n, cp, _p in checkpoints})
    if scan.size != tree_size:
        raise Failure(f"the export holds {scan.size} entries but its head checkpoint covers {tree_size}: "
                      f"entries {scan.size}..{tree_size - 1} are missing")
    for number, cp, _proof in checkpoints:
        if scan.roots.get(cp.size) != cp.root:
            raise Failure(f"export line {number}: {cp.label()}: its signed root does not match the exported "
                          "entries")


def _verify_filtered(entries: list[tuple[int, dict[str, Any]]], head: Checkpoint) -> None:
    last_seq, last_hash = None, GENESIS
    for number, record in entries:
        seq, time, kind, sid, actor, user, eid, payload, prev, digest = _entry_row(number, record)
        where = f"export line {number} (entry {seq})"
        leaf = merkle.leaf_hash(entry_leaf_data(seq, time, kind, sid, actor, user, eid, payload, prev))
        if leaf != digest:
            raise Failure(f"{where}: its contents do not match its hash (its payload, time or another field "
                          "was changed)")
        if last_seq is not None and seq == last_seq + 1 and prev != last_hash:
            raise Failure(f"{where}: its link to entry {last_seq} is broken")
        if last_seq is not None and seq <= last_seq:
            raise Failure(f"{where}: out of order after entry {last_seq}")
        proof = [bytes.fromhex(h) for h in record.get("inclusion", [])]
        if not merkle.verify_inclusion(leaf, seq, head.size, proof, head.root):
            raise Failure(f"{where}: its inclusion proof does not lead to the signed root of size {head.size}")
        last_seq, last_hash = seq, leaf

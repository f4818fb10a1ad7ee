"""Offline proofs of one entry: C2SP tlog-proof@v1 files any transparency-log tool can check.

Why this format: a reviewer given one entry (an execution in a report) should be able to check it is in
the signed log without the log, and with tools that share no code with Workbench. A c2sp.org/tlog-proof
file carries exactly that: the entry's index, its RFC 6962 inclusion path, and the checkpoint it leads to,
verbatim, with the log's signature and the witnesses' cosignatures::

    c2sp.org/tlog-proof@v1
    extra <base64 of the JSON below>
    index <seq>
    <base64 hash>            (the inclusion path, from the leaf's sibling up; none for a one-entry log)
    ...
                             (an empty line)
    <the checkpoint note: origin, size, root, blank line, signature and cosignature lines>

The spec leaves ``extra`` to the application ("data necessary to reconstruct the record hash"). Workbench
puts there a JSON object::

    {"format": "workbench-tlog-proof-extra/1", "leaf_data": "<the entry's canonical header>",
     "vkey": "<the log key as a C2SP verifier key: name+keyhash+base64key>"}

so that SHA-256(0x00 || UTF-8 leaf_data) is the leaf hash the path starts from, and the header's
``payload_sha256`` names the payload (which a reviewer holding it can hash). Like everything in
``extra`` it is not authenticated: the path and the signed checkpoint are what prove the leaf, and the
vkey is a convenience to compare with the key you trust, never a reason to trust it.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from workbench.audit import merkle
from workbench.audit.canonical import entry_leaf_data
from workbench.audit.checkpoint import Checkpoint
from workbench.audit.cosign import check_stored, cosigned_note, stored_cosignatures, trusted_witness_keys
from workbench.audit.errors import AuditError, CheckpointFormatError
from workbench.audit.keys import PublicKey
from workbench.audit.store import ENTRY_COLUMNS, AuditStore

MAGIC = "c2sp.org/tlog-proof@v1"
EXTRA_FORMAT = "workbench-tlog-proof-extra/1"
MAX_PROOF_BYTES = 1 << 20  # a real proof is a few KiB; refuse to parse more than this


class ProofFormatError(AuditError):
    """A file that is not a tlog-proof@v1 file (bad input: exit 2)."""

    exit_code = 2


@dataclass(frozen=True)
class TlogProof:
    index: int
    path: tuple[bytes, ...]
    note: str  # the checkpoint note, verbatim (signature and cosignature lines included)
    extra: bytes | None = None

    def to_text(self) -> str:
        lines = [MAGIC]
        if self.extra is not None:
            lines.append(f"extra {base64.b64encode(self.extra).decode('ascii')}")
        lines.append(f"index {self.index}")
        lines += [base64.b64encode(h).decode("ascii") for h in self.path]
        return "\n".join(lines) + "\n\n" + self.note

    @property
    def checkpoint(self) -> Checkpoint:
        return Checkpoint.from_note(self.note)

    @property
    def details(self) -> dict[str, Any]:
        """Workbench's ``extra`` object ({} when absent or not Workbench's)."""
        if self.extra is None:
            return {}
        try:
            data = json.loads(self.extra.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return {}
        return data if isinstance(data, dict) and data.get("format") == EXTRA_FORMAT else {}

    @property
    def leaf_data(self) -> bytes | None:
        text = self.details.get("leaf_data")
        return text.encode("utf-8") if isinstance(text, str) else None

    @classmethod
    def parse(cls, text: str) -> TlogProof:
        """Read a tlog-proof@v1 file; raises ProofFormatError naming what is wrong."""
        if len(text) > MAX_PROOF_BYTES:
            raise ProofFormatError("the proof file is too large to be a tlog-proof")
        if not text.startswith(MAGIC + "\n"):
            raise ProofFormatError(f"the proof does not start with {MAGIC!r}")
        head, sep, note = text.partition("\n\n")
        if not sep:
            raise ProofFormatError("the proof has no empty line before its checkpoint")
        lines = head.split("\n")
        at = 1
        extra = None
        if at < len(lines) and lines[at].startswith("extra "):
            try:
                extra = base64.b64decode(lines[at][6:], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ProofFormatError("the proof's extra line is not base64") from exc
            at += 1
        if at >= len(lines) or not lines[at].startswith("index "):
            raise ProofFormatError("the proof has no index line")
        digits = lines[at][6:]
        if not digits.isdigit() or not digits.isascii() or (digits != "0" and digits.startswith("0")):
            raise ProofFormatError(f"the proof's index {digits[:24]!r} is not a decimal number")
        path = []
        for number, line in enumerate(lines[at + 1:], start=at + 2):
            try:
                digest = base64.b64decode(line, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ProofFormatError(f"line {number} of the proof is not a base64 hash") from exc
            if len(digest) != merkle.HASH_SIZE:
                raise ProofFormatError(f"line {number} of the proof is not a 32-byte hash")
            path.append(digest)
        try:
            Checkpoint.from_note(note)
        except CheckpointFormatError as exc:
            raise ProofFormatError(f"the proof's checkpoint does not parse: {exc.message}") from exc
        return cls(int(digits), tuple(path), note, extra)


@dataclass(frozen=True)
class ProofCheck:
    """The outcome of checking a proof: `ok`, or `why` not, in one line."""

    ok: bool
    why: str
    checkpoint: Checkpoint | None = None
    signer: PublicKey | None = None


def check_proof(proof: TlogProof, keys: list[PublicKey], leaf_data: bytes | None = None,
                origin: str | None = None) -> ProofCheck:
    """Check `proof` against trusted `keys`: the checkpoint is signed by one of them (for `origin`, when
    given) and the inclusion path leads from the leaf (of `leaf_data`, else the proof's own) to its root."""
    cp = proof.checkpoint
    if origin is not None and cp.origin != origin:
        return ProofCheck(False, f"the proof is for log {cp.origin!r}, not {origin!r}", cp)
    signer, why = cp.verify(keys)
    if signer is None:
        return ProofCheck(False, f"its checkpoint (size {cp.size}): {why}", cp)
    data = leaf_data if leaf_data is not None else proof.leaf_data
    if data is None:
        return ProofCheck(False, "the proof carries no entry data (extra) to hash, and none was given", cp, signer)
    if not merkle.verify_inclusion(merkle.leaf_hash(data), proof.index, cp.size, list(proof.path), cp.root):
        return ProofCheck(False, f"entry {proof.index}: its inclusion path does not lead to the signed root of "
                                 f"size {cp.size}", cp, signer)
    return ProofCheck(True, "", cp, signer)


def make_proof(store: AuditStore, seq: int, note: str | None = None, vkey: str = "") -> TlogProof:
    """The tlog-proof of entry `seq` in the latest checkpoint; `note`: that checkpoint's note with
    cosignatures (default: as stored, the log's own signature only)."""
    from workbench.audit.verify import inclusion_proof

    found = inclusion_proof(store, seq)
    if not found.verified:
        raise AuditError(f"entry {seq}: its inclusion path does not lead to the signed root of checkpoint "
                         f"#{found.checkpoint.id} (the log does not verify: run workbench audit verify)")
    row = store.conn.execute(f"SELECT {ENTRY_COLUMNS} FROM entries WHERE seq = ?", (seq,)).fetchone()
    data = entry_leaf_data(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], bytes(row[8]))
    if merkle.leaf_hash(data) != found.leaf:
        raise AuditError(f"entry {seq}: its contents do not match its hash (run workbench audit verify)")
    extra = json.dumps({"format": EXTRA_FORMAT, "leaf_data": data.decode("utf-8"), "vkey": vkey},
                       ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return TlogProof(seq, tuple(found.path), note or found.checkpoint.to_note(), extra)


def signer_vkey(store: AuditStore, checkpoint: Checkpoint) -> str:
    """The C2SP vkey of the stored key whose signature on `checkpoint` verifies ("" if none does)."""
    from workbench.audit.keys import unb64

    keys = []
    for _fingerprint, public_key, _added, _rotation in store.key_rows():
        try:
            keys.append(PublicKey(unb64(str(public_key))))
        except Exception:  # noqa: BLE001 - a damaged key row signs nothing; verify names it
            continue
    signer, _why = checkpoint.verify(keys)
    return signer.vkey(checkpoint.origin) if signer is not None else ""


def cosigned(store: AuditStore, checkpoint: Checkpoint) -> tuple[str, int]:
    """The checkpoint's note with the witness cosignatures the log holds for it, and how many."""
    note, cosigners = cosigned_notes(store, [checkpoint])[0]
    return note, len(cosigners)


def cosigned_notes(store: AuditStore, checkpoints: list[Checkpoint]) -> list[tuple[str, list[str]]]:
    """For each checkpoint, its note with the cosignature lines the log holds for it appended, and the
    vkeys of those witnesses (one line per witness). Only cosignatures that verify over that very
    checkpoint go in: by a witness this user registered for the log, or by the key stored beside it.

    One read of the cosignatures table for all of them (an export carries every checkpoint). A damaged
    table, or none, gives the notes as the log signed them: a proof of the log itself never depends on it.
    """
    plain: list[tuple[str, list[str]]] = [(cp.to_note(), []) for cp in checkpoints]
    if not checkpoints:
        return plain
    try:
        origin = checkpoints[0].origin
        keys = trusted_witness_keys(origin)
        rows: dict[tuple[int, str], list[Any]] = {}
        for row in stored_cosignatures(store):
            if row.origin == origin:
                rows.setdefault((row.size, row.body), []).append(row)
        out = []
        for cp in checkpoints:
            body = cp.body()
            found, seen = [], set()
            for row in rows.get((cp.size, body), []):
                checked = check_stored(row, body, keys)
                if checked.status in ("verified", "unregistered") and checked.vkey not in seen:
                    seen.add(checked.vkey)  # a witness that cosigned twice (pushed again): its first line
                    found.append(checked)
            out.append((cosigned_note(cp, found), [c.vkey for c in found]))
        return out
    except Exception:  # noqa: BLE001 - a broken cosignature table must not stop a proof of the log itself
        return plain

"""The signed, tamper-evident audit log (see DESIGN.md, "The audit log").

Every bus event becomes one entry in ``.workbench/audit.db``; entries are hash-chained and form an RFC 6962
Merkle tree whose head is signed (Ed25519, C2SP checkpoint) every N entries and at the end of each
session. Modules, one job each:

    canonical   the deterministic JSON encoding hashes are computed over
    merkle      RFC 6962 tree hash, compact range, inclusion and consistency proofs
    store       the SQLite (WAL, insert-only) file
    keys        the signing key: OS keyring or the documented 0600 file fallback; rotation
    checkpoint  C2SP signed-note checkpoints
    log         `AuditLog`: events in, checkpoints out
    verify      recompute and check everything; inclusion proofs
    export      JSONL export a reviewer verifies offline
"""

from workbench.audit.checkpoint import Checkpoint
from workbench.audit.errors import AuditError, CheckpointFormatError, SigningKeyError
from workbench.audit.keys import KeyInfo, KeyStore, PublicKey
from workbench.audit.log import AuditEntry, AuditLog, SessionSummary
from workbench.audit.verify import InclusionProof, VerifyResult

__all__ = [
    "AuditEntry",
    "AuditError",
    "AuditLog",
    "Checkpoint",
    "CheckpointFormatError",
    "InclusionProof",
    "KeyInfo",
    "KeyStore",
    "PublicKey",
    "SessionSummary",
    "SigningKeyError",
    "VerifyResult",
]

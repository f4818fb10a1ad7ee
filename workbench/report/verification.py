"""The verification section: what was checked at export time, and how a reviewer checks it again.

Why the exact commands and the checkpoint text: the PDF itself is not proof. Proof is re-running the
verifier over the log (or its export) and comparing the root hash and key fingerprint it prints with
the ones printed here and in every page footer. The signed checkpoint is given in the C2SP signed-note
form so it can also be checked with transparency-log tools.
"""

from __future__ import annotations

import logging
import shlex

from reportlab.platypus import Flowable, PageBreak

from workbench.report.context import ReportContext
from workbench.report.cover import banner, callout, facts_table
from workbench.report.flowables import OutlineMark
from workbench.report.styles import AMBER, AMBER_BG, INK, MUTED

log = logging.getLogger(__name__)


def sign_head_first(project) -> str:
    """Sign a checkpoint over the log's head before the report reads it; why not, in one line, or "".

    Without it a report made while a session is open shows entries no signature covers.
    """
    from workbench.audit.head import sign_head

    try:
        signing = sign_head(project.audit_db, project_root=project.root,
                            origin=project.settings().audit.origin or None)
    except Exception as exc:  # noqa: BLE001 - the report still shows what it can (source.read says what failed)
        log.debug("could not sign the head before the report: %s", exc)
        return ""
    return signing.note()


def note_unsigned(snapshot, note: str) -> None:
    """Put why the newest entries are unsigned first among the verifier's warnings (while it is still true)."""
    v = snapshot.verification
    if note and v.ok and v.signed_entries < v.entries:
        v.warnings.insert(0, note)


def commands(ctx: ReportContext) -> list[str]:
    where = shlex.quote(str(ctx.project.root))
    return [
        "# on this machine, over the project's log:",
        f"workbench audit verify -p {where}",
        "# for a reviewer on another machine: export here, verify there",
        f"workbench audit export -p {where} --format jsonl --out audit-export.jsonl",
        "workbench audit verify --export audit-export.jsonl",
        "# prove that one entry (its seq is printed under each execution) is in the signed log, as a",
        "# C2SP tlog-proof file any transparency-log tool checks with the verifier key above",
        f"workbench audit prove -p {where} SEQ --out entry.tlog-proof",
        "workbench audit verify --proof entry.tlog-proof --pubkey log.vkey",
    ]


def build(ctx: ReportContext) -> list[Flowable]:
    st, snap = ctx.styles, ctx.snapshot
    v = snap.verification
    story: list[Flowable] = [OutlineMark("verification", "Verification", 0), st.para("Verification", st.h1),
                             banner(ctx)]
    unsigned = v.entries - v.signed_entries
    rows = [
        ("Result at export time", "intact: every entry, the hash chain, the Merkle tree and every checkpoint "
                                  "signature verified" if v.ok else f"FAILED: {v.error}"),
        ("Entries in the log", f"{v.entries:,}" if v.ok or v.entries else f"{snap.log_size:,} (stored)"),
        ("Signed by a checkpoint", f"{v.signed_entries:,} entries in {v.checkpoints} checkpoint(s)"
                                   + (f"; the newest {unsigned:,} not yet signed" if unsigned > 0 else "")
         if v.ok else (f"not confirmed: the latest stored checkpoint claims {snap.checkpoint.size:,} entries"
                       if snap.checkpoint else "no checkpoint could be confirmed")),
        ("Root hash (SHA-256, RFC 6962)", v.root or "not established (verification stopped before the end)"),
        ("Key fingerprint (SHA-256)", v.fingerprint or snap.key.fingerprint or "unknown"),
        ("Key kept in", snap.key.backend or snap.key.error or "unknown"),
    ]
    if v.vkey:
        rows.append(("Verifier key (C2SP vkey)", v.vkey))
    if snap.key.public_key:
        rows.append(("Public key (Ed25519, base64)", snap.key.public_key))
    if v.witness:
        rows.append(("This machine's witness state", v.witness))
    story.append(facts_table(st, rows, frozenset({"Root hash (SHA-256, RFC 6962)", "Key fingerprint (SHA-256)",
                                                  "Public key (Ed25519, base64)", "Verifier key (C2SP vkey)"}),
                             key_width=52 * 2.835))
    for warning in v.warnings:
        story.append(callout(st, "Verifier warning", warning, AMBER, AMBER_BG))
    if snap.key.insecure_fallback:
        story.append(callout(st, "Signing key not protected by an OS keyring",
                             snap.key.warning or "insecure fallback", AMBER, AMBER_BG))
    if ctx.selection.filtered:
        story.append(st.para(f"This report shows {ctx.model.entries:,} selected entries; the verification above "
                             "covers the entire log, so nothing outside the selection can have changed "
                             "unnoticed either.", st.body))

    story.append(st.para("Latest signed checkpoint (C2SP signed note)", st.h2))
    if snap.checkpoint is not None:
        cp = snap.checkpoint
        story.append(st.para(f"Covers the first {cp.size:,} entries; tree root {cp.root}; signed "
                             f"{cp.time or 'at an unknown time'}.", st.body))
        lines = [st.mono_line(line, INK) for line in cp.note.rstrip("\n").split("\n")]
        story.append(st.block(lines, st.code_plain))
        story.append(st.para("Long lines are wrapped here; in the note each signature is one line.", st.small))
    else:
        story.append(st.para("The log holds no signed checkpoint yet.", st.body))

    story.append(st.para("How to verify this record yourself", st.h2))
    story.append(st.para("Run the verifier and compare the entry count, the root hash and the key fingerprint it "
                         "prints with the ones above (the root is also printed at the foot of every page). "
                         "Exit status 0 means intact; otherwise it names the first bad entry.", st.body))
    story.append(st.block([st.mono_line(c, MUTED if c.startswith("#") else INK) for c in commands(ctx)],
                          st.code_plain))
    story.append(PageBreak())
    return story

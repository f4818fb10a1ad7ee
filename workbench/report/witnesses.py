"""The witnesses section: which witness cosigned which checkpoint, and what contradicts the log.

Why a section of its own: a signature by the log's own key shows the log was not changed *since* it was
signed; a cosignature shows someone else saw that checkpoint and will refuse any history that does not
extend it. A reviewer needs to see who those witnesses are (name and key, to compare with the key the
witness publishes) and which checkpoints they vouch for. Everything here is read from the project's log
file (read-only) and checked again; names are shown as plain, one-line text.
"""

from __future__ import annotations

from reportlab.platypus import Flowable, PageBreak

from workbench.inert import one_line
from workbench.report.context import ReportContext
from workbench.report.cover import callout, facts_table
from workbench.report.flowables import OutlineMark
from workbench.report.styles import AMBER, AMBER_BG, INK, RED, RED_BG

SHOWN = 12  # cosigned checkpoints listed, newest first


def _report(ctx: ReportContext):  # noqa: ANN202 - a cosign.WitnessReport, imported lazily
    from workbench.audit.cosign import witness_report
    from workbench.audit.store import AuditStore
    from workbench.audit.verify import parse_checkpoints

    store = AuditStore(ctx.project.audit_db, create=False, readonly=True)
    try:
        origin = store.meta("origin") or ""
        with store.snapshot():
            checkpoints = parse_checkpoints(store.checkpoint_rows(), origin)
            return witness_report(store, checkpoints, origin)
    finally:
        store.close()


def build(ctx: ReportContext) -> list[Flowable]:
    st = ctx.styles
    story: list[Flowable] = [OutlineMark("witnesses", "Witness cosignatures", 0),
                             st.para("Witness cosignatures", st.h1)]
    try:
        report = _report(ctx)
    except Exception as exc:  # noqa: BLE001 - a log whose checkpoints do not parse: the banner says why
        story.append(callout(st, "Witness cosignatures could not be read", one_line(str(exc))[:300], AMBER,
                             AMBER_BG))
        story.append(PageBreak())
        return story
    if report.first_error:
        story.append(callout(st, "A WITNESS CONTRADICTS THIS LOG", one_line(report.first_error), RED, RED_BG))
    for warning in report.warnings:
        story.append(callout(st, "Witness warning", one_line(warning), AMBER, AMBER_BG))
    cosigned = sorted(((size, found) for size, found in report.by_checkpoint.items() if found), reverse=True)
    newest = report.newest
    if newest is None:
        story.append(st.para("The log holds no signed checkpoint, so nothing can be cosigned.", st.body))
    elif not report.newest_cosigned:
        story.append(callout(st, "The newest checkpoint has no witness cosignature",
                             f"Checkpoint of size {newest.size:,}: "
                             + (f"{report.queued} push(es) to witnesses are queued." if report.queued else
                                "no witness registered on this machine cosigned it."), AMBER, AMBER_BG))
    if not cosigned:
        story.append(st.para("No witness has cosigned a checkpoint of this log. A team can run one with "
                             "`workbench witness serve` and register it with `workbench audit witness add`.",
                             st.body))
        story.append(PageBreak())
        return story
    rows = []
    witnesses: dict[str, str] = {}
    for size, found in cosigned[:SHOWN]:
        parts = []
        for c in found:
            witnesses[c.vkey] = c.name
            note = "" if c.verified else " (key not registered on this machine: compare it below)"
            parts.append(f"{one_line(c.name)}, {c.time.strftime('%Y-%m-%d %H:%M:%S')} UTC{note}")
        rows.append((f"Checkpoint of size {size:,}", "; ".join(parts)))
    if len(cosigned) > SHOWN:
        rows.append(("Earlier", f"{len(cosigned) - SHOWN} more cosigned checkpoint(s)"))
    story.append(st.para("Each row is a checkpoint and the witnesses that cosigned it (C2SP tlog-cosignature): "
                         "each witness verified that this tree extends every earlier one it saw.", st.body))
    story.append(facts_table(st, rows))
    story.append(st.para("Witness keys (C2SP vkey: name+key ID+key)", st.h2))
    story.append(st.block([st.mono_line(one_line(vkey), INK) for vkey in sorted(witnesses)], st.code_plain))
    story.append(PageBreak())
    return story

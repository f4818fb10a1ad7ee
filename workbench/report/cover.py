"""The cover: what this report is about, who made it when, and whether the log it shows verifies.

Why the banner comes first: a reviewer must never read a report of a tampered log without seeing, on
the first page and in red, that verification failed and what failed.
"""

from __future__ import annotations

from reportlab.lib.units import mm
from reportlab.platypus import Flowable, PageBreak, Spacer, Table, TableStyle

from workbench.report import fmt
from workbench.report.context import ReportContext
from workbench.report.flowables import OutlineMark
from workbench.report.styles import AMBER, AMBER_BG, GREEN, GREEN_BG, MUTED, RED, RED_BG, RULE, Styles


def banner(ctx: ReportContext) -> Flowable:
    """Green only when every entry is covered by a verified signature; amber when the log is intact but
    its newest entries are covered by none (saying how many); red, naming the failure, when it did not
    verify."""
    st = ctx.styles
    v = ctx.snapshot.verification
    unsigned = max(0, v.entries - v.signed_entries)
    if v.ok and not unsigned:
        head = "Audit log verified at export time"
        text = (f"{v.entries:,} entries, hash chain, Merkle tree and {v.checkpoints} signed checkpoint(s) "
                f"checked: every entry is covered by a verified signature; root {v.root}.")
        color, background = GREEN, GREEN_BG
    elif v.ok:
        noun = "entry is" if unsigned == 1 else "entries are"
        head = f"Audit log intact, but {unsigned:,} {noun} covered by no signature"
        signed = (f"{v.checkpoints} verified checkpoint(s) sign entries 0 to {v.signed_entries - 1:,}"
                  if v.signed_entries else "no checkpoint signs any of them")
        text = (f"The hash chain and Merkle tree of all {v.entries:,} entries check out and {signed}; the newest "
                f"{unsigned:,} (from entry {v.signed_entries:,}) are covered by no signature, so they could have "
                f"been changed unnoticed. Root {v.root}. The verification page says why they are unsigned.")
        color, background = AMBER, AMBER_BG
    else:
        head = "AUDIT LOG DID NOT VERIFY: this record may have been altered"
        text = f"What failed: {v.error or 'verification failed'}"
        color, background = RED, RED_BG
    return callout(st, head, text, color, background)


def callout(st: Styles, head: str, text: str, color, background) -> Flowable:
    cell = [st.para(head, _bold(st, color)), st.para(text, st.cell)]
    table = Table([[cell]], colWidths=["100%"])
    table.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (-1, -1), background),
        ("LINEBEFORE", (0, 0), (0, -1), 4, color),
        ("BOX", (0, 0), (-1, -1), 0.6, color),
        ("LEFTPADDING", (0, 0), (-1, -1), 9),
        ("TOPPADDING", (0, 0), (-1, -1), 6),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 7),
    ]))
    table.spaceBefore, table.spaceAfter = 4, 8
    return table


def _bold(st: Styles, color):
    from reportlab.lib.styles import ParagraphStyle

    return ParagraphStyle("callout", parent=st.h3, textColor=color, spaceBefore=0, spaceAfter=2)


def facts_table(st: Styles, rows: list[tuple[str, str]], mono_keys: frozenset[str] = frozenset(),
                key_width: float = 42 * mm) -> Table:
    """A two-column key/value table (few rows: cover, summary, verification)."""
    data = [[st.para(k, st.cell), st.para(v, st.cell_mono if k in mono_keys else st.cell)] for k, v in rows]
    table = Table(data, colWidths=[key_width, None])
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TEXTCOLOR", (0, 0), (0, -1), MUTED),
        ("LINEBELOW", (0, 0), (-1, -1), 0.3, RULE),
        ("LEFTPADDING", (0, 0), (-1, -1), 2),
        ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
    ]))
    return table


def period(ctx: ReportContext) -> str:
    m, sel = ctx.model, ctx.selection
    shown = f"{fmt.when(m.first_time)} to {fmt.when(m.last_time)}" if m.first_time else "no entries"
    asked = []
    if sel.since is not None:
        asked.append(f"since {fmt.when(sel.since)}")
    if sel.until is not None:
        asked.append(f"until {fmt.when(sel.until)}")
    if sel.session is not None:
        asked.append(f"session {sel.session}")
    return shown + (f" (selected: {', '.join(asked)})" if asked else " (the whole log)")


def engine_text(ctx: ReportContext) -> str:
    e = ctx.engine
    if e.reachable:
        mode = "rootless" if e.rootless else "rootful (runs as root on the host)"
        return f"{e.version or 'unknown engine'}, {mode}, at {e.endpoint}"
    return f"not reachable at export time{': ' + e.error if e.error else ''}"


def limits_text(ctx: ReportContext) -> str:
    e, m = ctx.engine, ctx.model
    parts = []
    if e.limits_enforced is not None:
        parts.append("the engine enforces cgroup limits" if e.limits_enforced
                     else "the engine does NOT enforce cgroup limits (memory, CPU, PIDs)")
    total = len(m.executions)
    if total:
        off = m.limits_not_enforced
        known = sum(1 for ex in m.executions if ex.limits_enforced is not None)
        if off:
            parts.append(f"{off:,} of {total:,} executions ran with limits NOT enforced")
        elif known:
            parts.append(f"all {known:,} executions that report it ran with limits enforced")
    return "; ".join(parts) or "unknown"


def build(ctx: ReportContext) -> list[Flowable]:
    st, m, snap = ctx.styles, ctx.model, ctx.snapshot
    project = ctx.project
    story: list[Flowable] = [OutlineMark("cover", "Cover", 0), Spacer(1, 18 * mm),
                             st.para("Compliance report", st.title),
                             st.para(f"Workbench audit log of project {project.name}", st.subtitle),
                             banner(ctx)]
    settings = ", ".join(f"{k} {v}" for k, v in ctx.engine.settings.items()) or "unknown"
    rows = [
        ("Project", f"{project.name} ({project.root})"),
        ("Project id", project.id),
        ("Log origin", snap.origin or "unknown"),
        ("Period", period(ctx)),
        ("Entries in this report", f"{m.entries:,} of {snap.log_size:,} in the log"),
        ("Generated at", fmt.when(ctx.generated_at)),
        ("Generated by", ctx.generated_by),
        ("Workbench version", ctx.version + (f" (sessions recorded by {', '.join(m.versions)})"
                                             if m.versions and m.versions != [ctx.version] else "")),
        ("Model(s) used", ", ".join(m.models) or "none recorded (no agent steps)"),
        ("Who acted", ", ".join(m.actors[:12]) + (f" and {len(m.actors) - 12} more" if len(m.actors) > 12 else "")
         or "nobody"),
        ("Sandbox (as recorded)", "; ".join(m.engines[:6]) + (f"; and {len(m.engines) - 6} more" if len(m.engines) > 6
                                                                else "") or "no sandbox.started entry in the selection"),
        ("Engine at export time", engine_text(ctx)),
        ("Isolation settings", f"{settings} (project configuration at export time). Sandbox policy: no "
                               "network for user code, all capabilities dropped, no-new-privileges, read-only "
                               "root filesystem, only /workspace writable"),
        ("Limits enforced", limits_text(ctx)),
        ("Signing key", (f"{snap.key.fingerprint} ({snap.key.backend})" if snap.key.fingerprint
                         else f"unavailable: {snap.key.error or 'unknown'}")),
    ]
    story.append(facts_table(st, rows, frozenset({"Project id", "Signing key", "Log origin"})))
    story.append(Spacer(1, 4))
    if snap.key.insecure_fallback:
        story.append(callout(st, "Signing key not protected by an OS keyring",
                             snap.key.warning or "the private key is kept in a file (insecure fallback)",
                             AMBER, AMBER_BG))
    if ctx.engine.limits_enforced is False or m.limits_not_enforced:
        story.append(callout(st, "Resource limits not enforced", limits_text(ctx), AMBER, AMBER_BG))
    story.append(st.para(f"Fonts: {st.fonts.source}. Characters a font cannot draw are shown escaped "
                         "(\\uXXXX), never dropped.", st.small))
    story.append(PageBreak())
    return story

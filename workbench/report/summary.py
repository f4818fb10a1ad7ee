"""The summary: the whole selection in numbers and short lists, before any detail.

Why capped lists: a reviewer reads the summary to decide where to look; a list of 10,000 files helps
nobody there (each file is still listed under its execution). The caps are said where they apply.
"""

from __future__ import annotations

from reportlab.lib.units import mm
from reportlab.platypus import Flowable, PageBreak, Table, TableStyle

from workbench.report import fmt
from workbench.report.context import ReportContext
from workbench.report.cover import facts_table
from workbench.report.flowables import OutlineMark
from workbench.report.styles import CODE_BG, MUTED, RULE, Styles

LIST_CAP = 200


def grid(st: Styles, header: list[str], rows: list[list[str]], widths: list[float | None],
         mono_cols: frozenset[int] = frozenset(), small_mono: bool = False) -> Table:
    """A small data table with a shaded header row; repeats the header across pages."""
    mono = st.cell_hash if small_mono else st.cell_mono
    data = [[st.para(h, st.cell) for h in header]]
    for row in rows:
        data.append([st.para(v, mono if i in mono_cols else st.cell) for i, v in enumerate(row)])
    table = Table(data, colWidths=widths, repeatRows=1)
    table.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (-1, 0), CODE_BG),
        ("TEXTCOLOR", (0, 0), (-1, 0), MUTED),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.3, RULE),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]))
    table.spaceAfter = 6
    return table


def capped(st: Styles, total: int, what: str) -> list[Flowable]:
    if total <= LIST_CAP:
        return []
    return [st.para(f"The first {LIST_CAP} of {total:,} {what} are listed here; every one appears under its "
                    "session below.", st.small)]


def build(ctx: ReportContext) -> list[Flowable]:
    st, m = ctx.styles, ctx.model
    execs = m.executions
    failed = sum(1 for ex in execs if ex.finished and not ex.ok)
    unfinished = sum(1 for ex in execs if not ex.finished)
    story: list[Flowable] = [OutlineMark("summary", "Summary", 0), st.para("Summary", st.h1)]
    rows = [
        ("Sessions", f"{len(m.sessions):,}"),
        ("Executions", f"{len(execs):,}: {m.succeeded:,} succeeded, {failed:,} failed"
                       + (f", {unfinished:,} with no recorded result" if unfinished else "")),
        ("Total compute time", fmt.seconds(m.compute_seconds) + " (sum of execution wall-clock durations)"),
        ("Packages installed", f"{len(m.packages):,}"),
        ("Install network", f"{len(m.install_networks):,} through the egress proxy "
                            f"({sum(1 for n in m.install_networks if n.reached):,} reached their sources); "
                            f"destinations refused: {sum(len(n.refused) for n in m.install_networks):,}"),
        ("Database connections", f"{len(m.db_connections):,} through PgBouncer; refused: "
                                 f"{sum(1 for c in m.db_connections if c.refused):,}"),
        ("HTTP requests", f"{len(m.http_requests):,} through the network policy proxy; refused: "
                          f"{sum(1 for r in m.http_requests if r.refused):,}"),
        *([("Secret leaks", f"{m.secret_leaks:,} (an injected secret found in output, redacted; secret.leak "
                                "entries)")] if m.secret_leaks else []),
        ("Files touched", f"{len(m.files):,}"),
        ("Errors", f"{len(m.errors):,}"),
        ("Agent steps", f"{sum(s.agent_steps for s in m.sessions):,} (llm.* entries)"),
        ("Audit entries", f"{m.entries:,}" + (f" (seq {m.first_seq} to {m.last_seq})" if m.entries else "")),
    ]
    if m.unknown_kinds:
        kinds = ", ".join(f"{k or '(empty)'} x{n}" for k, n in m.unknown_kinds.most_common(12))
        rows.append(("Other entries", kinds))
    story.append(facts_table(st, rows))

    if execs:
        story.append(st.para("Executions by language", st.h2))
        lang_rows = [[lang, f"{t.count:,}", f"{t.succeeded:,}", f"{t.failed:,}", fmt.seconds(t.seconds)]
                     for lang, t in m.by_language.items()]
        story.append(grid(st, ["Language", "Executions", "Succeeded", "Failed", "Compute time"], lang_rows,
                          [50 * mm, 28 * mm, 28 * mm, 28 * mm, None]))

    if m.packages:
        story.append(st.para("Packages installed", st.h2))
        rows_p = [[p.name, p.version or "?", p.manager or "?", p.session_id, fmt.when(p.time)]
                  for p in m.packages[:LIST_CAP]]
        story.append(grid(st, ["Package", "Version", "Manager", "Session", "Time"], rows_p,
                          [45 * mm, 28 * mm, 18 * mm, 28 * mm, None], frozenset({3})))
        story += capped(st, len(m.packages), "packages")

    refusals = [n for n in m.install_networks if n.refused]
    if refusals:
        story.append(st.para("Install network refusals", st.h2))
        story.append(st.para("Installs reach only their configured package sources; these destinations were "
                             "asked for and refused (a package's build script, or a source not configured).",
                             st.small))
        rows_n = [[fmt.when(n.time), n.session_id, n.manager or "?", ", ".join(n.refused)[:600]]
                  for n in refusals[:LIST_CAP]]
        story.append(grid(st, ["Time", "Session", "Manager", "Refused"], rows_n,
                          [34 * mm, 24 * mm, 18 * mm, None], frozenset({1})))
        story += capped(st, len(refusals), "installs with refusals")

    db_refused = [c for c in m.db_connections if c.refused]
    if db_refused:
        story.append(st.para("Database connections refused", st.h2))
        rows_d = [[fmt.when(c.time), c.session_id, c.database, c.refused[:600]] for c in db_refused[:LIST_CAP]]
        story.append(grid(st, ["Time", "Session", "Database", "Reason"], rows_d,
                          [34 * mm, 24 * mm, 24 * mm, None], frozenset({1})))
        story += capped(st, len(db_refused), "refused database connections")

    http_refused = [r for r in m.http_requests if r.refused]
    if http_refused:
        story.append(st.para("HTTP requests refused", st.h2))
        rows_h = [[fmt.when(r.time), r.session_id, f"{r.method} {r.destination}{r.path}"[:200], r.refused[:600]]
                  for r in http_refused[:LIST_CAP]]
        story.append(grid(st, ["Time", "Session", "Request", "Reason"], rows_h,
                          [34 * mm, 24 * mm, 45 * mm, None], frozenset({1})))
        story += capped(st, len(http_refused), "refused HTTP requests")

    if m.files:
        story.append(st.para("Files touched", st.h2))
        items = sorted(m.files.items())
        rows_f = [[path, touch.change + (f" ({times}x)" if times > 1 else ""), touch.sha256 or "(deleted)",
                   fmt.size(touch.size) if touch.size is not None else ""]
                  for path, (touch, times) in items[:LIST_CAP]]
        story.append(st.para("Each file's last recorded change (and how often it changed); the digest is the "
                             "SHA-256 of its content then.", st.small))
        story.append(grid(st, ["Path", "Change", "SHA-256", "Size"], rows_f,
                          [None, 20 * mm, 93 * mm, 17 * mm], frozenset({0, 2}), small_mono=True))
        story += capped(st, len(items), "files")

    if m.errors:
        story.append(st.para("Errors", st.h2))
        rows_e = [[fmt.when(e.time), e.session_id, e.actor, e.message[:600]] for e in m.errors[:LIST_CAP]]
        story.append(grid(st, ["Time", "Session", "Actor", "Message"], rows_e,
                          [34 * mm, 24 * mm, 32 * mm, None], frozenset({1})))
        story += capped(st, len(m.errors), "errors")
    story.append(PageBreak())
    return story

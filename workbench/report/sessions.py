"""The body of the report: each session in log order, each execution in full.

Why this shape: a reviewer follows one session at a time (who or what triggered it, what ran, what came
out). Each execution shows its code with line numbers (continuing across pages), its result, output
excerpts with the truncation said, the digests a reviewer can check against the log, files with hashes
and images it produced. It is built from `LineBlock`s, not Paragraphs or Tables, because this is the
part that grows to tens of thousands of pages (see `flowables`).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

from reportlab.lib.units import mm
from reportlab.platypus import CondPageBreak, Flowable, Image

from workbench import events
from workbench.report import artifacts, fmt
from workbench.report.context import ReportContext
from workbench.report.flowables import Line, LineBlock, OutlineMark
from workbench.report.model import (
    AgentStep,
    ErrorNote,
    Execution,
    InstallNetwork,
    Package,
    Session,
    StreamExcerpt,
    TaskNote,
)
from workbench.report.styles import ACCENT, AMBER, FAINT, GREEN, INK, MUTED, RED, STDERR, Styles

MAX_IMAGE_W = 150 * mm
MAX_IMAGE_H = 110 * mm
MIN_IMAGE_W = 70 * mm
CODE_LINES_CAP = 5000  # lines of one execution's code shown; a note says how many more the log holds
CODE_CHARS_CAP = 400_000  # and characters (a minified one-liner of megabytes would fill a thousand pages)


def session_title(session: Session) -> str:
    trigger = session.trigger or (session.actors[0] if session.actors else "unknown trigger")
    return f"Session {session.id or '(none)'} · {trigger}"


def session_facts(st: Styles, s: Session) -> list[Line]:
    ml = st.mono_line
    rows = [
        ("trigger", s.trigger or "not recorded (no session.started entry in the selection)"),
        ("schedule", " ".join(b for b in (s.schedule, f"cron {s.cron}" if s.cron else "") if b)),
        ("actors", ", ".join(s.actors)),
        ("user", ", ".join(s.users)),
        ("started", fmt.when(s.started_at)),
        ("ended", f"{fmt.when(s.finished_at)}" + (f" ({s.outcome})" if s.outcome else " (no session.finished "
                                                                                       "entry)")),
        ("workbench", s.workbench_version),
        ("sandbox", s.sandbox),
        ("entries", f"{s.entries:,} · {len(s.executions):,} executions · {s.agent_steps:,} agent steps"),
    ]
    for key, value in list(s.details.items())[:8]:
        rows.append((str(key)[:16], str(value)[:300]))
    if s.other_kinds:
        rows.append(("other", ", ".join(f"{k} x{n}" for k, n in s.other_kinds.most_common(8))))
    return [ml(f"{k:<10} {v}", INK if k != "trigger" else ACCENT) for k, v in rows if v]


def outcome_color(ex: Execution):
    if not ex.finished:
        return AMBER
    return GREEN if ex.ok else RED


def exec_heading(st: Styles, ex: Execution) -> list[Line]:
    code = "?" if ex.exit_code is None else str(ex.exit_code)
    result = ex.outcome if not ex.finished or ex.timed_out or ex.killed_by else f"{ex.outcome}, exit {code}"
    head = st.sans_line(f"Execution {ex.number} · {ex.language or 'unknown language'} · {result} · "
                        f"{fmt.seconds(ex.duration) if ex.duration is not None else 'duration unknown'}",
                        outcome_color(ex), 10.5, bold=True)
    sub = st.mono_line(f"id {ex.execution_id} · {fmt.when(ex.started_at or ex.finished_at)} · by {ex.actor}"
                       + (f" · warm session {ex.warm_session}" if ex.warm_session else ""), MUTED, 7.0)
    return [head, sub]


def code_lines(st: Styles, ex: Execution) -> Iterator[Line]:
    code = ex.code or ""
    lines = code.split("\n")
    if lines and lines[-1] == "" and len(lines) > 1:
        lines.pop()
    font, clean = st.fonts.mono, st.fonts.clean
    budget = CODE_CHARS_CAP
    for n, text in enumerate(lines, 1):
        if n > CODE_LINES_CAP or budget <= 0:
            rest = len(code) - sum(len(t) + 1 for t in lines[:n - 1])
            yield Line(f"... {len(lines) - n + 1:,} more lines ({max(rest, 0):,} characters) in the log "
                       "(exec.started entry)", font, 7.6, AMBER, "")
            return
        if len(text) > budget:
            text = text[:budget] + f" ... [{len(text) - budget:,} more characters of this line in the log]"
        budget -= len(text)
        yield Line(clean(text, font, True), font, 7.6, INK, str(n))


def result_facts(st: Styles, ex: Execution) -> list[Line]:
    ml = st.mono_line
    exit_text = "not recorded" if ex.exit_code is None else str(ex.exit_code)
    out = [ml(f"exit code  {exit_text:<8} duration {fmt.seconds(ex.duration):<12} "
              f"timed out {fmt.yes_no(ex.timed_out)}   killed by {ex.killed_by or '-'}",
              INK if ex.ok else RED, bold=True)]
    if not ex.finished:
        out.append(ml("no exec.finished entry: the execution was interrupted or is outside the selection", AMBER))
    limits = "enforced" if ex.limits_enforced else ("NOT enforced" if ex.limits_enforced is False else "unknown")
    applied = ", ".join(f"{k} {v}" for k, v in list(ex.limits.items())[:10] if k != "enforced")
    out.append(ml(f"limits     {limits}" + (f" ({applied})" if applied else ""),
                  AMBER if ex.limits_enforced is False else MUTED))
    if ex.state_lost:
        out.append(ml("state lost: the warm session's interpreter had to restart", AMBER))
    for note in ex.notes[:10]:
        out.append(ml(f"note       {note}", AMBER))
    for conn in ex.connections[:50]:  # its Network lines: each database connection, refusals in red
        if conn.refused:
            out.append(ml(f"network    database {conn.database} refused: {conn.refused}", RED))
        else:
            role = f" as {conn.role}" if conn.role else ""
            out.append(ml(f"network    database {conn.database}{role} · {fmt.seconds(conn.duration)} · "
                          f"{fmt.size(conn.bytes_up or 0)} up, {fmt.size(conn.bytes_down or 0)} down", MUTED))
    if len(ex.connections) > 50:
        out.append(ml(f"... and {len(ex.connections) - 50:,} more database connections (net.connection entries)",
                      AMBER))
    for leak in ex.leaks[:10]:
        out.append(ml(f"leak       {leak}", RED))
    for req in ex.requests[:50]:  # and each HTTP request through the policy proxy, refusals in red
        where = f"{req.method} {req.destination}{req.path}"
        if req.refused:
            out.append(ml(f"network    {where} refused: {req.refused}", RED))
        else:
            injected = f" · credential {req.credential}" if req.credential else ""
            out.append(ml(f"network    {where} · {req.status if req.status is not None else '?'} · "
                          f"{fmt.seconds(req.duration)} · {fmt.size(req.bytes_up or 0)} up, "
                          f"{fmt.size(req.bytes_down or 0)} down{injected}", MUTED))
    if len(ex.requests) > 50:
        out.append(ml(f"... and {len(ex.requests) - 50:,} more HTTP requests (net.request entries)", AMBER))
    seqs = [seq for seq, _ in ex.entry_hashes]
    if seqs:
        last_seq, last_hash = ex.entry_hashes[-1]
        span = f"entry {seqs[0]}" if len(seqs) == 1 else f"entries {seqs[0]}..{seqs[-1]}"
        out.append(ml(f"log        {span} · #{last_seq} {last_hash}", FAINT))
    return out


def stream_lines(st: Styles, stream: StreamExcerpt, color) -> tuple[list[Line], list[Line]]:
    """(header lines, excerpt lines) of one output stream."""
    ml = st.mono_line
    total = fmt.size(stream.total_bytes) if stream.total_bytes is not None else "size not recorded"
    if stream.total_bytes == 0 and not stream.logged_chars:
        return [ml(f"{stream.name:<6}     (empty)", FAINT)], []
    head = [ml(f"{stream.name:<6}     {total}" + (f" · sha256 {stream.sha256}" if stream.sha256 else ""), color)]
    if stream.truncated:
        head.append(ml(f"           the sandbox kept the first {fmt.size(stream.kept_bytes)} of "
                       f"{fmt.size(stream.total_bytes)} (output cap); the digest covers all of it", AMBER))
    body: list[Line] = []
    if stream.logged_chars:
        text = stream.text
        if text.endswith("\n"):
            text = text[:-1]
        font, clean = st.fonts.mono, st.fonts.clean
        body = [Line(clean(t, font, True), font, 7.3, INK) for t in text.split("\n")]
        if stream.cut:
            body.append(Line(f"[excerpt: first {stream.shown_lines:,} lines / {stream.shown_chars:,} characters "
                             f"of {stream.logged_chars:,} characters in the log]", font, 7.0, AMBER))
    elif stream.total_bytes:
        head.append(ml("           no output text in the selected log entries", AMBER))
    return head, body


def file_lines(st: Styles, ex: Execution) -> list[Line]:
    """Two rows a file: what changed and where, then its digest (a 64-digit hash needs its own row)."""
    ml = st.mono_line
    out = []
    for f in ex.files[:500]:
        size = f" ({fmt.size(f.size)})" if f.size is not None else ""
        out.append(ml(f"{'file':<10} {f.change} {f.path}{size}"))
        out.append(ml(f"{'':<10} sha256 {f.sha256}" if f.sha256 else f"{'':<10} (no digest: deleted)", MUTED))
    if len(ex.files) > 500:
        out.append(ml(f"... and {len(ex.files) - 500:,} more files (in the exec.finished entry)", AMBER))
    for f in ex.files_read[:500]:
        size = f" ({fmt.size(f.size)})" if f.size is not None else ""
        out.append(ml(f"{'file':<10} {f.change} {f.path}{size}"))
        out.append(ml(f"{'':<10} sha256 {f.sha256}" if f.sha256 else f"{'':<10} (no digest: {f.change})", MUTED))
    if len(ex.files_read) > 500:
        out.append(ml(f"... and {len(ex.files_read) - 500:,} more files read (in the exec.finished entry)", AMBER))
    if ex.reads_own:
        counted = ", ".join(f"{n:,} in {folder}" for folder, n in sorted(ex.reads_own.items()))
        out.append(ml(f"{'read':<10} Workbench's own folders: {counted} (counted, not listed)", MUTED))
    return out


def artifact_flowables(ctx: ReportContext, ex: Execution) -> list[Flowable]:
    st = ctx.styles
    story: list[Flowable] = []
    for art in ex.artifacts[:50]:
        lines = [st.mono_line(f"artifact   {art.path} ({art.mime or 'unknown type'}, {fmt.size(art.size)})"),
                 st.mono_line(f"           sha256 {art.sha256 or 'not recorded'}", MUTED)]
        story.append(st.block(lines, st.facts))
        if not artifacts.is_image(art):
            continue
        verdict = artifacts.check(ctx.project.workspace, art)
        if verdict.embed and verdict.data:
            picture = _image(verdict.data)  # the bytes whose digest matched, never the file re-read by name
            if picture is not None:
                story.append(picture)
                continue
            verdict = artifacts.ArtifactCheck(None, False, "the image cannot be decoded")
        story.append(st.block([st.mono_line(f"           image not shown: {verdict.reason}", AMBER)], st.facts))
    return story


def _image(data: bytes) -> Image | None:
    try:
        from reportlab.lib.utils import ImageReader

        w, h = ImageReader(io.BytesIO(data)).getSize()
    except Exception:
        return None
    if w <= 0 or h <= 0:
        return None
    scale = min(1.0, MAX_IMAGE_W / w, MAX_IMAGE_H / h)  # one pixel to one point at most: 72 dpi
    if w * scale < MIN_IMAGE_W:  # small plots are scaled up to a readable width
        scale = min(MIN_IMAGE_W / w, MAX_IMAGE_H / h)
    picture = Image(io.BytesIO(data), width=w * scale, height=h * scale)
    picture.hAlign = "LEFT"
    picture.spaceBefore, picture.spaceAfter = 3, 6
    return picture


def execution(ctx: ReportContext, ex: Execution) -> list[Flowable]:
    st = ctx.styles
    story: list[Flowable] = [CondPageBreak(34 * mm),
                             OutlineMark(f"x{ex.number}", f"#{ex.number} {ex.language} · {ex.outcome}", 2),
                             LineBlock(exec_heading(st, ex), st.exec_head)]
    if ex.code is None:
        story.append(LineBlock([st.mono_line("code not in the selected entries (its exec.started entry is outside "
                                             "the selection)", AMBER)], st.note))
    elif ex.code == "":
        story.append(LineBlock([st.mono_line("(empty code)", MUTED)], st.code))
    else:
        story.append(LineBlock(list(code_lines(st, ex)), st.code))
    facts = result_facts(st, ex)
    ran_with = ctx.environments.label_of(ex.execution_id) if ctx.environments is not None else ""
    if ran_with:
        facts.append(st.mono_line(f"environment {ran_with}", MUTED))
    out_head, out_body = stream_lines(st, ex.stdout, INK)
    err_head, err_body = stream_lines(st, ex.stderr, STDERR)
    story.append(LineBlock(facts + out_head, st.facts))
    if out_body:
        story.append(LineBlock(out_body, st.output))
    story.append(LineBlock(err_head, st.facts))
    if err_body:
        story.append(LineBlock(err_body, st.output_err))
    files = file_lines(st, ex)
    if files:
        story.append(LineBlock(files, st.facts))
    if ex.artifacts:
        story += artifact_flowables(ctx, ex)
    return story


def other_item(st: Styles, item: Package | InstallNetwork | ErrorNote | TaskNote | AgentStep) -> Flowable:
    ml = st.mono_line
    if isinstance(item, InstallNetwork):
        reached = ", ".join(item.reached) or "nothing"
        lines = [ml(f"install network · {item.manager or '?'} · {fmt.when(item.time)} · by {item.actor}", ACCENT),
                 ml(f"  reached {reached} · {item.requests:,} request{'s' if item.requests != 1 else ''}", MUTED)]
        if item.refused:
            lines.append(ml(f"  refused {', '.join(item.refused)}", RED, bold=True))
        lines += [ml(f"  could not reach {u}", AMBER) for u in item.unreachable[:10]]
        return LineBlock(lines, st.exec_head)
    if isinstance(item, AgentStep):
        step = f" {item.step}" if item.step is not None else ""
        if item.error:
            lines = [ml(f"agent step{step} · reply was not a valid action: {item.error[:400]}", AMBER)]
        else:
            lines = [ml(f"agent step{step} · {item.action or 'action not recorded'} · {fmt.when(item.time)}", MUTED)]
        lines += [ml(t, MUTED) for t in item.thought[:1200].split("\n")[:12] if t]
        return LineBlock(lines, st.agent)
    if isinstance(item, Package):
        line = ml(f"package installed · {item.name} {item.version or '(version not recorded)'} via "
                  f"{item.manager or '?'} · {fmt.when(item.time)} · by {item.actor}", ACCENT)
        return LineBlock([line], st.exec_head)
    if isinstance(item, ErrorNote):
        lines = [ml(f"error · {fmt.when(item.time)} · entry {item.seq} · by {item.actor}", RED, bold=True)]
        lines += [ml(t, RED) for t in item.message.split("\n")[:40]]
        return LineBlock(lines, st.event_err)
    label = "task started" if item.kind == events.TASK_STARTED else "task finished"
    lines = [ml(f"{label} · {fmt.when(item.time)} · by {item.actor}", ACCENT, bold=True)]
    lines += [ml(t, INK) for t in (item.text or "").split("\n")[:60] if t]
    return LineBlock(lines, st.exec_head)


def build(ctx: ReportContext, tick: Callable[[], None] | None = None) -> Iterator[Flowable]:
    """The sessions part, yielded flowable by flowable; `tick()` after each execution (progress)."""
    st = ctx.styles
    yield OutlineMark("sessions", "Sessions", 0, closed=False)
    yield st.para("Sessions", st.h1)
    if not ctx.model.sessions:
        yield st.para("No entries in the selection.", st.body)
    for index, session in enumerate(ctx.model.sessions, 1):
        yield CondPageBreak(60 * mm)
        yield OutlineMark(f"s{index}", session_title(session), 1, closed=True)
        yield st.para(session_title(session), st.h2)
        yield LineBlock(session_facts(st, session), st.facts)
        for item in session.items:
            if isinstance(item, Execution):
                yield from execution(ctx, item)
                if tick is not None:
                    tick()
            else:
                yield other_item(st, item)

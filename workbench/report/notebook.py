"""One session of the audit log as a Jupyter notebook a reviewer can open (`workbench export notebook`).

What goes where: the task, each agent step and each other event become Markdown cells; each execution a
code cell with its language in the cell's metadata, its stdout/stderr as stream outputs, the images it
wrote as display data, and a plain-text note with its exit code, time-out and truncation. Every cell's
metadata names the audit entries it came from (`workbench.entries`: seq and hash), and a code cell also
its execution id and the SHA-256 of its code, so the notebook can be checked against the log.

The notebook is built from the report's own collection (`model.collect` over `source.read`): the log is
decoded once, through the event contract, exactly as the PDF reads it. The log is verified first; one that
does not verify is refused, unless the caller asks for the export anyway, which then opens with a warning.

Text from the model or the sandbox is data, never markup. Stream outputs and text/plain outputs are shown
as text by every renderer. What goes into a Markdown cell is made inert (`workbench.inert`) and then every
ASCII punctuation character is escaped, HTML's as character references and the rest with a backslash, so
no tag, link, emphasis or `$` math can be formed from it. SVG images are embedded as an ``<img>`` with a
data: URI (which a browser never runs script in), never as inline SVG markup.
"""

from __future__ import annotations

import base64
import hashlib
import os
import string
import tempfile
from collections import Counter, defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench import __version__, events
from workbench.errors import WorkbenchError
from workbench.inert import one_line, visible
from workbench.project import Project
from workbench.report import artifacts, fmt
from workbench.report.model import (
    AgentStep,
    ArtifactRef,
    ErrorNote,
    Execution,
    InstallNetwork,
    Item,
    Package,
    Session,
    StreamExcerpt,
    TaskNote,
)

IMAGE_FORMATS = frozenset({"image/png", "image/jpeg", "image/jpg", "image/svg+xml"})
IMAGE_BYTES_CAP = 8 * 1024 * 1024  # one image larger than this is named, not embedded
NOTEBOOK_IMAGE_BYTES_CAP = 64 * 1024 * 1024  # all images of one notebook together
SESSIONS_NAMED = 10  # a missing session's error names at most this many of the log's sessions

# Which audit entries each kind of timeline item was collected from (one item per entry, in log order).
ITEM_KINDS: dict[type, tuple[str, ...]] = {
    AgentStep: (events.LLM_ACTION, events.LLM_MALFORMED),
    TaskNote: (events.TASK_STARTED, events.TASK_FINISHED),
    Package: (events.PACKAGE_INSTALLED,),
    InstallNetwork: (events.INSTALL_EGRESS,),
    ErrorNote: (events.ERROR,),
}

KERNELS: dict[str, tuple[dict[str, str], dict[str, str]]] = {  # language -> (kernelspec, language_info)
    "python": ({"name": "python3", "display_name": "Python 3", "language": "python"},
               {"name": "python", "file_extension": ".py", "pygments_lexer": "python3"}),
    "r": ({"name": "ir", "display_name": "R", "language": "R"},
          {"name": "R", "file_extension": ".r", "pygments_lexer": "r"}),
    "shell": ({"name": "bash", "display_name": "Bash", "language": "bash"},
              {"name": "bash", "file_extension": ".sh", "pygments_lexer": "bash"}),
}


class NotebookError(WorkbenchError):
    """The notebook could not be exported: no such session, a log that does not verify, an unwritable file."""

    exit_code = 1


@dataclass(frozen=True)
class NotebookSummary:
    path: Path
    session: str
    cells: int
    executions: int
    images: int
    verified: bool
    verification_error: str
    root: str


# --- text that came from the model or the sandbox, made safe for a Markdown cell ---------------------------
_REFERENCES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
_ESCAPED = {c: _REFERENCES.get(c, "\\" + c) for c in string.punctuation}


def markdown_text(text: object, *, single_line: bool = False) -> str:
    """`text` as Markdown that renders exactly as the text: no markup, HTML, link, math or layout from it.

    Control characters become visible escapes first (`workbench.inert`). Then every ASCII punctuation
    character is escaped, so nothing can open a tag, an entity, emphasis, a link, a heading, a list or `$`
    math; leading blanks become no-break spaces (no indented code block) and each line break a hard break.
    """
    shown = one_line(text) if single_line else visible(text)
    lines = []
    for line in shown.replace("\r\n", "\n").split("\n"):
        body = line.lstrip(" \t")
        indent = "&#160;" * (len(line[:len(line) - len(body)].expandtabs(4)))
        lines.append(indent + "".join(_ESCAPED.get(c, c) for c in body))
    out = []
    for n, line in enumerate(lines):
        follows = n + 1 < len(lines) and lines[n + 1] != ""
        out.append(line + ("\\" if line and follows else ""))
    return "\n".join(out)


# --- reading the session ------------------------------------------------------------------------------------
def session_ids(project: Project) -> list[str]:
    """The ids of the sessions in the project's log, in log order."""
    from workbench.audit import AuditLog
    from workbench.audit.store import AuditStore

    store = AuditStore(project.audit_db, create=False, readonly=True)
    try:
        return [s.id for s in AuditLog(store, store.meta("origin") or "").sessions() if s.id]
    finally:
        store.close()


def missing_session(project: Project, session_id: str) -> NotebookError:
    known = session_ids(project)
    if not known:
        return NotebookError(f"no session {one_line(session_id)!r}: the audit log holds no sessions yet")
    named = ", ".join(one_line(s) for s in known[-SESSIONS_NAMED:])
    more = f" (the last {SESSIONS_NAMED} of {len(known)}; all: workbench audit export)" \
        if len(known) > SESSIONS_NAMED else ""
    return NotebookError(f"no session {one_line(session_id)!r} in the audit log; its sessions: {named}{more}")


def entry_refs(entries: Iterable[Any]) -> dict[str, deque[tuple[int, str]]]:
    """Per kind, the (seq, hash) of each entry in log order: which entry each timeline item came from."""
    refs: dict[str, deque[tuple[int, str]]] = defaultdict(deque)
    for entry in entries:
        refs[str(entry.kind or "")].append((int(entry.seq), str(entry.hash or "")))
    return refs


def item_entries(item: Item, refs: dict[str, deque[tuple[int, str]]]) -> list[tuple[int, str]]:
    kinds = ITEM_KINDS.get(type(item), ())
    if isinstance(item, TaskNote):
        kinds = (item.kind,)
    # The collector made one item per entry of these kinds, in log order: the oldest unclaimed is this one's.
    candidates = [refs[k][0] for k in kinds if refs.get(k)]
    if not candidates:
        return []
    seq, digest = min(candidates)
    for k in kinds:
        if refs.get(k) and refs[k][0][0] == seq:
            refs[k].popleft()
    return [(seq, digest)]


# --- cells ----------------------------------------------------------------------------------------------
def cell_meta(kind: str, entries: list[tuple[int, str]], **extra: Any) -> dict[str, Any]:
    return {"workbench": {"kind": kind, "entries": [{"seq": s, "hash": h} for s, h in entries], **extra}}


def header_cell(nbf: Any, session: Session, verification: Any, entries: list[tuple[int, str]]) -> Any:
    md = markdown_text
    rows = [("trigger", session.trigger or "not recorded"), ("actors", ", ".join(session.actors)),
            ("user", ", ".join(session.users)), ("started", fmt.when(session.started_at)),
            ("ended", fmt.when(session.finished_at) + (f" ({session.outcome})" if session.outcome else "")),
            ("sandbox", session.sandbox), ("recorded by", f"Workbench {session.workbench_version}"
                                           if session.workbench_version else "")]
    lines = [f"# Session {md(session.id, single_line=True)}", ""]
    lines += [f"- **{name}**: {md(value, single_line=True)}" for name, value in rows if value]
    state = "verified" if verification.ok else "DID NOT VERIFY"
    lines.append(f"- **audit log**: {state} at export time, {verification.entries:,} entries, root "
                 f"{md(verification.root or 'unknown', single_line=True)}")  # no code span: it keeps escapes
    lines += ["", f"Exported by Workbench {__version__} from the audit log: each cell's metadata "
                  "(`workbench.entries`) names the entries it shows."]
    meta = cell_meta("session", entries, session_id=session.id)
    return nbf.new_markdown_cell("\n".join(lines), metadata=meta)


def warning_cell(nbf: Any, verification: Any) -> Any:
    text = (f"## ⚠ The audit log did NOT verify at export time\n\n"
            f"{markdown_text(verification.error or 'verification failed', single_line=True)}\n\n"
            "What follows is what the log holds now; it may have been changed after it was recorded. "
            "Check it with `workbench audit verify`.")
    return nbf.new_markdown_cell(text, metadata=cell_meta("verification-warning", [], error=verification.error))


def item_cell(nbf: Any, item: Item, entries: list[tuple[int, str]]) -> Any:
    md = markdown_text
    when = fmt.when(getattr(item, "time", None))
    if isinstance(item, TaskNote):
        label = "Task" if item.kind == events.TASK_STARTED else "Task finished"
        text = f"## {label}\n\n{md(item.text or '(no words recorded)')}\n\n*{md(f'{when} · {item.actor}')}*"
    elif isinstance(item, AgentStep):
        step = f" {item.step}" if item.step is not None else ""
        if item.error:
            head = f"**Agent step{step}**: the reply was not a valid action: {md(item.error, single_line=True)}"
        else:
            head = f"**Agent step{step} · {md(item.action or 'action not recorded', single_line=True)}**"
        text = head + (f"\n\n{md(item.thought)}" if item.thought else "") + f"\n\n*{md(when)}*"
    elif isinstance(item, Package):
        text = (f"**Package installed**: {md(f'{item.name} {item.version}'.strip(), single_line=True)} via "
                f"{md(item.manager or '?', single_line=True)} · *{md(when)}*")
    elif isinstance(item, InstallNetwork):
        reached = ", ".join(item.reached) or "nothing"
        text = (f"**Install network** ({md(item.manager or '?', single_line=True)}): reached "
                f"{md(reached, single_line=True)}" + (f"; refused {md(', '.join(item.refused), single_line=True)}"
                                                      if item.refused else "") + f" · *{md(when)}*")
    elif isinstance(item, ErrorNote):
        text = f"**Error** (entry {item.seq}): {md(item.message)}"
    else:  # a kind of timeline item this exporter does not know yet: named, never a crash
        text = f"**{md(type(item).__name__, single_line=True)}** · *{md(when)}*"
    kind = type(item).__name__.lower()
    meta = cell_meta(kind, entries, time=when, actor=getattr(item, "actor", ""))
    return nbf.new_markdown_cell(text, metadata=meta)


def stream_note(stream: StreamExcerpt) -> str:
    if stream.truncated:
        return (f"{stream.name}: the sandbox kept the first {fmt.size(stream.kept_bytes)} of "
                f"{fmt.size(stream.total_bytes)} (output cap); sha256 {stream.sha256} covers all of it")
    if stream.cut:
        return (f"{stream.name}: the notebook shows the first {stream.shown_lines:,} lines / "
                f"{stream.shown_chars:,} "
                f"characters of {stream.logged_chars:,} in the log (workbench audit export has all of it)")
    if stream.total_bytes and not stream.logged_chars:
        return f"{stream.name}: {fmt.size(stream.total_bytes)} written, no output text in the log"
    return ""


class ImageBudget:
    def __init__(self) -> None:
        self.left = NOTEBOOK_IMAGE_BYTES_CAP
        self.embedded = 0


def image_output(nbf: Any, workspace: Path, art: ArtifactRef, budget: ImageBudget) -> tuple[Any | None, str]:
    """(a display_data output of the image, or None; why not, or "")."""
    verdict = artifacts.check(workspace, art, IMAGE_FORMATS)  # confined read, digest checked
    if not verdict.embed:
        return None, verdict.reason
    data = verdict.data
    if len(data) > IMAGE_BYTES_CAP or len(data) > budget.left:
        cap = IMAGE_BYTES_CAP if len(data) > IMAGE_BYTES_CAP else budget.left
        return None, f"{len(data):,} bytes is over the notebook's cap ({cap:,} bytes left for it)"
    budget.left -= len(data)
    budget.embedded += 1
    encoded = base64.b64encode(data).decode("ascii")
    mime = "image/jpeg" if art.mime.lower() == "image/jpg" else art.mime.lower()
    if mime == "image/svg+xml":  # an <img> never runs the SVG's own script; inline SVG markup would
        bundle = {"text/html": f'<img alt="image" src="data:image/svg+xml;base64,{encoded}"/>'}
    else:
        bundle = {mime: encoded}
    bundle["text/plain"] = f"<image {one_line(art.path)}>"
    meta = {"workbench": {"path": art.path, "sha256": art.sha256, "size": len(data)}}
    return nbf.new_output("display_data", data=bundle, metadata=meta), ""


def execution_cell(nbf: Any, ex: Execution, count: int, workspace: Path, budget: ImageBudget) -> Any:
    code = ex.code if ex.code is not None else ""
    outputs = []
    for stream in (ex.stdout, ex.stderr):
        if stream.logged_chars:
            outputs.append(nbf.new_output("stream", name=stream.name, text=stream.text))
    notes = [f"{ex.outcome}" + (f", exit code {ex.exit_code}" if ex.exit_code is not None else "")
             + (f" · {fmt.seconds(ex.duration)}" if ex.duration is not None else "")
             + (" · timed out" if ex.timed_out else "") + (f" · killed by {ex.killed_by}" if ex.killed_by else "")]
    if ex.code is None:
        notes.append("the code is not in the log (no exec.started entry)")
    notes += [n for n in (stream_note(ex.stdout), stream_note(ex.stderr)) if n]
    notes += [f"note: {n}" for n in ex.notes[:10]]
    if ex.state_lost:
        notes.append("state lost: the warm session's interpreter had to restart")
    for touched in ex.files[:100]:
        digest = f" sha256 {touched.sha256}" if touched.sha256 else ""
        notes.append(f"file {touched.change} {touched.path}{digest}")
    if len(ex.files) > 100:
        notes.append(f"and {len(ex.files) - 100:,} more files (in the exec.finished entry)")
    for art in ex.artifacts[:50]:
        if art.mime.lower() not in IMAGE_FORMATS:
            continue
        output, why = image_output(nbf, workspace, art, budget)
        if output is not None:
            outputs.append(output)
        else:
            notes.append(f"image {art.path} not shown: {why}")
    outputs.append(nbf.new_output("display_data", data={"text/plain": "[workbench] " + "\n[workbench] ".join(
        one_line(n) for n in notes)}, metadata={"workbench": {"note": True}}))
    meta = cell_meta("execution", ex.entry_hashes, execution_id=ex.execution_id,
                     code_sha256=hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()
                     if ex.code is not None else None,
                     exit_code=ex.exit_code, outcome=ex.outcome, duration=ex.duration, timed_out=ex.timed_out,
                     actor=ex.actor, started=fmt.when(ex.started_at) if ex.started_at else "",
                     stdout_sha256=ex.stdout.sha256, stderr_sha256=ex.stderr.sha256,
                     warm_session=ex.warm_session)
    meta["language"] = ex.language or "unknown"
    return nbf.new_code_cell(code, execution_count=count, outputs=outputs, metadata=meta)


def kernel_of(session: Session) -> tuple[dict[str, str], dict[str, str]]:
    """The notebook's kernelspec and language_info: the session's most used language."""
    used = Counter(ex.language for ex in session.executions if ex.language)
    main = used.most_common(1)[0][0] if used else "python"
    from workbench import languages

    try:
        name = languages.get(main).name
    except WorkbenchError:
        name = main
    if name in KERNELS:
        spec, info = KERNELS[name]
        return dict(spec), dict(info)
    return {"name": name, "display_name": name, "language": name}, {"name": name}


def build(project: Project, session: Session, entries: list[Any], verification: Any) -> tuple[Any, int]:
    """The notebook of `session` (collected from `entries`) and how many images it embeds."""
    import nbformat.v4 as nbf

    refs = entry_refs(entries)
    budget = ImageBudget()
    started = refs.get(events.SESSION_STARTED)
    cells = [header_cell(nbf, session, verification, [started[0]] if started else [])]
    if not verification.ok:
        cells.insert(0, warning_cell(nbf, verification))
    count = 0
    for item in session.items:
        if isinstance(item, Execution):
            count += 1
            cells.append(execution_cell(nbf, item, count, project.workspace, budget))
        else:
            cells.append(item_cell(nbf, item, item_entries(item, refs)))
    spec, info = kernel_of(session)
    notebook = nbf.new_notebook(cells=cells, metadata={
        "kernelspec": spec, "language_info": info,
        "workbench": {"session_id": session.id, "exported_by": f"Workbench {__version__}",
                      "log_verified": bool(verification.ok), "log_entries": verification.entries,
                      "log_root": verification.root, "key_fingerprint": verification.fingerprint,
                      "verification_error": verification.error}})
    return notebook, budget.embedded


def export_notebook(project: Project, out_path: Path | str, session_id: str, *,
                    allow_unverified: bool = False) -> NotebookSummary:
    """Write session `session_id` of `project`'s audit log to `out_path` as a notebook (see the docstring)."""
    import nbformat

    from workbench.report import model, source

    out = Path(out_path)
    out_dir = out.parent if str(out.parent) else Path(".")
    if not out_dir.is_dir():
        raise NotebookError(f"cannot write {out}: the folder {out_dir} does not exist")
    snapshot = source.read(project, session=session_id)
    verification = snapshot.verification
    if not verification.ok and not allow_unverified:
        raise NotebookError(f"the audit log did not verify: {verification.error}",
                            "nothing was exported; --unverified exports it anyway, marked as unverified")
    collected = model.collect(snapshot.entries)
    session = next((s for s in collected.sessions if s.id == session_id), None)
    if session is None:
        raise missing_session(project, session_id)
    notebook, images = build(project, session, snapshot.entries, verification)
    nbformat.validate(notebook)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out_dir)
    except OSError as exc:
        raise NotebookError(f"cannot write in {out_dir}: {exc.strerror or exc}") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            nbformat.write(notebook, handle)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except OSError as exc:
        raise NotebookError(f"cannot write {out}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return NotebookSummary(out, session.id, len(notebook.cells), len(session.executions), images,
                           bool(verification.ok), verification.error, verification.root)


__all__ = ["NotebookError", "NotebookSummary", "export_notebook", "markdown_text"]

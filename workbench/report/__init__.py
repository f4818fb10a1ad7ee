"""The PDF compliance report: what ran, who started it, and whether the record can be trusted.

It reads the audit log only (so the record a reviewer sees is exactly what the user saw), verifies it
at export time, and renders with reportlab. The CLI (`workbench report`) and the TUI's export action
both call `render_report`:

    summary = render_report(project, Path("report.pdf"), since=None, until=None, session=None,
                            progress=lambda done, total, stage: ..., cancelled=lambda: False)

`progress(done, total, stage)` is called from the rendering thread with stage "read", "collect" or
"render"; `cancelled()` is polled as often and, when it returns True, the build stops, no file is left
behind, and `ReportCancelled` is raised. The PDF is written to a temporary file beside `out_path` and
moved into place only when complete.

Modules, one job each: source (read and verify the log), model (entries -> dataclasses), fonts,
styles, flowables (fast line blocks), cover, summary, verification, sessions, artifacts (embed images
only when their hash matches), environment (engine facts), pdf (page furniture, build loop).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from workbench import __version__
from workbench.errors import WorkbenchError
from workbench.project import Project

Progress = Callable[[int, int, str], None]


class ReportCancelled(WorkbenchError):
    """The caller asked the report to stop; nothing was written."""

    exit_code = 130


class ReportError(WorkbenchError):
    """The report could not be written (the PDF file, not the log, is the problem)."""

    exit_code = 1


@dataclass(frozen=True)
class ReportSummary:
    path: Path
    pages: int
    sessions: int
    executions: int
    entries: int
    verified: bool
    verification_error: str
    root: str
    seconds: float
    bytes: int


def render_report(project: Project, out_path: Path | str, since: datetime | None = None,
                  until: datetime | None = None, session: str | None = None, progress: Progress | None = None,
                  cancelled: Callable[[], bool] | None = None) -> ReportSummary:
    """Write the compliance report of `project`'s audit log to `out_path` (see the module docstring)."""
    from workbench.events import current_user
    from workbench.report import cover, environment, model, pdf, sessions, source, summary, verification
    from workbench.report import software as software_section
    from workbench.report.context import ReportContext, Selection
    from workbench.report.fonts import fonts
    from workbench.report.styles import make_styles
    from workbench.report.witnesses import build as witnesses_section

    started = time.perf_counter()
    out = Path(out_path)

    def report(done: int, total: int, stage: str) -> None:
        if cancelled is not None and cancelled():
            raise ReportCancelled("the report was cancelled; no file was written")
        if progress is not None:
            progress(done, total, stage)

    report(0, 1, "read")
    unsigned_note = verification.sign_head_first(project)  # nothing is exported unsigned that can be signed
    snapshot = source.read(project, since=since, until=until, session=session)
    verification.note_unsigned(snapshot, unsigned_note)
    total_entries = len(snapshot.entries)
    report(0, total_entries, "collect")
    collected = model.collect(snapshot.entries, lambda n: report(n, total_entries, "collect"))
    environments = software_section.collect(snapshot.entries)
    snapshot.entries = []  # the model holds what the report needs; free the rows
    engine = environment.probe_engine(project)
    ctx = ReportContext(project, make_styles(fonts()), snapshot, collected, engine,
                        Selection(since, until, session), datetime.now(UTC), current_user(), __version__,
                        environments)

    story = cover.build(ctx) + summary.build(ctx) + verification.build(ctx) + witnesses_section(ctx)
    story += list(sessions.build(ctx))
    story += software_section.build(ctx, environments)

    out_dir = out.parent if str(out.parent) else Path(".")
    if not out_dir.is_dir():
        raise ReportError(f"cannot write {out}: the folder {out_dir} does not exist")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out_dir)
        os.close(fd)
    except OSError as exc:
        raise ReportError(f"cannot write in {out_dir}: {exc.strerror or exc}") from exc
    tmp = Path(tmp_name)
    try:
        pages = pdf.build(str(tmp), ctx, story, progress=lambda d, t: report(d, t, "render"),
                          cancelled=cancelled)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except pdf.Cancelled as exc:
        raise ReportCancelled("the report was cancelled; no file was written") from exc
    except OSError as exc:
        raise ReportError(f"cannot write {out}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    v = snapshot.verification
    return ReportSummary(out, pages, len(collected.sessions), len(collected.executions), collected.entries,
                         v.ok, v.error, ctx.root, time.perf_counter() - started, out.stat().st_size)


__all__ = ["ReportCancelled", "ReportError", "ReportSummary", "render_report"]

"""The PDF document: page furniture, metadata, outline, and the build loop with progress and cancel.

Why the details here matter:
* every page carries the project, "page X of Y" and the log's root hash (red when the log did not
  verify), so a single printed page still says what it belongs to. "of Y" is a PDF form XObject filled
  in once the page count is known: one pass, no second build.
* reportlab's build loop removes flowables from the front of a Python list (O(n) each); `FlowQueue`
  keeps the story reversed so those operations are O(1): it matters at 10,000 executions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from reportlab import rl_config
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import BaseDocTemplate, Flowable, Frame, PageTemplate

from workbench.report.context import ReportContext
from workbench.report.styles import FAINT, MUTED, RED, RULE

PAGES_FORM = "wbPageTotal"


class Cancelled(Exception):
    """Raised inside the build when the caller's cancel check says stop."""


class FlowQueue:
    """The list operations reportlab's build loop uses, O(1) at the front (items stored reversed)."""

    def __init__(self, items: Iterable[Flowable]):
        self._rev = list(items)
        self._rev.reverse()

    def __len__(self) -> int:
        return len(self._rev)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self._rev))
            if step != 1:
                raise IndexError("FlowQueue slices have no step")
            size = len(self._rev)
            return [self._rev[size - 1 - i] for i in range(start, stop)]
        if index < 0:
            index += len(self._rev)
        return self._rev[len(self._rev) - 1 - index]

    def __delitem__(self, index: int | slice) -> None:
        if isinstance(index, slice):
            start, stop, _ = index.indices(len(self._rev))
            if start != 0:
                raise IndexError("FlowQueue deletes from the front only")
            if stop:
                del self._rev[len(self._rev) - stop:]
            return
        if index not in (0, -len(self._rev)):
            raise IndexError("FlowQueue deletes from the front only")
        self._rev.pop()

    def __setitem__(self, index: slice, values: Iterable[Flowable]) -> None:
        if not (isinstance(index, slice) and index.start in (0, None) and index.stop == 0):
            raise IndexError("FlowQueue only inserts at the front")
        self._rev.extend(reversed(list(values)))

    def insert(self, index: int, value: Flowable) -> None:
        if index != 0:
            raise IndexError("FlowQueue only inserts at the front")
        self._rev.append(value)


class _PageCanvas(Canvas):
    """Writes the page total into the "of Y" form just before the file is saved."""

    def save(self) -> None:
        pages = self._pageNumber - (0 if self._code else 1)
        self.beginForm(PAGES_FORM)
        self.setFont(self._wb_font, 7)
        self.setFillColor(MUTED)
        self.drawString(0, 0, f"{pages:,}")
        self.endForm()
        self._wb_pages = pages
        super().save()


class ReportDocument(BaseDocTemplate):
    def __init__(self, filename: str, ctx: ReportContext, on_flowable: Callable[[], None] | None = None):
        st = ctx.styles
        super().__init__(
            filename, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=17 * mm,
            bottomMargin=20 * mm, title=f"Workbench compliance report: {ctx.project.name}",
            author=ctx.generated_by, subject=f"Audit log of project {ctx.project.name} ({ctx.project.id}); "
                                             f"root {ctx.root or 'unknown'}; "
                                             f"{'verified' if ctx.verified else 'DID NOT VERIFY'}",
            creator=f"Workbench {ctx.version}", keywords=["audit", "compliance", "workbench", ctx.project.id],
            pageCompression=1, invariant=0)
        self.ctx = ctx
        self.pages = 0
        self._on_flowable = on_flowable
        self._project = st.fonts.clean(ctx.project.name, st.fonts.sans)
        frame = Frame(self.leftMargin, self.bottomMargin, self.width, self.height, id="body",
                      leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)
        self.addPageTemplates([PageTemplate("page", [frame], onPage=self._furniture, onPageEnd=self._section)])
        self.frame_top = self.bottomMargin + self.height

    def _section(self, canv: Canvas, doc: BaseDocTemplate) -> None:
        """Name, in the header, the section this page is about: one that starts at its top, else the one
        it continues (known only once the page is drawn, hence at the page's end)."""
        section = getattr(canv, "_wb_top_section", "") or getattr(canv, "_wb_page_start_section", "")
        canv._wb_top_section = ""
        canv._wb_page_start_section = getattr(canv, "_wb_section", "")
        if section and doc.page > 1:
            fonts = self.ctx.styles.fonts
            canv.saveState()
            canv.setFont(fonts.sans, 7)
            canv.setFillColor(FAINT)
            canv.drawCentredString(A4[0] / 2, A4[1] - 10 * mm, _fit(fonts.clean(section, fonts.sans), fonts.sans,
                                                                     7, 70 * mm))
            canv.restoreState()

    def afterFlowable(self, flowable: Flowable) -> None:
        if self._on_flowable is not None:
            self._on_flowable()

    def _furniture(self, canv: Canvas, doc: BaseDocTemplate) -> None:
        ctx, fonts = self.ctx, self.ctx.styles.fonts
        self.pages = doc.page
        canv._wb_font = fonts.sans
        width, _ = A4
        left, right = self.leftMargin, width - self.rightMargin
        canv.saveState()
        # header
        top = A4[1] - 10 * mm
        canv.setFont(fonts.sans, 7)
        canv.setFillColor(FAINT)
        canv.drawString(left, top, f"Workbench compliance report · {self._project}")
        if not ctx.verified:
            canv.setFont(fonts.sans_bold, 7)
            canv.setFillColor(RED)
            canv.drawRightString(right, top, "AUDIT LOG DID NOT VERIFY")
        # footer
        y = 12 * mm
        canv.setStrokeColor(RULE)
        canv.setLineWidth(0.4)
        canv.line(left, y + 8.5, right, y + 8.5)
        canv.setFont(fonts.sans, 7)
        canv.setFillColor(MUTED)
        canv.drawString(left, y, _fit(f"Project {self._project}", fonts.sans, 7, 95 * mm))
        label = f"page {doc.page:,} of "
        x = right - stringWidth(label, fonts.sans, 7) - stringWidth("00,000", fonts.sans, 7)
        canv.drawString(x, y, label)
        canv.saveState()
        canv.translate(x + stringWidth(label, fonts.sans, 7), y)
        canv.doForm(PAGES_FORM)
        canv.restoreState()
        root = ctx.root or "unknown"
        if ctx.verified:
            canv.setFont(fonts.mono, 6.4)
            canv.setFillColor(FAINT)
            canv.drawString(left, y - 8, f"{ctx.root_label} {root}")
        else:
            canv.setFont(fonts.mono_bold, 6.4)
            canv.setFillColor(RED)
            canv.drawString(left, y - 8, _fit(f"{ctx.root_label} {root}", fonts.mono_bold, 6.4, right - left))
        canv.restoreState()


def _fit(text: str, font: str, size: float, width: float) -> str:
    if stringWidth(text, font, size) <= width:
        return text
    while text and stringWidth(text + "...", font, size) > width:
        text = text[:-1]
    return text + "..."


def build(path: str, ctx: ReportContext, story: Iterable[Flowable],
          progress: Callable[[int, int], None] | None = None,
          cancelled: Callable[[], bool] | None = None) -> int:
    """Render `story` to `path`; returns the page count. Raises `Cancelled` when asked to stop."""
    queue = FlowQueue(story)
    total = len(queue)
    done = [0]

    def on_flowable() -> None:
        done[0] += 1
        if done[0] % 256 == 0:
            if cancelled is not None and cancelled():
                raise Cancelled()
            if progress is not None:
                progress(total - len(queue), total)

    doc = ReportDocument(path, ctx, on_flowable)
    # Binary (Flate only) content streams: ASCII85 on top costs time and a quarter more bytes, and
    # nobody reads a compressed stream as text anyway.
    saved_a85 = rl_config.useA85
    rl_config.useA85 = 0
    try:
        doc.build(queue, canvasmaker=_PageCanvas)  # type: ignore[arg-type]
    finally:
        rl_config.useA85 = saved_a85
    if progress is not None:
        progress(total, total)
    return doc.pages

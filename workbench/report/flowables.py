"""Cheap custom flowables: pre-styled lines drawn straight onto the canvas, and outline marks.

Why not Paragraphs and Tables everywhere: a report of 10,000 executions holds hundreds of thousands of
lines of code, output and digests. reportlab's Paragraph parses markup and measures every word; a
Table lays out every cell twice. `LineBlock` instead takes lines whose style is known up front, wraps
monospace text by counting characters (every glyph of a monospace font has the same advance), and
splits across pages at any row, so long code simply continues on the next page with its line numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reportlab.lib.colors import Color
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import Flowable


@dataclass(frozen=True, slots=True)
class Line:
    """One logical line: its text (already cleaned for the font), how to draw it, its gutter label."""

    text: str
    font: str
    size: float
    color: Color
    gutter: str = ""  # e.g. a line number; continuation rows get `BlockStyle.continuation`
    mono: bool = True


@dataclass(frozen=True, slots=True)
class BlockStyle:
    leading: float
    pad_x: float = 0.0
    pad_y: float = 0.0
    background: Color | None = None
    border: Color | None = None
    bar: Color | None = None  # a coloured bar on the left edge (stderr, banners)
    gutter_chars: int = 0  # width of the gutter in monospace characters (0: none)
    gutter_font: str = "Courier"
    gutter_size: float = 7.0
    gutter_color: Color | None = None
    continuation: str = "+"
    space_before: float = 0.0
    space_after: float = 0.0


Row = tuple[str, Line]  # (gutter text, the piece of the line on this row)


def wrap_mono(text: str, chars: int) -> list[str]:
    """Cut `text` into pieces of at most `chars` characters (whole text on one row when it fits)."""
    if len(text) <= chars:
        return [text]
    chars = max(chars, 1)
    return [text[i:i + chars] for i in range(0, len(text), chars)]


def wrap_words(text: str, font: str, size: float, width: float) -> list[str]:
    """Greedy word wrap for proportional fonts; words longer than a row are cut by width."""
    if stringWidth(text, font, size) <= width:
        return [text]
    rows: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if stringWidth(candidate, font, size) <= width:
            current = candidate
            continue
        if current:
            rows.append(current)
        while stringWidth(word, font, size) > width and len(word) > 1:
            cut = len(word)
            while cut > 1 and stringWidth(word[:cut], font, size) > width:
                cut = max(1, int(cut * width / max(stringWidth(word[:cut], font, size), 1e-6)) - 1)
                cut = min(cut, len(word) - 1)
                if stringWidth(word[:cut], font, size) <= width:
                    break
            rows.append(word[:cut])
            word = word[cut:]
        current = word
    rows.append(current)
    return rows


class LineBlock(Flowable):
    """A box of lines with an optional gutter (line numbers), background and left bar; splits by row."""

    def __init__(self, lines: Sequence[Line], style: BlockStyle, rows: list[Row] | None = None,
                 first: bool = True, last: bool = True):
        super().__init__()
        self.lines = lines
        self.style = style
        self._rows = rows
        self._fixed = rows is not None  # a piece of a split block keeps its rows
        self._rows_width = -1.0
        self._first = first
        self._last = last

    def _wrap_rows(self, width: float) -> list[Row]:
        if self._rows is not None and (self._fixed or self._rows_width == width):
            return self._rows
        st = self.style
        inner = width - 2 * st.pad_x - self._gutter_width()
        rows: list[Row] = []
        for line in self.lines:
            text = line.text.expandtabs(4)
            if line.mono:
                chars = max(int(inner / stringWidth("0", line.font, line.size)), 8)
                pieces = wrap_mono(text, chars)
            else:
                pieces = wrap_words(text, line.font, line.size, inner)
            rows.append((line.gutter, Line(pieces[0], line.font, line.size, line.color)))
            for piece in pieces[1:]:
                rows.append((st.continuation, Line(piece, line.font, line.size, line.color)))
        self._rows, self._rows_width = rows, width
        return rows

    def _gutter_width(self) -> float:
        st = self.style
        if not st.gutter_chars:
            return 0.0
        return (st.gutter_chars + 1) * stringWidth("0", st.gutter_font, st.gutter_size)

    def _height(self, rows: int) -> float:
        st = self.style
        return rows * st.leading + 2 * st.pad_y

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        self.width = availWidth
        rows = self._wrap_rows(availWidth)
        self.height = self._height(len(rows))
        return availWidth, self.height

    def getSpaceBefore(self) -> float:
        return self.style.space_before if self._first else 0.0

    def getSpaceAfter(self) -> float:
        return self.style.space_after if self._last else 0.0

    def split(self, availWidth: float, availHeight: float) -> list[Flowable]:
        rows = self._wrap_rows(availWidth)
        fit = int((availHeight - 2 * self.style.pad_y) // self.style.leading)
        if fit < 1 or len(rows) <= 1:
            return []
        if fit >= len(rows):
            return [self]
        if len(rows) - fit < 2 and fit > 2:
            fit -= 1  # do not leave a lone row for the next page
        return [LineBlock(self.lines, self.style, rows[:fit], self._first, False),
                LineBlock(self.lines, self.style, rows[fit:], False, self._last)]

    def draw(self) -> None:
        canv = self.canv
        st = self.style
        rows = self._rows or []
        height = self._height(len(rows))
        if st.background is not None or st.border is not None:
            canv.saveState()
            if st.background is not None:
                canv.setFillColor(st.background)
            if st.border is not None:
                canv.setStrokeColor(st.border)
                canv.setLineWidth(0.4)
            canv.rect(0, 0, self.width, height, stroke=int(st.border is not None),
                      fill=int(st.background is not None))
            canv.restoreState()
        if st.bar is not None:
            canv.saveState()
            canv.setFillColor(st.bar)
            canv.rect(0, 0, 2.2, height, stroke=0, fill=1)
            canv.restoreState()
        gutter_w = self._gutter_width()
        text = canv.beginText()
        font = size = color = None
        y = height - st.pad_y
        for gutter, line in rows:
            y -= st.leading
            baseline = y + st.leading * 0.25
            if gutter and st.gutter_chars:
                if (font, size) != (st.gutter_font, st.gutter_size):
                    font, size = st.gutter_font, st.gutter_size
                    text.setFont(font, size)
                if color is not st.gutter_color and st.gutter_color is not None:
                    color = st.gutter_color
                    text.setFillColor(color)
                w = stringWidth(gutter, font, size)
                text.setTextOrigin(st.pad_x + gutter_w - w - stringWidth("0", font, size), baseline)
                text.textOut(gutter)
            if line.text:
                if (font, size) != (line.font, line.size):
                    font, size = line.font, line.size
                    text.setFont(font, size)
                if color is not line.color:
                    color = line.color
                    text.setFillColor(color)
                text.setTextOrigin(st.pad_x + gutter_w, baseline)
                text.textOut(line.text)
        canv.drawText(text)


class OutlineMark(Flowable):
    """Invisible: a bookmark and an outline entry at the place it is drawn."""

    def __init__(self, key: str, title: str, level: int = 0, closed: bool = True):
        super().__init__()
        self.key, self.title, self.level, self.closed = key, title, level, closed
        self.width = self.height = 0

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        return 0, 0

    def draw(self) -> None:
        self.canv.bookmarkHorizontal(self.key, 0, 0)
        self.canv.addOutlineEntry(self.title, self.key, level=self.level, closed=self.closed)

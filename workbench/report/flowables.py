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
from weakref import WeakKeyDictionary

from reportlab.lib.colors import Color
from reportlab.pdfbase.pdfmetrics import getFont, stringWidth
from reportlab.platypus import Flowable

from workbench.inert import one_line


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

_ADVANCE: dict[tuple[str, float], float] = {}


def advance(font: str, size: float) -> float:
    """The width of one character of a monospace font (cached: it is asked for every line)."""
    key = (font, size)
    width = _ADVANCE.get(key)
    if width is None:
        width = _ADVANCE[key] = stringWidth("0", font, size)
    return width


def wrap_mono(text: str, chars: int) -> list[str]:
    """Cut `text` into pieces of at most `chars` characters (whole text on one row when it fits)."""
    if len(text) <= chars:
        return [text]
    chars = max(chars, 1)
    return [text[i:i + chars] for i in range(0, len(text), chars)]


def wrap_measured(text: str, font: str, size: float, width: float) -> list[str]:
    """Cut `text` into pieces no wider than `width`, measuring each character in the font that draws it
    (for lines with CJK, whose glyphs are wider than a monospace cell)."""
    from workbench.report.fonts import fonts

    fs = fonts()
    rows: list[str] = []
    start, used = 0, 0.0
    for i, ch in enumerate(text):
        w = fs.width(ch, font, size)
        if used + w > width and i > start:
            rows.append(text[start:i])
            start, used = i, 0.0
        used += w
    rows.append(text[start:])
    return rows


def _needs_fallback(text: str, font: str) -> bool:
    """Whether part of `text` is drawn in the fallback font (never for ASCII: the hot path stays cheap)."""
    if text.isascii():
        return False
    from workbench.report.fonts import fonts

    fs = fonts()
    return any(name != font for name, _ in fs.runs(text, font))  # (runs loads the fallback only if needed)


def wrap_words(text: str, font: str, size: float, width: float) -> list[str]:
    """Greedy word wrap for proportional fonts; a word longer than a row is cut where it must be."""
    if _needs_fallback(text, font):
        return wrap_measured(text, font, size, width)  # CJK has no spaces to break at anyway
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
        while len(word) > 1 and stringWidth(word, font, size) > width:
            cut = _longest_fit(word, font, size, width)
            rows.append(word[:cut])
            word = word[cut:]
        current = word
    rows.append(current)
    return rows


def _longest_fit(word: str, font: str, size: float, width: float) -> int:
    """The longest prefix of `word` (at least one character) no wider than `width`: binary search."""
    low, high = 1, len(word)
    while low < high:
        middle = (low + high + 1) // 2
        if stringWidth(word[:middle], font, size) <= width:
            low = middle
        else:
            high = middle - 1
    return low


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
            if line.mono and _needs_fallback(text, line.font):
                pieces = wrap_measured(text, line.font, line.size, max(inner, 8 * advance(line.font, line.size)))
            elif line.mono:
                chars = max(int(inner / advance(line.font, line.size)), 8)
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
        return (st.gutter_chars + 1) * advance(st.gutter_font, st.gutter_size)

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
        writer = TextWriter(canv)
        gutter_cw = advance(st.gutter_font, st.gutter_size) if st.gutter_chars else 0.0
        y = height - st.pad_y
        canv.saveState()
        for gutter, line in rows:
            y -= st.leading
            baseline = y + st.leading * 0.25
            if gutter and st.gutter_chars and st.gutter_color is not None:
                x = st.pad_x + gutter_w - (len(gutter) + 1) * gutter_cw
                writer.text(x, baseline, gutter, st.gutter_font, st.gutter_size, st.gutter_color)
            if line.text:
                writer.text(st.pad_x + gutter_w, baseline, line.text, line.font, line.size, line.color)
        writer.flush()
        canv.restoreState()


def _pdf_escape_table() -> dict[int, str]:
    table = {}
    for b in range(256):
        if b in (0x5C, 0x28, 0x29):
            table[b] = "\\" + chr(b)
        elif 32 <= b < 127:
            table[b] = chr(b)
        else:
            table[b] = f"\\{b:03o}"
    return table


_ESCAPE = _pdf_escape_table()
_ASCII = "".join(chr(c) for c in range(32, 127))


class TextWriter:
    """Writes text runs as raw PDF text operators: the hot loop of the report.

    reportlab's TextObject measures every string (to advance its cursor) and encodes it character by
    character; we position each run absolutely, so no measuring is needed, and printable ASCII (most of
    code and output) is encoded in one C call once we have checked, through the documented
    ``splitString`` API, that the font's subset 0 maps ASCII to itself in this document. Other text
    goes through ``splitString`` as reportlab documents for dynamic (TrueType) fonts; core fonts
    (the no-DejaVu fallback) go through the canvas's own text object.
    """

    def __init__(self, canv):
        self.canv = canv
        self.doc = canv._doc
        self.ops: list[str] = []
        self.font_key: tuple[str, int, float] | None = None
        self.color = None

    def _font(self, name: str):
        cache = _FONT_CACHE.get(self.doc)
        if cache is None:
            cache = _FONT_CACHE.setdefault(self.doc, {})
        hit = cache.get(name)
        if hit is None:
            font = getFont(name)
            if getattr(font, "_dynamicFont", 0):
                ascii_identity = font.splitString(_ASCII, self.doc) == [(0, _ASCII.encode("ascii"))]
            else:
                ascii_identity = False
            hit = cache[name] = (font, bool(getattr(font, "_dynamicFont", 0)), ascii_identity)
        return hit

    def text(self, x: float, y: float, text: str, font_name: str, size: float, color) -> None:
        if _needs_fallback(text, font_name):
            from workbench.report.fonts import fonts

            for name, piece in fonts().runs(text, font_name):  # each run in the font that has its glyphs
                self.text(x, y, piece, name, size, color)
                x += stringWidth(piece, name, size)
            return
        font, dynamic, ascii_identity = self._font(font_name)
        if not dynamic:
            self.flush()
            self.canv.setFont(font_name, size)
            self.canv.setFillColor(color)
            self.canv.drawString(x, y, text)
            self.color = None
            self.font_key = None
            return
        ops = self.ops
        if not ops:
            ops.append("BT")
        if color is not self.color:
            r, g, b = color.rgb()
            ops.append(f"{r:.3f} {g:.3f} {b:.3f} rg")
            self.color = color
        ops.append(f"1 0 0 1 {x:.2f} {y:.2f} Tm")
        if ascii_identity and text.isascii() and text.isprintable():
            chunks = [(0, text.encode("ascii"))]
        else:
            chunks = font.splitString(text, self.doc)
        for subset, data in chunks:
            key = (font_name, subset, size)
            if key != self.font_key:
                ops.append(f"{font.getSubsetInternalName(subset, self.doc)} {size:.2f} Tf")
                self.font_key = key
            ops.append(f"({data.decode('latin-1').translate(_ESCAPE)}) Tj")

    def flush(self) -> None:
        if self.ops:
            self.ops.append("ET")
            self.canv.addLiteral("\n".join(self.ops))
            self.ops = []
            self.font_key = None
            self.color = None


_FONT_CACHE: WeakKeyDictionary = WeakKeyDictionary()


class OutlineMark(Flowable):
    """Invisible: a bookmark and an outline entry at the place it is drawn."""

    def __init__(self, key: str, title: str, level: int = 0, closed: bool = True):
        super().__init__()
        # Titles quote the log (a session's id and trigger, an execution's language): a viewer's outline and
        # the page header show them, so control and bidi characters are made visible (a U+202E would
        # reorder the bookmark's text).
        self.key, self.title, self.level, self.closed = key, one_line(title), level, closed
        self.width = self.height = 0

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        return 0, 0

    def draw(self) -> None:
        self.canv.bookmarkHorizontal(self.key, 0, 0)
        if self.level <= 1:  # for the page header (see pdf.ReportDocument._section)
            canv = self.canv
            canv._wb_section = self.title
            top = getattr(getattr(canv, "_doctemplate", None), "frame_top", None)
            if top is not None and canv.absolutePosition(0, 0)[1] >= top - 40:
                canv._wb_top_section = self.title
        self.canv.addOutlineEntry(self.title, self.key, level=self.level, closed=self.closed)

"""The report's look in one place: colours, paragraph styles, block styles, and safe text helpers.

Why one module: every section builds on the same fonts (see `fonts`) and the same escaping rules, so a
change of look (or a font fallback) happens here only.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.styles import ParagraphStyle
from reportlab.platypus import Paragraph

from workbench.report.flowables import BlockStyle, Line, LineBlock
from workbench.report.fonts import FontSet

INK = colors.HexColor("#1F2328")
MUTED = colors.HexColor("#59636E")
FAINT = colors.HexColor("#8C959F")
ACCENT = colors.HexColor("#0B4F8A")
RED = colors.HexColor("#B00020")
RED_BG = colors.HexColor("#FDECEE")
GREEN = colors.HexColor("#1A7F37")
GREEN_BG = colors.HexColor("#E9F6EC")
AMBER = colors.HexColor("#9A6700")
AMBER_BG = colors.HexColor("#FFF8E1")
CODE_BG = colors.HexColor("#F6F8FA")
RULE = colors.HexColor("#D0D7DE")
STDERR = colors.HexColor("#8B1A1A")


@dataclass
class Styles:
    fonts: FontSet
    title: ParagraphStyle
    subtitle: ParagraphStyle
    h1: ParagraphStyle
    h2: ParagraphStyle
    h3: ParagraphStyle
    body: ParagraphStyle
    small: ParagraphStyle
    cell: ParagraphStyle
    cell_mono: ParagraphStyle
    cell_hash: ParagraphStyle
    code: BlockStyle
    code_plain: BlockStyle
    output: BlockStyle
    output_err: BlockStyle
    facts: BlockStyle
    exec_head: BlockStyle
    note: BlockStyle
    agent: BlockStyle
    event_err: BlockStyle

    # --- text helpers ----------------------------------------------------------------------------
    def markup(self, text: str, font: str | None = None) -> str:
        """Text made safe for Paragraph markup: unencodable characters escaped, then XML-escaped; runs the
        main font lacks (CJK) set in the fallback font."""
        font = font or self.fonts.sans
        cleaned = self.fonts.clean(text, font, fallback=True)
        if cleaned.isascii():
            return escape(cleaned).replace("\n", "<br/>")
        parts = [escape(piece) if name == font else f'<font name="{name}">{escape(piece)}</font>'
                 for name, piece in self.fonts.runs(cleaned, font)]
        return "".join(parts).replace("\n", "<br/>")

    def para(self, text: str, style: ParagraphStyle | None = None) -> Paragraph:
        """A Paragraph of plain text (no markup interpreted)."""
        style = style or self.body
        return Paragraph(self.markup(text, style.fontName), style)

    def mono_line(self, text: str, color: colors.Color = INK, size: float = 7.6, bold: bool = False,
                  gutter: str = "") -> Line:
        font = self.fonts.mono_bold if bold else self.fonts.mono
        return Line(self.fonts.clean(text, font, fallback=True), font, size, color, gutter)

    def sans_line(self, text: str, color: colors.Color = INK, size: float = 9.0, bold: bool = False) -> Line:
        font = self.fonts.sans_bold if bold else self.fonts.sans
        return Line(self.fonts.clean(text, font, fallback=True), font, size, color, mono=False)

    def block(self, lines: list[Line], style: BlockStyle) -> LineBlock:
        return LineBlock(lines, style)


def make_styles(fs: FontSet) -> Styles:
    def p(name: str, font: str, size: float, leading: float, color: colors.Color = INK, before: float = 0,
          after: float = 0) -> ParagraphStyle:
        return ParagraphStyle(name, fontName=font, fontSize=size, leading=leading, textColor=color,
                              spaceBefore=before, spaceAfter=after, alignment=TA_LEFT)

    cont = "\u21aa" if fs.clean("\u21aa", fs.mono) == "\u21aa" else "+"
    mono_gutter = dict(gutter_font=fs.mono, gutter_size=6.8, gutter_color=FAINT, continuation=cont)
    return Styles(
        fonts=fs,
        title=p("title", fs.sans_bold, 24, 29, ACCENT, after=6),
        subtitle=p("subtitle", fs.sans, 12, 16, MUTED, after=14),
        h1=p("h1", fs.sans_bold, 16, 20, ACCENT, before=4, after=8),
        h2=p("h2", fs.sans_bold, 12.5, 16, INK, before=10, after=5),
        h3=p("h3", fs.sans_bold, 10, 13, INK, before=6, after=3),
        body=p("body", fs.sans, 9, 12.5, INK, after=4),
        small=p("small", fs.sans, 7.8, 10, MUTED, after=2),
        cell=p("cell", fs.sans, 8.4, 10.6, INK),
        cell_mono=p("cell_mono", fs.mono, 7.6, 9.8, INK),
        cell_hash=p("cell_hash", fs.mono, 6.6, 8.6, INK),
        code=BlockStyle(leading=9.4, pad_x=4, pad_y=3, background=CODE_BG, border=RULE, gutter_chars=4,
                        space_before=2, space_after=3, **mono_gutter),
        code_plain=BlockStyle(leading=9.6, pad_x=5, pad_y=3.5, background=CODE_BG, border=RULE, space_before=2,
                              space_after=6, **mono_gutter),
        output=BlockStyle(leading=9.0, pad_x=6, pad_y=2.5, background=colors.white, border=RULE, bar=FAINT,
                          space_before=1, space_after=3, **mono_gutter),
        output_err=BlockStyle(leading=9.0, pad_x=6, pad_y=2.5, background=colors.white, border=RULE,
                              bar=STDERR, space_before=1, space_after=3, **mono_gutter),
        facts=BlockStyle(leading=9.6, pad_x=0, pad_y=0, space_before=1, space_after=2, **mono_gutter),
        exec_head=BlockStyle(leading=13, pad_x=0, pad_y=1, space_before=9, space_after=1, **mono_gutter),
        agent=BlockStyle(leading=9.2, pad_x=0, pad_y=0, space_before=7, space_after=0, **mono_gutter),
        event_err=BlockStyle(leading=9.0, pad_x=6, pad_y=2.5, background=RED_BG, bar=RED, space_before=6,
                             space_after=3, **mono_gutter),
        note=BlockStyle(leading=10.5, pad_x=6, pad_y=3, background=AMBER_BG, bar=AMBER, space_before=2,
                        space_after=3, **mono_gutter),
    )

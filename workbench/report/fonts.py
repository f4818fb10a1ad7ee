"""The report's fonts, and making any text safe to draw with them.

Why this module exists: reportlab's built-in PDF fonts (Helvetica, Courier) only encode Latin-1-ish
text, so program output in Greek, Cyrillic or with odd bytes would come out as black boxes or be lost.
A reviewer must see every character that was recorded, so:

* we register a TrueType family that covers far more (DejaVu Sans and Sans Mono: Latin, Greek,
  Cyrillic, box drawing, arrows, many symbols), searched in the system's font folders (Debian's
  ``fonts-dejavu-core``, Fedora's ``dejavu-sans-fonts``) and in matplotlib's bundled copy;
* with no DejaVu anywhere we fall back to reportlab's own Bitstream Vera (sans) and core Courier;
* Chinese, Japanese and Korean come from a fallback TrueType font when one is installed (Droid Sans
  Fallback: Debian's ``fonts-droid-fallback``, 4 MB; or WenQuanYi Micro Hei): text that asks for it
  (`clean(..., fallback=True)`) keeps those characters and is drawn in runs, each in the font that has
  its glyphs (`FontSet.runs`). Noto CJK is no use here: reportlab reads TrueType outlines, not CFF;
* any character no font can draw (CJK without a CJK font, control characters, lone surrogates) is
  shown as a visible escape (``\\u4e2d``, ``\\x1b``) by `FontSet.clean`: the text stays complete and
  searchable, nothing is dropped silently.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from reportlab.lib.fonts import addMapping
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

from workbench.findings import Finding

# Where DejaVu lives on common systems; WORKBENCH_REPORT_FONT_DIR (a folder) is tried first.
FONT_DIRS = (
    "/usr/share/fonts/truetype/dejavu",  # Debian, Ubuntu (fonts-dejavu-core)
    "/usr/share/fonts/dejavu-sans-fonts",  # Fedora
    "/usr/share/fonts/dejavu-sans-mono-fonts",
    "/usr/share/fonts/TTF",  # Arch
    "/usr/share/fonts/dejavu",
    "/usr/local/share/fonts",
    "/Library/Fonts",
    str(Path.home() / "Library/Fonts"),
)

# A CJK fallback (TrueType outlines), first found wins; WORKBENCH_REPORT_FONT_DIR is tried first.
# (DroidSansFallback.ttf before ...Full.ttf: only the former has the Korean syllables.)
FALLBACK_FILES = ("DroidSansFallback.ttf", "DroidSansFallbackFull.ttf", "wqy-microhei.ttc")
FALLBACK_DIRS = (
    "/usr/share/fonts-droid-fallback/truetype",  # Debian, Ubuntu (fonts-droid-fallback)
    "/usr/share/fonts/truetype/droid",
    "/usr/share/fonts/google-droid-sans-fonts",  # Fedora
    "/usr/share/fonts/truetype/wqy",  # Debian (fonts-wqy-microhei)
    "/usr/share/fonts/wqy-microhei",
    "/usr/local/share/fonts",
)
FALLBACK_NAME = "WB-fallback"

DEJAVU = {
    "sans": "DejaVuSans.ttf",
    "sans_bold": "DejaVuSans-Bold.ttf",
    "sans_italic": "DejaVuSans-Oblique.ttf",
    "mono": "DejaVuSansMono.ttf",
    "mono_bold": "DejaVuSansMono-Bold.ttf",
}

# Characters we never draw literally even if a font has a glyph for them (they move the pen or hide).
_INVISIBLE = {0x00AD, 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2028, 0x2029, 0x202A, 0x202B, 0x202C,
              0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069, 0xFEFF}


@dataclass
class FontSet:
    """Registered font names plus the code points each can draw (None: Latin-1 core font)."""

    sans: str
    sans_bold: str
    sans_italic: str
    mono: str
    mono_bold: str
    source: str  # said on the cover: which fonts, from where
    coverage: dict[str, frozenset[int] | None] = field(default_factory=dict)
    fallback_path: Path | None = None  # the CJK fallback font's file; registered when first needed
    _fallback: str | None = field(default=None, repr=False)  # its registered name, once loaded
    _fallback_tried: bool = field(default=False, repr=False)
    _cache: dict[tuple[str, str, bool], str] = field(default_factory=dict, repr=False)

    @property
    def unicode(self) -> bool:
        """True when the monospace font is a TrueType font with wide coverage."""
        return self.coverage.get(self.mono) is not None

    @property
    def fallback(self) -> str | None:
        """The CJK fallback font's name, or None. Parsing the font takes about 0.4 s, so it is registered the
        first time a character needs it, never for a report without CJK."""
        if not self._fallback_tried:
            with _lock_fallback:
                if not self._fallback_tried:
                    self._fallback = _load_fallback(self)
                    self._fallback_tried = True
        return self._fallback

    def clean(self, text: str, font: str | None = None, fallback: bool = False) -> str:
        """`text` with every character `font` cannot draw (and every control character) escaped; with
        `fallback`, characters the fallback font draws are kept (the caller draws them with `runs`).

        Tabs and newlines are the caller's business (they are layout); here they are escaped too.
        """
        if text.isascii() and text.isprintable():
            return text
        font = font or self.mono
        fallback = fallback and self.fallback_path is not None
        if len(text) < 200:
            key = (font, text, fallback)
            hit = self._cache.get(key)
            if hit is not None:
                return hit
        covered = self.coverage.get(font)
        extra: frozenset[int] | None = None  # the fallback's coverage, looked up at the first character it may draw
        out = []
        for ch in text:
            code = ord(ch)
            if 0x20 <= code < 0x7F:
                out.append(ch)
            elif code < 0x20 or 0x7F <= code < 0xA0 or code in _INVISIBLE or 0xD800 <= code < 0xE000:
                out.append(_escape(code))
            elif covered is None:
                out.append(ch if code < 0x100 else _escape(code))
            elif code in covered:
                out.append(ch)
            elif fallback and (extra := extra if extra is not None else self._fallback_coverage()) and code in extra:
                out.append(ch)
            else:
                out.append(_escape(code))
        result = "".join(out)
        if len(text) < 200 and len(self._cache) < 50_000:
            self._cache[(font, text, fallback)] = result
        return result

    def _fallback_coverage(self) -> frozenset[int]:
        name = self.fallback
        return (self.coverage.get(name) or frozenset()) if name else frozenset()

    def runs(self, text: str, font: str) -> list[tuple[str, str]]:
        """`text` (cleaned with fallback) cut into (font, piece) runs: `font` where it has the glyph, else
        the fallback font. One run in `font` for text it covers entirely."""
        covered = self.coverage.get(font)
        if text.isascii() or covered is None or all(ord(ch) in covered or ord(ch) < 0x80 for ch in text):
            return [(font, text)]
        if self.fallback is None:
            return [(font, text)]
        found: list[tuple[str, str]] = []
        start, current = 0, font
        for i, ch in enumerate(text):
            wanted = font if ord(ch) < 0x80 or ord(ch) in covered else self.fallback
            if wanted != current:
                if i > start:
                    found.append((current, text[start:i]))
                start, current = i, wanted
        found.append((current, text[start:]))
        return [run for run in found if run[1]] or [(font, "")]

    def width(self, text: str, font: str, size: float) -> float:
        """The drawn width of `text` (cleaned with fallback), each run in its own font."""
        from reportlab.pdfbase.pdfmetrics import stringWidth

        return sum(stringWidth(piece, name, size) for name, piece in self.runs(text, font))


def _escape(code: int) -> str:
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


_lock = threading.Lock()
_registered: FontSet | None = None


def fonts() -> FontSet:
    """The report's fonts, registered with reportlab once per process."""
    global _registered
    with _lock:
        if _registered is None:
            _registered = _register()
        return _registered


def _candidate_dirs() -> list[Path]:
    dirs = []
    extra = os.environ.get("WORKBENCH_REPORT_FONT_DIR")
    if extra:
        dirs.append(Path(extra))
    dirs += [Path(d) for d in FONT_DIRS]
    spec = importlib.util.find_spec("matplotlib")  # ships DejaVu; found without importing matplotlib
    if spec is not None and spec.origin:
        dirs.append(Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf")
    return dirs


def find_dejavu() -> dict[str, Path] | None:
    """Paths of the five DejaVu faces, from the first folder that has them all."""
    for folder in _candidate_dirs():
        found = {role: folder / name for role, name in DEJAVU.items()}
        if all(p.is_file() for p in found.values()):
            return found
    return None


def _ttf(name: str, path: Path) -> frozenset[int]:
    font = TTFont(name, str(path))
    pdfmetrics.registerFont(font)
    return frozenset(font.face.charToGlyph)


def find_fallback() -> Path | None:
    """The first CJK fallback font file found."""
    dirs = [Path(d) for d in FALLBACK_DIRS]
    extra = os.environ.get("WORKBENCH_REPORT_FONT_DIR")
    if extra:
        dirs.insert(0, Path(extra))
    for folder in dirs:
        for name in FALLBACK_FILES:
            if (folder / name).is_file():
                return folder / name
    return None


def _register() -> FontSet:
    dejavu = find_dejavu()
    found = None
    if dejavu is not None:
        try:
            names = {role: f"WB-{role}" for role in DEJAVU}
            coverage = {names[role]: _ttf(names[role], path) for role, path in dejavu.items()}
            _family(names["sans"], names["sans_bold"], names["sans_italic"])
            _family(names["mono"], names["mono_bold"], names["mono"])
            found = FontSet(names["sans"], names["sans_bold"], names["sans_italic"], names["mono"],
                            names["mono_bold"], f"DejaVu ({dejavu['sans'].parent})", coverage)
        except Exception:  # a damaged font file: fall through to the bundled ones
            found = None
    found = found or _fallback()
    _add_fallback(found)
    return found


def _add_fallback(fontset: FontSet) -> None:
    """Note the CJK fallback font, when there is one and the main fonts are TrueType (loaded when needed)."""
    path = find_fallback()
    if path is None:
        fontset.source += "; no CJK font (install fonts-droid-fallback to show Chinese, Japanese, Korean)"
    elif fontset.coverage.get(fontset.sans) is not None:
        fontset.fallback_path = path
        fontset.source += f"; CJK from {path.name}"


_lock_fallback = threading.Lock()


def _load_fallback(fontset: FontSet) -> str | None:
    if fontset.fallback_path is None:
        return None
    try:
        fontset.coverage[FALLBACK_NAME] = _ttf(FALLBACK_NAME, fontset.fallback_path)
    except Exception:  # damaged or not TrueType outlines: CJK stays escaped, as without the font
        fontset.fallback_path = None
        return None
    return FALLBACK_NAME


def _fallback() -> FontSet:
    """Bitstream Vera (shipped inside reportlab) for prose, core Courier for code."""
    import reportlab

    folder = Path(reportlab.__file__).parent / "fonts"
    try:
        coverage = {
            "WB-vera": _ttf("WB-vera", folder / "Vera.ttf"),
            "WB-vera-bold": _ttf("WB-vera-bold", folder / "VeraBd.ttf"),
            "WB-vera-italic": _ttf("WB-vera-italic", folder / "VeraIt.ttf"),
        }
        _family("WB-vera", "WB-vera-bold", "WB-vera-italic")
        sans, bold, italic = "WB-vera", "WB-vera-bold", "WB-vera-italic"
        source = "Bitstream Vera and Courier (DejaVu not found: install fonts-dejavu-core)"
    except Exception:
        coverage = {}
        sans, bold, italic = "Helvetica", "Helvetica-Bold", "Helvetica-Oblique"
        source = "PDF core fonts (DejaVu not found: install fonts-dejavu-core)"
    coverage.update({"Courier": None, "Courier-Bold": None, "Helvetica": None, "Helvetica-Bold": None,
                     "Helvetica-Oblique": None})
    return FontSet(sans, bold, italic, "Courier", "Courier-Bold", source, coverage)


def _family(normal: str, bold: str, italic: str) -> None:
    pdfmetrics.registerFontFamily(normal, normal=normal, bold=bold, italic=italic, boldItalic=bold)
    addMapping(normal, 0, 0, normal)
    addMapping(normal, 1, 0, bold)
    addMapping(normal, 0, 1, italic)
    addMapping(normal, 1, 1, bold)


def check(settings=None) -> list[Finding]:  # noqa: ANN001 - doctor passes the settings; fonts need none
    """Doctor's "report fonts" finding: which fonts the PDF report will use (found on disk, not loaded:
    loading the CJK font takes 0.4 s)."""
    dejavu, cjk = find_dejavu(), find_fallback()
    if dejavu is None:
        return [Finding("report fonts", "warn", "DejaVu not found: only Latin-1 text is drawn, the rest escaped",
                        "apt-get install fonts-dejavu-core fonts-droid-fallback")]
    detail = f"DejaVu ({dejavu['sans'].parent})"
    if cjk is None:
        return [Finding("report fonts", "warn", f"{detail}; no CJK font: Chinese, Japanese, Korean are escaped",
                        "apt-get install fonts-droid-fallback")]
    return [Finding("report fonts", "ok", f"{detail}; CJK from {cjk}")]

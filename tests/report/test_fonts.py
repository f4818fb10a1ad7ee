"""Text that the fonts cannot draw is escaped visibly, never dropped."""

from __future__ import annotations

from workbench.report.fonts import FontSet, fonts


def test_control_characters_and_surrogates_are_escaped():
    fs = fonts()
    assert fs.clean("plain ascii") == "plain ascii"
    assert fs.clean("\x1b[31mred\x00") == "\\x1b[31mred\\x00"
    assert fs.clean("a\udcffb") == "a\\udcffb"
    assert fs.clean("\u202eevil") == "\\u202eevil"  # bidi override: shown, not obeyed


def test_covered_scripts_stay_and_uncovered_are_escaped():
    fs = fonts()
    if fs.unicode:
        assert fs.clean("Grüße Здравствуйте Γειά") == "Grüße Здравствуйте Γειά"
    cleaned = fs.clean("你好 \U0001F600")
    assert "\\u4f60" in cleaned or "你" in cleaned
    assert "\\U0001f600" in cleaned or "\U0001F600" in cleaned


def test_latin1_core_font_fallback_escapes_the_rest():
    fs = FontSet("Helvetica", "Helvetica-Bold", "Helvetica-Oblique", "Courier", "Courier-Bold", "core",
                 {"Courier": None})
    assert not fs.unicode
    assert fs.clean("café Ω", "Courier") == "café \\u03a9"

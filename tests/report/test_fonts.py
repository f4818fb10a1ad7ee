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


def test_a_report_renders_without_dejavu(monkeypatch, project, tmp_path):
    """No TrueType font with wide coverage: Vera and Courier, everything else escaped, nothing lost."""
    from tests.report.conftest import append, pdf_text
    from tests.report.test_render import T0, run_events, session
    from workbench.report import fonts as fonts_module
    from workbench.report import render_report

    monkeypatch.setattr(fonts_module, "_registered", None)
    monkeypatch.setattr(fonts_module, "find_dejavu", lambda: None)
    append(project, session("s", T0, run_events("s", "e", "print('Ω')", "Grüße Ωmega 你好\n", 0, T0)))
    out = tmp_path / "fallback.pdf"
    render_report(project, out)
    text = pdf_text(out)
    assert "Grüße" in text and "\\u03a9mega" in text and "\\u4f60\\u597d" in text

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


def test_cjk_is_kept_only_where_the_caller_draws_runs():
    fs = fonts()
    text = "区域 revenue 매출"
    assert fs.clean(text) == "\\u533a\\u57df revenue \\ub9e4\\ucd9c"  # plain clean: escaped, as before
    if fs.fallback is None:
        assert fs.clean(text, fallback=True) == fs.clean(text)
        return
    kept = fs.clean(text, fs.mono, fallback=True)
    assert kept == text
    assert fs.runs(kept, fs.mono) == [(fs.fallback, "区域"), (fs.mono, " revenue "), (fs.fallback, "매출")]
    assert fs.clean("\U0001F600", fs.mono, fallback=True) == "\\U0001f600"  # no font has it: escaped


def test_a_long_cjk_line_wraps_by_its_drawn_width():
    from workbench.report.flowables import wrap_measured

    fs = fonts()
    if fs.fallback is None:
        return
    line = "销售额按地区汇总" * 40 + " total"
    rows = wrap_measured(line, fs.mono, 7.6, 300.0)
    assert "".join(rows) == line and len(rows) > 1
    assert all(fs.width(row, fs.mono, 7.6) <= 300.0 for row in rows)


def test_a_report_draws_chinese_japanese_and_korean(project, tmp_path):
    """With a CJK font installed (CI installs fonts-droid-fallback), CJK reaches the PDF as text."""
    from tests.conftest import need
    from tests.report.conftest import append, pdf_reader, pdf_text
    from tests.report.test_render import T0, run_events, session
    from workbench.report import fonts as fonts_module
    from workbench.report import render_report

    need(fonts_module.find_fallback() is not None, "a CJK font (apt-get install fonts-droid-fallback)")
    code = "print('区域别売上 매출')"
    output = "地区 收入\n東京 1200\n서울 900\n" + "长" * 300 + "\n"
    append(project, session("s", T0, run_events("s", "e", code, output, 0, T0)))
    out = tmp_path / "cjk.pdf"
    render_report(project, out)
    text = pdf_text(out)
    for words in ("区域别売上", "매출", "地区 收入", "東京 1200", "서울 900", "长" * 20):
        assert words in text, words
    assert "\\u533a" not in text  # drawn, not escaped
    fonts_used = {str(font.get("/BaseFont")) for page in pdf_reader(out).pages
                  for font in (page.get("/Resources", {}).get("/Font", {}) or {}).values()
                  if hasattr(font, "get")}
    assert any("DroidSansFallback" in name for name in fonts_used), fonts_used


def test_the_cjk_font_is_parsed_only_when_a_report_needs_it(monkeypatch, project, tmp_path):
    """Parsing Droid Sans Fallback costs about 0.4 s: a report in Latin, Greek or Cyrillic never pays it."""
    from tests.report.conftest import append
    from tests.report.test_render import T0, run_events, session
    from workbench.report import fonts as fonts_module
    from workbench.report import render_report

    monkeypatch.setattr(fonts_module, "_registered", None)
    append(project, session("s", T0, run_events("s", "e", "print('Grüße')", "Grüße Ωmega Здравствуйте\n", 0, T0)))
    render_report(project, tmp_path / "latin.pdf")
    assert fonts_module.fonts()._fallback_tried is False

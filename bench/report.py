"""Benchmark: seconds to render the compliance report of 1,000 and 10,000 executions.

Beside each figure, in the same run, the baseline: reportlab rendering the same amount of plain
paragraphs (one Paragraph per line of text the report draws for those executions), so the ratio says
what our layout costs over reportlab's simplest path on this machine. Target: 10,000 executions in
under 30 s.

    .venv/bin/python bench/report.py            # 1,000 and 10,000
    .venv/bin/python bench/report.py 2000       # other sizes

Read the ratio with care at 10,000: reportlab's own build loop deletes each flowable from the front of
a Python list, which is quadratic in the number of flowables, so the baseline grows faster than
linearly; the report avoids that (`workbench.report.pdf.FlowQueue`) and draws its lines directly.

The logs are synthetic (`workbench.report.synthetic`: real events through the real audit API) and the
engine probe is skipped; everything else (verification, collection, layout, writing) is measured.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path


def baseline(n_paragraphs: int, out: Path) -> float:
    """reportlab drawing `n_paragraphs` plain paragraphs with the same fonts, one pass."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.platypus import Paragraph, SimpleDocTemplate

    from workbench.report.fonts import fonts

    fs = fonts()
    style = ParagraphStyle("p", fontName=fs.mono, fontSize=7.6, leading=9.4)
    started = time.perf_counter()
    story = [Paragraph(f"line {i}: value = compute({i}, factor={i * 3})", style) for i in range(n_paragraphs)]
    SimpleDocTemplate(str(out), pagesize=A4).build(story)
    return time.perf_counter() - started


def count_lines(pdf: Path, pages: int) -> int:
    """Text lines the report drew (the baseline's paragraph count): lines per page over a sample of
    pages after the cover, summary and verification section, times the page count."""
    from pypdf import PdfReader

    reader = PdfReader(str(pdf))
    sample = reader.pages[4:44] or reader.pages
    per_page = sum(len((page.extract_text() or "").splitlines()) for page in sample) / len(sample)
    return int(per_page * pages)


def run(executions: int, folder: Path) -> None:
    from workbench.project import Project
    from workbench.report import environment, render_report, synthetic

    environment.probe_engine = lambda project: environment.EngineFacts(settings={"memory": "2g"})
    project = Project.init(folder / f"p{executions}")
    started = time.perf_counter()
    entries = synthetic.fill(project, executions)
    fill_s = time.perf_counter() - started
    out = folder / f"report-{executions}.pdf"
    summary = render_report(project, out)
    lines = count_lines(out, summary.pages)
    base = baseline(lines, folder / f"baseline-{executions}.pdf")
    print(f"{executions:>6,} executions ({entries:,} entries, log built in {fill_s:.1f} s): report "
          f"{summary.seconds:6.2f} s, {summary.pages:,} pages, {summary.bytes / 1e6:.1f} MB | baseline "
          f"{lines:,} plain paragraphs {base:6.2f} s | ratio {summary.seconds / base:4.2f}x"
          + ("" if executions < 10_000 else f" | target < 30 s: {'met' if summary.seconds < 30 else 'MISSED'}"))


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [1000, 10_000]
    with tempfile.TemporaryDirectory(prefix="wb-bench-report-") as tmp:
        os.environ["WORKBENCH_DATA_DIR"] = str(Path(tmp) / "data")  # never touch the user's signing key
        os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
        for n in sizes:
            run(n, Path(tmp))


if __name__ == "__main__":
    main(sys.argv[1:])

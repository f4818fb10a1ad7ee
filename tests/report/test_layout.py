"""The fast layout pieces: line blocks split by row, the reversed flowable queue, word wrap."""

from __future__ import annotations

from reportlab.lib import colors
from reportlab.platypus import Spacer

from workbench.report.flowables import BlockStyle, Line, LineBlock, wrap_mono, wrap_words
from workbench.report.pdf import FlowQueue


def test_wrap_mono_and_words():
    assert wrap_mono("abcdefgh", 3) == ["abc", "def", "gh"]
    assert wrap_mono("short", 80) == ["short"]
    rows = wrap_words("a few words " + "x" * 300, "Helvetica", 9, 100)
    assert rows[0] == "a few words" and "".join(rows[1:]) == "x" * 300


def test_line_block_wraps_and_splits_by_row_keeping_gutters():
    style = BlockStyle(leading=10, pad_y=2, gutter_chars=4, gutter_font="Courier", gutter_size=7,
                       gutter_color=colors.grey, continuation="+")
    lines = [Line(f"line {i} " + "y" * (200 if i == 3 else 0), "Courier", 7, colors.black, str(i))
             for i in range(1, 41)]
    block = LineBlock(lines, style)
    width, height = block.wrap(300, 1000)
    rows = block._rows
    assert len(rows) > 40 and [g for g, _ in rows[:5]] == ["1", "2", "3", "+", "+"]
    assert height == len(rows) * 10 + 4
    head, tail = block.split(300, 104)
    assert len(head._rows) == 10 and head._rows + tail._rows == rows
    assert tail.wrap(300, 1000)[1] == (len(rows) - 10) * 10 + 4
    assert block.split(300, 5) == []


def test_flow_queue_behaves_like_a_list_at_the_front():
    items = [Spacer(1, i) for i in range(5)]
    q = FlowQueue(items)
    assert len(q) == 5 and q[0] is items[0] and q[-1] is items[4] and q[:2] == items[:2]
    del q[0]
    assert q[0] is items[1]
    extra = Spacer(1, 99)
    q.insert(0, extra)
    assert q[0] is extra
    q[0:0] = [items[0]]
    assert q[:3] == [items[0], extra, items[1]]
    del q[:2]
    assert q[0] is items[1] and len(q) == 4

"""Live stdout/stderr of the running execution, in a bounded `Log` fed in batches.

stdout and stderr stay apart line by line: a stderr line carries the `ERR` gutter mark and the error
colour. The panel never holds more than `max_lines` lines; the full output is in the audit log.
The output is the sandbox's: every control character in it is shown as a visible escape (`\\x1b[2J`),
never sent to the terminal (Textual's `Log` replaces only \\x00-\\x14 and lets ESC and C1 through).
"""

from __future__ import annotations

import time
from typing import Any

from rich.highlighter import Highlighter
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.widgets import Log

from workbench.inert import visible
from workbench.tui.bridge import OutputBatch

ERR = "ERR│ "
START = "▶ "
END = "■ "
NOTE = "… "
MAX_LINES = 5000
MAX_BATCH_LINES = 1000  # a frame shows ~40 lines; more than this in one batch is only scrolled past


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"  # pragma: no cover


class StreamHighlighter(Highlighter):
    """Colours a line by its mark: stderr, execution start, end, notes."""

    def highlight(self, text: Text) -> None:
        plain = text.plain
        if plain.startswith(ERR):
            text.stylize("red")
            text.stylize("bold reverse red", 0, len(ERR) - 2)
        elif plain.startswith(START):
            text.stylize("bold cyan")
        elif plain.startswith(END):
            text.stylize("bold green" if " exit 0 " in plain else "bold red")
        elif plain.startswith(NOTE):
            text.stylize("italic yellow")


class OutputPanel(Log):
    """The Output pane. `write_batch` takes what the bridge drained since the last frame."""

    BINDINGS = [Binding("ctrl+c", "screen.stop", "Stop", show=True)]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(highlight=True, max_lines=MAX_LINES, auto_scroll=True, **kwargs)
        self.highlighter = StreamHighlighter()
        self._at_line_start = True
        self._last_stream = "stdout"
        self.total_bytes = 0
        self.running: str | None = None
        self._skipped_chars = 0
        self._skipped_lines = 0
        self._last_skip_note = 0.0

    def _ensure_newline(self) -> None:
        if not self._at_line_start:
            self.append("\n")
            self._at_line_start = True

    def note(self, line: str, mark: str = NOTE) -> None:
        self._ensure_newline()
        self.append(f"{mark}{line}\n")

    def append(self, text: str) -> None:
        """`Log.write` for big batches: one split, one refresh, no per-line work.

        Log.write measures and refreshes every line it adds, which costs ~10 µs a line; a frame's batch
        of thousands of lines would hold the event loop for tens of milliseconds. Widths are measured
        with len() (exact for the ASCII that floods are made of; wide characters may clip a little).
        Uses Log's internals, which is safe because Textual is pinned exactly.
        """
        if not text:
            return
        text = visible(text.replace("\r\n", "\n"))  # a CRLF line end is a line end; a bare CR shows as \r
        lines = self._lines
        if not lines:
            lines.append("")
        parts = text.split("\n")
        last = len(lines) - 1
        lines[-1] += parts[0]
        self._render_line_cache.discard(last)
        lines.extend(parts[1:])
        widest = max(len(lines[last]), max(map(len, parts)))
        self._width = max(self._width, widest)
        if self.max_lines is not None and len(lines) > self.max_lines:
            self._prune_max_lines()
        self.virtual_size = Size(self._width, self.line_count)
        self.refresh()
        if self.auto_scroll:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def start_execution(self, execution_id: str, language: str, actor: str) -> None:
        self.running = execution_id
        self.total_bytes = 0
        self.note(f"{language} · {execution_id} · {actor}", START)
        self._update_title()

    def finish_execution(self, payload: dict[str, Any]) -> None:
        self._flush_skipped(force=True)
        self.running = None
        exit_code = payload.get("exit_code")
        try:
            duration = float(payload.get("duration") or 0.0)
        except (TypeError, ValueError):  # not a number: shown as 0, never a crash of the pane
            duration = 0.0
        why = ""
        if payload.get("timed_out"):
            why = " · timed out"
        elif payload.get("killed_by"):
            why = f" · killed ({payload['killed_by']})"
        self.note(f"exit {exit_code} · {duration:.2f} s{why}", END)
        for note in payload.get("notes") or ():
            self.note(str(note))
        self._update_title()

    def _format(self, stream: str, text: str) -> str:
        head = ""
        if stream != self._last_stream and not self._at_line_start:
            head = "\n"
            self._at_line_start = True
        self._last_stream = stream
        if stream == "stderr":
            body = text[:-1] if text.endswith("\n") else text
            body = body.replace("\n", "\n" + ERR)
            if self._at_line_start:
                body = ERR + body
            text = body + ("\n" if text.endswith("\n") else "")
        self._at_line_start = text.endswith("\n")
        return head + text

    def _flush_skipped(self, force: bool = False) -> None:
        """Say what a flood scrolled past, at most once a second (and at the end of the execution)."""
        if not (self._skipped_chars or self._skipped_lines):
            return
        now = time.monotonic()
        if not force and now - self._last_skip_note < 1.0:
            return
        self._last_skip_note = now
        what = [f"{self._skipped_lines:,} lines"] if self._skipped_lines else []
        what += [human_bytes(self._skipped_chars)] if self._skipped_chars else []
        self._skipped_chars = self._skipped_lines = 0
        self.note(f"{' + '.join(what)} scrolled past too fast to show (the audit log has all of it)")

    def write_batch(self, batch: OutputBatch) -> None:
        if batch.dropped_chars:
            self.total_bytes += batch.dropped_chars
            self._skipped_chars += batch.dropped_chars
        if not batch.pieces:
            self._flush_skipped()
            return
        was_at_start = self._at_line_start
        parts = []
        for piece in batch.pieces:
            self.total_bytes += len(piece.text)
            parts.append(self._format(piece.stream, piece.text))
        text = "".join(parts)
        ends_at_line_start = self._at_line_start  # _format tracked it to the end of `text`
        if text.count("\n", 0) > MAX_BATCH_LINES:  # a flood: write only the tail of this frame's batch
            cut = len(text)
            for _ in range(MAX_BATCH_LINES + 1):
                cut = text.rfind("\n", 0, cut)
            skipped, text = text[:cut + 1], text[cut + 1:]  # `text` now starts a line
            self._skipped_lines += skipped.count("\n")
            self._at_line_start = was_at_start  # where the log itself is
            self._ensure_newline()
            self._flush_skipped()
        self.append(text)
        self._at_line_start = ends_at_line_start
        self._update_title()

    def _update_title(self) -> None:
        state = f"running {self.running}" if self.running else "idle"
        self.border_subtitle = f"{state} · {human_bytes(self.total_bytes)}"

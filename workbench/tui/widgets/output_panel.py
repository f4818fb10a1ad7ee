"""Live stdout/stderr of the running execution, in a bounded `Log` fed in batches.

stdout and stderr stay apart line by line: a stderr line carries the `ERR` gutter mark and the error
colour. The panel never holds more than `max_lines` lines; the full output is in the audit log.
"""

from __future__ import annotations

from typing import Any

from rich.highlighter import Highlighter
from rich.text import Text
from textual.binding import Binding
from textual.widgets import Log

from workbench.tui.bridge import OutputBatch

ERR = "ERR│ "
START = "▶ "
END = "■ "
NOTE = "… "
MAX_LINES = 5000


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

    def _ensure_newline(self) -> None:
        if not self._at_line_start:
            self.write("\n")
            self._at_line_start = True

    def note(self, line: str, mark: str = NOTE) -> None:
        self._ensure_newline()
        self.write(f"{mark}{line}\n")

    def start_execution(self, execution_id: str, language: str, actor: str) -> None:
        self.running = execution_id
        self.total_bytes = 0
        self.note(f"{language} · {execution_id} · {actor}", START)
        self._update_title()

    def finish_execution(self, payload: dict[str, Any]) -> None:
        self.running = None
        exit_code = payload.get("exit_code")
        duration = float(payload.get("duration") or 0.0)
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

    def write_batch(self, batch: OutputBatch) -> None:
        if batch.dropped_chars:
            self.total_bytes += batch.dropped_chars
            self.note(f"{human_bytes(batch.dropped_chars)} of output not shown here "
                      "(too fast to display; the audit log has all of it)")
        if not batch.pieces:
            return
        was_at_start = self._at_line_start
        parts = []
        for piece in batch.pieces:
            self.total_bytes += len(piece.text)
            parts.append(self._format(piece.stream, piece.text))
        text = "".join(parts)
        if text.count("\n", 0) > MAX_LINES:  # more than the panel keeps: write only the tail
            cut = len(text)
            for _ in range(MAX_LINES + 1):
                cut = text.rfind("\n", 0, cut)
            skipped, text = text[:cut + 1], text[cut + 1:]
            if not was_at_start:
                self.write("\n")
            self.write(f"{NOTE}{skipped.count(chr(10))} lines scrolled past (the audit log has all of them)\n")
        self.write(text)
        self._update_title()

    def _update_title(self) -> None:
        state = f"running {self.running}" if self.running else "idle"
        self.border_subtitle = f"{state} · {human_bytes(self.total_bytes)}"

"""Whether a replayed execution reproduced the recorded one, bit for bit, and if not, what differs.

Compared: each stream by its SHA-256 and length over every byte (not only the bytes kept), the exit code
and how it ended (timed out, killed), and every workspace change (path, created/modified/deleted, the file's
SHA-256, a symlink's target). A differing text stream comes with a short unified diff of the text as the log
holds it (`exec.output`, bad bytes backslash-escaped) against the replay's, so "stdout differs" shows where.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from workbench.inert import one_line, visible
from workbench.replay.record import Recorded
from workbench.sandbox.types import ExecutionResult, StreamSummary

DIFF_LINES = 12  # lines of unified diff shown per stream
DIFF_LINE_CHARS = 160


@dataclass(frozen=True)
class Difference:
    """One thing that differs: `what` names it (stdout, stderr, exit code, file PATH, input PATH), `line`
    says how in one line, `diff` is a short unified diff of text output (empty where there is none)."""

    what: str
    line: str
    diff: str = ""


def short(digest: Any) -> str:
    return str(digest or "none")[:12]


def _stream(name: str, recorded: Recorded, replayed: StreamSummary) -> Difference | None:
    summary = recorded.stream(name)
    if summary.get("sha256") == replayed.sha256 and summary.get("total_bytes") == replayed.total_bytes:
        return None
    line = (f"{name} differs: recorded {summary.get('total_bytes', '?')} bytes sha256 "
            f"{short(summary.get('sha256'))}, replay {replayed.total_bytes} bytes sha256 {short(replayed.sha256)}")
    return Difference(name, line, text_diff(recorded.text(name), replayed.text(), name))


def text_diff(before: str, after: str, name: str) -> str:
    """A unified diff of two texts, at most DIFF_LINES lines, each line made inert and cut short."""
    lines = list(difflib.unified_diff(before.splitlines(), after.splitlines(), f"recorded {name}",
                                      f"replay {name}", n=1, lineterm=""))
    shown = [visible(line)[:DIFF_LINE_CHARS] for line in lines[:DIFF_LINES]]
    if len(lines) > DIFF_LINES:
        shown.append(f"... {len(lines) - DIFF_LINES} more diff lines")
    return "\n".join(shown)


def _files(recorded: Recorded) -> dict[str, tuple[Any, ...]]:
    found = {}
    for change in recorded.finished.files:
        if isinstance(change, dict) and isinstance(change.get("path"), str):
            found[change["path"]] = (change.get("change"), change.get("kind") or "file", change.get("sha256"),
                                     change.get("target"))
    return found


def _describe(state: tuple[Any, ...]) -> str:
    change, kind, digest, target = state
    if kind == "symlink":
        return f"{change} (a symlink to {one_line(target or '?')})"
    if kind != "file":
        return f"{change} ({kind})"
    return f"{change}" + (f" sha256 {short(digest)}" if digest else "")


def compare(recorded: Recorded, result: ExecutionResult) -> list[Difference]:
    """What differs between the recorded execution and its replay (empty: reproduced bit for bit)."""
    found: list[Difference] = []
    rec = recorded.finished
    if rec.exit_code != result.exit_code:
        found.append(Difference("exit code", f"exit code differs: recorded {rec.exit_code}, replay {result.exit_code}"))
    if bool(rec.timed_out) != result.timed_out or (rec.killed_by or None) != result.killed_by:
        found.append(Difference("ending", f"how it ended differs: recorded timed_out={bool(rec.timed_out)} killed_by="
                                          f"{rec.killed_by}, replay timed_out={result.timed_out} killed_by="
                                          f"{result.killed_by}"))
    for name, summary in (("stdout", result.stdout), ("stderr", result.stderr)):
        difference = _stream(name, recorded, summary)
        if difference is not None:
            found.append(difference)
    before = _files(recorded)
    after = {c.path: (c.change, c.kind, c.sha256, c.target) for c in result.files}
    for path in sorted(set(before) | set(after)):
        was, now = before.get(path), after.get(path)
        if was == now:
            continue
        name = one_line(path)
        if now is None:
            line = f"file {name}: recorded {_describe(was)}, the replay left it unchanged"  # type: ignore[arg-type]
        elif was is None:
            line = f"file {name}: the replay {_describe(now)}, the record shows no change"
        else:
            line = f"file {name} differs: recorded {_describe(was)}, replay {_describe(now)}"
        found.append(Difference(f"file {name}", line))
    return found

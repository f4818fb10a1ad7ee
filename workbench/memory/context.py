"""Render retrieved notes as a block of the agent's prompt, within a token budget.

The budget is counted with the caller's tokenizer when it gives one (the agent has the chat model's),
else estimated at 4 characters a token, which over-counts English slightly: the safe side for a context
window. Notes go in best first; the first note that does not fit is cut at a word boundary, and later
ones are left out, so the most relevant knowledge survives a small budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from workbench.memory.notes import Note

MIN_BODY_CHARS = 40  # a cut note must still say something
HEADER = "Notes from earlier sessions (most relevant first):\n"


def estimate_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def _block(note: Note) -> str:
    date = note.created[:10]
    tags = f" [{', '.join(note.tags)}]" if note.tags else ""
    body = note.body.strip()
    if note.first_line == note.title:  # the title was made from the first line: do not say it twice
        body = body.split("\n", 1)[1].strip() if "\n" in body else ""
    return f"\n## {note.title} ({date}{tags})\n{body}\n" if body else f"\n## {note.title} ({date}{tags})\n"


def _cut(block: str, budget: int, count: Callable[[str], int]) -> str:
    """The longest word-boundary prefix of `block` that fits `budget` with an ellipsis; "" when even the
    heading and a few words of the note do not fit."""
    heading_end = block.index("\n", 1) + 1
    lo, hi = heading_end, len(block)
    while lo < hi:  # binary search: token counters are monotone in the text's length
        mid = (lo + hi + 1) // 2
        if count(block[:mid] + "…\n") <= budget:
            lo = mid
        else:
            hi = mid - 1
    cut = block[:lo]
    if " " in cut[heading_end:]:
        cut = cut[: cut.rindex(" ")] if not cut.endswith((" ", "\n")) else cut
    if len(cut) - heading_end < MIN_BODY_CHARS:
        return ""
    return cut.rstrip() + "…\n"


def render_context(hits: Sequence[tuple[Note, float]], similarity: dict[str, float], token_budget: int,
                   count_tokens: Callable[[str], int] | None = None, min_similarity: float | None = None
                   ) -> tuple[str, list[dict[str, Any]]]:
    """(prompt text, what went in). With `min_similarity`, notes below it (or never scored) are skipped."""
    count = count_tokens or estimate_tokens
    kept = [(n, s) for n, s in hits
            if min_similarity is None or similarity.get(n.id, -1.0) >= min_similarity]
    if not kept or token_budget <= count(HEADER):
        return "", []
    parts = [HEADER]
    used_tokens = count(HEADER)
    used: list[dict[str, Any]] = []
    for note, score in kept:
        block = _block(note)
        cost = count(block)
        if used_tokens + cost > token_budget:
            partial = _cut(block, token_budget - used_tokens, count)
            if partial:
                parts.append(partial)
                used.append({"id": note.id, "score": round(score, 4), "truncated": True})
            break
        parts.append(block)
        used_tokens += cost
        used.append({"id": note.id, "score": round(score, 4), "truncated": False})
    if not used:
        return "", []
    return "".join(parts), used

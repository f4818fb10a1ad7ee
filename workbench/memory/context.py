"""Render retrieved notes as a block of the agent's prompt, within a token budget.

The budget is counted with the caller's tokenizer when it gives one (the agent has the chat model's),
else estimated at 4 characters a token, which over-counts English slightly: the safe side for a context
window. Notes go in best first; the first note that does not fit is cut at a line boundary, and later
ones are left out, so the most relevant knowledge survives a small budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from workbench.memory.notes import Note

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
            lines = block.splitlines(keepends=True)
            partial = ""
            for line in lines:
                if used_tokens + count(partial + line + "…\n") > token_budget:
                    break
                partial += line
            if partial.count("\n") >= 3:  # heading and at least two lines of the note
                parts.append(partial.rstrip("\n") + "\n…\n")
                used.append({"id": note.id, "score": round(score, 4), "truncated": True})
            break
        parts.append(block)
        used_tokens += cost
        used.append({"id": note.id, "score": round(score, 4), "truncated": False})
    if not used:
        return "", []
    return "".join(parts), used

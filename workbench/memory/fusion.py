"""Hybrid ranking: turn a query into a safe FTS5 expression, and fuse ranked lists by reciprocal rank.

Reciprocal rank fusion (score = sum of weight / (K + rank) over the lists a note appears in) needs no
calibration between a cosine distance and a BM25 score, which live on unrelated scales.

Measured on tests/memory/data/quality.json (10 paraphrased queries, expected note in the top 3; and 6
queries naming an identifier such as `ecb_monthly` or `QUALIFY`), sweeping K over 10/30/60 and the
text weight over 0-1: with all-MiniLM-L6-v2, K=10 and a text weight of 0.25 gave 10/10 paraphrases at
rank 1 and 6/6 identifiers; vectors alone 10/10 and 5/6; a weight of 0.5 or more lost a paraphrase
(keyword hits on common words such as "data" outranked the meaning). With the chat model's weak
vectors the keyword list deserves full weight. So the weight comes from the embedder (`text_weight`),
and K is small because the candidate lists are short (30).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

RRF_K = 10
VECTOR_WEIGHT = 1.0
TEXT_WEIGHT = 1.0  # for an embedder that does not say how far to trust it

# Words that carry no topic: matching on them only adds noise to the keyword list.
STOPWORDS = frozenset("""
a about above after again all also am an and any are as at be because been before being below between both
but by can could did do does doing done down during each few for from further had has have having he her
here hers him his how i if in into is it its itself just let me more most my no nor not now of off on once
only or other our out over own same she should so some such than that the their them then there these they
this those through to too under until up very was we were what when where which while who whom why will
with would you your yours use used using get got make made find way thing things
""".split())


def content_words(text: str) -> list[str]:
    """The query's content words: lower-case, no stop words, no repeats, at most 32."""
    words = [w for w in re.findall(r"\w+", text.lower()) if len(w) > 1 and w not in STOPWORDS]
    return list(dict.fromkeys(words))[:32]


def fts_query(text: str | list[str]) -> str | None:
    """An FTS5 MATCH expression: the content words (of a text, or given), each quoted, OR-ed (None when
    none is left).

    Quoting every term means user text can never be parsed as FTS5 syntax (AND, NEAR, column filters).
    """
    words = content_words(text) if isinstance(text, str) else text
    if not words:
        return None
    return " OR ".join(f'"{w}"' for w in words)


def reciprocal_rank_fusion(lists: Sequence[tuple[float, Iterable[int]]], k: int = RRF_K) -> dict[int, float]:
    """Fuse ranked lists of ids, each with a weight, into {id: score}, scaled so 1.0 is first everywhere."""
    fused: dict[int, float] = {}
    total = sum(weight for weight, _ in lists) or 1.0
    for weight, ids in lists:
        for rank, item in enumerate(ids):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank + 1)
    best = total / (k + 1)
    return {item: score / best for item, score in fused.items()}

"""Hybrid ranking: turn a query into a safe FTS5 expression, and fuse ranked lists by reciprocal rank.

Reciprocal rank fusion (score = sum of weight / (K + rank) over the lists a note appears in) needs no
calibration between a cosine distance and a BM25 score, which live on unrelated scales. The vector list
is weighted higher: on the test set, keyword matches on common words otherwise pushed paraphrase hits
out of the top 3 (see tests/memory/test_quality.py for the measured figures).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

RRF_K = 60
VECTOR_WEIGHT = 1.0
TEXT_WEIGHT = 0.5

# Words that carry no topic: matching on them only adds noise to the keyword list.
STOPWORDS = frozenset("""
a about above after again all also am an and any are as at be because been before being below between both
but by can could did do does doing done down during each few for from further had has have having he her
here hers him his how i if in into is it its itself just let me more most my no nor not now of off on once
only or other our out over own same she should so some such than that the their them then there these they
this those through to too under until up very was we were what when where which while who whom why will
with would you your yours use used using get got make made find way thing things
""".split())


def fts_query(text: str) -> str | None:
    """An FTS5 MATCH expression: the query's content words, each quoted, OR-ed (None when none is left).

    Quoting every term means user text can never be parsed as FTS5 syntax (AND, NEAR, column filters).
    """
    words = [w for w in re.findall(r"\w+", text.lower()) if len(w) > 1 and w not in STOPWORDS]
    unique = list(dict.fromkeys(words))[:32]
    if not unique:
        return None
    return " OR ".join(f'"{w}"' for w in unique)


def reciprocal_rank_fusion(lists: Sequence[tuple[float, Iterable[int]]], k: int = RRF_K) -> dict[int, float]:
    """Fuse ranked lists of ids, each with a weight, into {id: score}, scaled so 1.0 is first everywhere."""
    fused: dict[int, float] = {}
    total = sum(weight for weight, _ in lists) or 1.0
    for weight, ids in lists:
        for rank, item in enumerate(ids):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank + 1)
    best = total / (k + 1)
    return {item: score / best for item, score in fused.items()}

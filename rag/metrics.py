"""Ranking metrics for retrieval evaluation, as defined by BEIR/TREC (graded nDCG, recall, MRR).

Each function takes the ranked document ids a system returned for one query and the judged relevance of
documents for that query (`qrels`: doc id -> grade, grade > 0 means relevant). Averaging over queries
is the caller's job. This module does not run searches.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def ndcg_at(ranked: Sequence[str], qrels: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with gain = grade and discount 1/log2(rank + 1) (rank from 1); 0 if nothing is relevant."""
    dcg = sum(qrels.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(_dedup(ranked)[:k]))
    ideal = sorted((g for g in qrels.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """Fraction of the relevant documents found in the top k."""
    relevant = {doc for doc, g in qrels.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant & set(_dedup(ranked)[:k])) / len(relevant)


def mrr_at(ranked: Sequence[str], qrels: Mapping[str, int], k: int = 10) -> float:
    """Reciprocal rank of the first relevant document within the top k (0 if none)."""
    for rank, doc in enumerate(_dedup(ranked)[:k], start=1):
        if qrels.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _dedup(ranked: Sequence[str]) -> list[str]:
    """A document counts once, at its best rank (several of its chunks may have been retrieved)."""
    return list(dict.fromkeys(ranked))

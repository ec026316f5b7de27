"""Metrics for evaluation: retrieval ranking (BEIR/TREC graded nDCG, recall, MRR) and answer text (SQuAD).

Ranking functions take the ranked document ids a system returned for one query and the judged relevance
of documents for that query (`qrels`: doc id -> grade, grade > 0 means relevant). Answer functions take
one predicted answer and the gold answers of one question, compared after SQuAD's normalisation.
Averaging over queries is the caller's job. This module does not run searches or models.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
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


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def squad_normalize(text: str) -> str:
    """SQuAD v1.1's answer normalisation: lowercase, delete ASCII punctuation, drop the articles a/an/the,
    collapse whitespace. `squad_normalize("The  Broncos!") == "broncos"`."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """1.0 if the normalised prediction equals some normalised gold answer, else 0.0."""
    pred = squad_normalize(prediction)
    return float(any(pred == squad_normalize(gold) for gold in golds))


def token_f1(prediction: str, golds: Sequence[str]) -> float:
    """SQuAD token F1 between the normalised prediction and the best-matching gold answer (0.0 when
    either side has no tokens, as in the official v1.1 script)."""
    pred = squad_normalize(prediction).split()
    return max((_f1(pred, squad_normalize(gold).split()) for gold in golds), default=0.0)


def contains_answer(text: str, golds: Sequence[str]) -> bool:
    """True if some non-empty normalised gold answer occurs in the normalised text as whole words
    ("308" is in "gave up 308 points" but not in "3080")."""
    padded = f" {squad_normalize(text)} "
    return any(gold and f" {gold} " in padded for gold in map(squad_normalize, golds))


def _f1(pred: list[str], gold: list[str]) -> float:
    same = sum((Counter(pred) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def _dedup(ranked: Sequence[str]) -> list[str]:
    """A document counts once, at its best rank (several of its chunks may have been retrieved)."""
    return list(dict.fromkeys(ranked))


# -- uncertainty over queries ---------------------------------------------------------------------------

BOOTSTRAP_SAMPLES = 2000


def bootstrap_ci(values: Sequence[float], level: float = 0.95, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0):
    """Percentile-bootstrap interval of the mean of per-query `values` (queries resampled with
    replacement, seeded): (low, high). A single value or none gives (mean, mean)."""
    import numpy as np

    data = np.asarray(values, dtype=np.float64)
    if data.size < 2:
        mean = float(data.mean()) if data.size else 0.0
        return mean, mean
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(samples, data.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired_difference(a: Mapping[str, float], b: Mapping[str, float], level: float = 0.95, seed: int = 0):
    """Mean of b - a over the queries both scored, with its paired-bootstrap interval: (diff, low, high).
    Pairing by query removes the spread between easy and hard queries that unpaired intervals carry, so
    an interval that excludes 0 is a difference the queries support."""
    common = sorted(set(a) & set(b))
    diffs = [b[q] - a[q] for q in common]
    mean = sum(diffs) / len(diffs) if diffs else 0.0
    low, high = bootstrap_ci(diffs, level, seed=seed)
    return mean, low, high

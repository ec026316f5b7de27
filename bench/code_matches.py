"""Full-text search with and without the verbatim code matches, on a BEIR collection's queries.

    python bench/code_matches.py --workspace /tmp/scifact-ws [--data ../shared/data/scifact]

Text search puts chunks that hold the query's code-like tokens verbatim ("8-2-6-3", "XJ-9921-B",
"v3.11.2") before the BM25 matches, because word tokenizers cut such codes into pieces too short to
match. Scientific claims are full of tokens that look like codes ("IL-6", "T-cell", "non-coding"), so
this measures what that costs where codes are not what is looked for: text-mode nDCG@10 per split for
  bm25                 BM25 alone
  shipped              what `Store.search_text` does now (ingest.store.code_tokens' codes first)
  broad, in BM25 order the rule before (any token with an inner symbol or mixing letters and digits),
                       its matches ordered by BM25 (before, they came in scan order)
  broad, codes in <=N  the same, but only for codes that at most N chunks hold
Both run through the same index (`rag eval retrieval DATA --workspace DIR` makes one), 95% bootstrap
intervals and the paired difference included.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rag
from ingest.normalize import normalize_text
from ingest.store import ROW_FIELDS, Store, _like_escape, _quote, _row
from rag.eval import retrieval as beir
from rag.eval.metrics import bootstrap_ci, ndcg_at, paired_difference

DEPTH = 200


def bm25(store: Store, text: str) -> list[str]:
    query = store._table.search(text, query_type="fts", fts_columns="text").limit(DEPTH)
    rows = [_row(r) for r in query.select(ROW_FIELDS + ["_score"]).to_arrow().to_pylist()]
    return _documents([r.path for r in rows])


def shipped(store: Store, text: str) -> list[str]:
    return _documents([r.path for r, _ in store.search_text(text, DEPTH)])


def broad_codes(text: str, limit: int = 4) -> list[str]:
    """The rule before: any token with an inner symbol, or mixing letters and digits (T-cell, CD4, A4)."""
    found = []
    for raw in text.split():
        token = raw.strip("\"'()[]{}<>,;:!?").rstrip(".")
        if len(token) < 2 or token in found:
            continue
        digit, alpha = any(c.isdigit() for c in token), any(c.isalpha() for c in token)
        if any(not c.isalnum() for c in token) or (digit and alpha):
            found.append(token)
    return found[:limit]


def rare_first(store: Store, text: str, rare: int, tokens=broad_codes) -> list[str]:
    """Codes held by at most `rare` chunks go first (by how many such codes, then BM25 order); codes
    that many chunks hold are left to BM25."""
    query = store._table.search(text, query_type="fts", fts_columns="text").limit(DEPTH)
    ranked = [_row(r).path for r in query.select(ROW_FIELDS + ["_score"]).to_arrow().to_pylist()]
    order = {p: i for i, p in reversed(list(enumerate(ranked)))}
    codes = tokens(text)
    holders: dict[str, set[str]] = {}
    if codes:
        likes = [f"lower(text) LIKE {_quote('%' + _like_escape(c.lower()) + '%')}" for c in codes]
        for r in store._scan(["path", "text"], "(" + " OR ".join(likes) + ")").to_pylist():
            body = r["text"].lower()
            for c in codes:
                if c.lower() in body:
                    holders.setdefault(c, set()).add(r["path"])
    rare_codes = [c for c, paths in holders.items() if len(paths) <= rare]
    exact = {p for c in rare_codes for p in holders[c]}
    first = sorted(exact, key=lambda p: (-sum(p in holders[c] for c in rare_codes), order.get(p, DEPTH)))
    return _documents(first + [p for p in ranked if p not in exact])


def _documents(paths: list[str]) -> list[str]:
    seen: list[str] = []
    for p in paths:
        stem = Path(p).stem
        if stem not in seen:
            seen.append(stem)
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/scifact"))
    parser.add_argument("--splits", default="train,test")
    args = parser.parse_args()
    rag.tune_cpu()
    store = Store.open(Path(args.workspace) / "index")
    for split in args.splits.split(","):
        data = beir.load_beir(Path(args.data), split)
        scores: dict[str, dict[str, float]] = {"bm25": {}, "shipped": {}, "broad, in BM25 order": {}}
        rares = (1, 3, 10)
        scores |= {f"broad, codes in <={n} chunks": {} for n in rares}
        for q, text in data.queries.items():
            qrels = {beir._safe(d): g for d, g in data.qrels[q].items()}
            query = normalize_text(text)
            scores["bm25"][q] = ndcg_at(bm25(store, query), qrels, 10)
            scores["shipped"][q] = ndcg_at(shipped(store, query), qrels, 10)
            scores["broad, in BM25 order"][q] = ndcg_at(rare_first(store, query, 10**9), qrels, 10)
            for n in rares:
                scores[f"broad, codes in <={n} chunks"][q] = ndcg_at(rare_first(store, query, n), qrels, 10)
        print(f"{split} ({len(data.queries)} queries), text-mode nDCG@10:")
        for name, per in scores.items():
            low, high = bootstrap_ci(list(per.values()))
            print(f"  {name:<30}{sum(per.values()) / len(per):.4f} [{low:.4f}, {high:.4f}]")
        diff, low, high = paired_difference(scores["bm25"], scores["shipped"])
        print(f"  shipped - bm25: {diff:+.4f} [{low:+.4f}, {high:+.4f}]")


if __name__ == "__main__":
    main()

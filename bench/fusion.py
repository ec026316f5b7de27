"""Hybrid fusion rules compared on a BEIR collection: chosen on one qrels split, reported on another.

    python bench/fusion.py --workspace /tmp/scifact-ws [--data ../shared/data/scifact] [--choose train] [--report test]

The workspace is one `rag eval retrieval DATA --workspace DIR` made (its index of the corpus, one file
per document). For every judged query of both splits, the vector and full-text candidate lists are
fetched once from that index (the store calls `rag.retrieve` makes, top `--depth` chunks each, 200 as
in `rag eval retrieval`), then
each fusion rule ranks documents from them and is scored with nDCG@10:
  rrf over chunks         reciprocal rank fusion of chunks, sum of w/(k + rank) (shipped before: k=60, w=1)
  rrf over documents      the same over documents: each list's chunks aggregated to their best per document
  convex over chunks      alpha * cosine + (1 - alpha) * BM25 per chunk, each list's scores scaled per query
                          by min-max, theoretical-min-max (tmm: 0 for BM25, -1 for cosine) or z-score
  convex over documents   the same per document: best chunk (+ `second` x the second best) of each list
each also with BM25 over title + text (a side full-text table where each chunk carries its document's
title, the corpus file's first line),
with k, the text list's weight, alpha and the candidates per list (50 or 200) on a grid.
Every rule is scored on `--choose` (SciFact's train split, 809 queries) only; the best rule of each
family, the baseline and what ships (rag.retrieve.combined_scores itself) are then scored once on
`--report`, with 95% bootstrap intervals and the paired difference to the baseline. `--cache FILE` keeps
the candidate lists for later runs; `--no-report` stops after the `--choose` split. Documents are ranked
by their best chunk, as in `rag eval retrieval`.
"""

from __future__ import annotations

import argparse
import itertools
import pickle
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rag
from ingest.normalize import normalize_text
from ingest.store import Store
from rag.eval import retrieval as beir
from rag.eval.metrics import bootstrap_ci, ndcg_at, paired_difference
from rag.retrieve import HYBRID_ALPHA, combined_scores

Hits = list[tuple[str, str, float]]  # (document id, chunk id, score), best first


def candidates(store: Store, embedder, text: str, depth: int) -> tuple[Hits, Hits]:
    query = normalize_text(text)
    vector = embedder.embed([embedder.query_prefix + query])[0]
    vec = [(Path(r.path).stem, r.id, s) for r, s in store.search(vector, depth)]
    txt = [(Path(r.path).stem, r.id, s) for r, s in store.search_text(query, depth)]
    return vec, txt


def documents(scored: dict[str, float]) -> list[str]:
    return sorted(scored, key=lambda d: -scored[d])


def _best_chunk(chunk_scores: dict[str, float], doc_of: dict[str, str]) -> list[str]:
    """Documents ranked by their best chunk (as `rag eval retrieval` ranks them)."""
    scores: dict[str, float] = {}
    for cid, value in chunk_scores.items():
        doc = doc_of[cid]
        scores[doc] = max(scores.get(doc, float("-inf")), value)
    return documents(scores)


def rrf_chunks(vec: Hits, txt: Hits, k: float = 60, w_vec: float = 1.0, w_txt: float = 1.0, cut: int = 50):
    """RRF over chunks (what rag.retrieve.fuse does), then documents by their best chunk."""
    fused: dict[str, float] = {}
    doc_of: dict[str, str] = {}
    for hits, weight in ((vec[:cut], w_vec), (txt[:cut], w_txt)):
        for rank, (doc, cid, _) in enumerate(hits, start=1):
            fused[cid] = fused.get(cid, 0.0) + weight / (k + rank)
            doc_of[cid] = doc
    return _best_chunk(fused, doc_of)


def rrf_documents(vec: Hits, txt: Hits, k: float = 60, w_vec: float = 1.0, w_txt: float = 1.0, cut: int = 50):
    """RRF over documents: each list ranks documents by their best chunk first, then the ranks fuse."""
    fused: dict[str, float] = {}
    for hits, weight in ((vec[:cut], w_vec), (txt[:cut], w_txt)):
        seen: list[str] = []
        for doc, _, _ in hits:
            if doc not in seen:
                seen.append(doc)
        for rank, doc in enumerate(seen, start=1):
            fused[doc] = fused.get(doc, 0.0) + weight / (k + rank)
    return documents(fused)


def _normalise(hits: Hits, how: str) -> list[float]:
    """Scores of one list on a common scale: "minmax" (observed min and max), "tmm" (theoretical minimum,
    0 for BM25 and -1 for cosine, observed max; Bruch et al. 2023), "z" (z-score, mean and deviation of the
    list's candidates)."""
    values = [s for _, _, s in hits]
    if how == "z":
        mu = sum(values) / len(values)
        sd = (sum((v - mu) ** 2 for v in values) / len(values)) ** 0.5 or 1.0
        return [(v - mu) / sd for v in values]
    low = min(values) if how == "minmax" else (-1.0 if how == "tmm-cos" else 0.0)
    span = (max(values) - low) or 1.0
    return [(v - low) / span for v in values]


def convex_chunks(vec: Hits, txt: Hits, alpha: float, cut: int, how: str) -> list[str]:
    """alpha * normalised cosine + (1 - alpha) * normalised BM25 per chunk, scales by `how` (absent from
    a list: 0 on the min-max and tmm scales, the list's lowest z-score on the z scale), then documents by
    their best chunk."""
    lists = []
    doc_of = {cid: doc for doc, cid, _ in vec[:cut] + txt[:cut]}
    for hits, weight, kind in ((vec[:cut], alpha, "tmm-cos"), (txt[:cut], 1 - alpha, "tmm")):
        if hits:
            values = _normalise(hits, kind if how == "tmm" else how)
            scaled = {cid: v for (_, cid, _), v in zip(hits, values, strict=True)}
            lists.append((weight, scaled, min(values) if how == "z" else 0.0))
    every = {cid for _, scaled, _ in lists for cid in scaled}
    return _best_chunk({c: sum(w * scaled.get(c, floor) for w, scaled, floor in lists) for c in every}, doc_of)


def ships(vec: Hits, txt: Hits, cut: int) -> list[str]:
    """What `rag.retrieve` does in hybrid mode (rag.retrieve.combined_scores), then documents by best chunk."""
    scores = combined_scores(
        [[(cid, s) for _, cid, s in vec[:cut]], [(cid, s) for _, cid, s in txt[:cut]]],
        [HYBRID_ALPHA, 1 - HYBRID_ALPHA],
    )
    return _best_chunk(scores, {cid: doc for doc, cid, _ in vec[:cut] + txt[:cut]})


def convex_documents(vec: Hits, txt: Hits, alpha: float, cut: int, how: str, second: float = 0.0) -> list[str]:
    """alpha * normalised cosine + (1 - alpha) * normalised BM25, scales by `how` (see _normalise); each
    list first scores documents by their best chunk plus `second` times their second-best chunk (0: the
    best chunk alone), then the two document scores add (absent from a list: 0 on the min-max and tmm
    scales, the list's lowest z-score on the z scale)."""
    lists = []
    for hits, weight, kind in ((vec[:cut], alpha, "tmm-cos"), (txt[:cut], 1 - alpha, "tmm")):
        if not hits:
            continue
        values = _normalise(hits, kind if how == "tmm" else how)
        floor = min(values) if how == "z" else 0.0
        per_doc: dict[str, list[float]] = {}
        for (doc, _, _), v in zip(hits, values, strict=True):
            per_doc.setdefault(doc, []).append(v)
        docs = {d: vs[0] + second * (vs[1] if len(vs) > 1 else floor) for d, vs in per_doc.items()}
        lists.append((weight, docs, floor))
    every = set().union(*(docs for _, docs, _ in lists)) if lists else set()
    fused = {d: sum(w * docs.get(d, floor) for w, docs, floor in lists) for d in every}
    return documents(fused)


def single(hits: Hits) -> list[str]:
    return _best_chunk({cid: -rank for rank, (_, cid, _) in enumerate(hits)}, {cid: d for d, cid, _ in hits})


def score(rule: Callable[[Hits, Hits], list[str]], runs: dict, qrels: dict) -> dict[str, float]:
    return {q: ndcg_at(rule(*runs[q]), qrels[q], 10) for q in runs}


def mean(per_query: dict[str, float]) -> float:
    return sum(per_query.values()) / len(per_query)


def titled_text_search(store: Store, workspace: Path):
    """A full-text search over the same chunks with each document's title (its first line) put before
    every chunk that doesn't start with it: BM25 over title + text, in a side table (same tokenizer)."""
    import lancedb
    import pyarrow as pa

    from ingest.store import _fts_config

    table = store._scan(["id", "path", "text"])
    titles: dict[str, str] = {}
    for path in set(table.column("path").to_pylist()):
        titles[path] = Path(path).read_text(encoding="utf-8").split("\n", 1)[0]
    texts = [
        t if t.startswith(titles[p]) else titles[p] + "\n\n" + t
        for p, t in zip(table.column("path").to_pylist(), table.column("text").to_pylist(), strict=True)
    ]
    db = lancedb.connect(str(workspace / "titled"))
    side = db.create_table(
        "chunks",
        pa.table({"id": table.column("id"), "path": table.column("path"), "text": pa.array(texts)}),
        mode="overwrite",
    )
    side.create_index("text", config=_fts_config(), replace=True)

    def search(text: str, depth: int) -> Hits:
        rows = side.search(normalize_text(text), query_type="fts", fts_columns="text").limit(depth).to_list()
        return [(Path(r["path"]).stem, r["id"], float(r["_score"])) for r in rows]

    return search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/scifact"))
    parser.add_argument("--choose", default="train")
    parser.add_argument("--report", default="test")
    parser.add_argument("--depth", type=int, default=200)
    parser.add_argument("--cache", help="pickle the candidate lists here and reuse them on later runs")
    parser.add_argument("--no-report", action="store_true", help="score the --choose split only")
    args = parser.parse_args()
    rag.tune_cpu()
    workspace = Path(args.workspace)
    cache = Path(args.cache) if args.cache else None
    if cache and cache.is_file():
        splits = pickle.loads(cache.read_bytes())
    else:
        store = Store.open(workspace / "index")
        embedder = rag.MLXEmbedder(store.meta["embedder"]["id"])
        titled = titled_text_search(store, workspace)
        splits = {}
        for split in (args.choose, args.report):
            data = beir.load_beir(Path(args.data), split)
            qrels = {q: {beir._safe(d): g for d, g in data.qrels[q].items()} for q in data.queries}
            runs = {}
            for q, text in data.queries.items():
                vec, txt = candidates(store, embedder, text, args.depth)
                runs[q] = (vec, txt, titled(text, args.depth))
            splits[split] = (runs, qrels)
            print(f"{split}: {len(runs)} queries fetched", file=sys.stderr)
        if cache:
            cache.write_bytes(pickle.dumps(splits))

    def on(field: str, rule: Callable[[Hits, Hits], list[str]]) -> Callable:
        """The rule over (vector, text) or (vector, title + text) candidate lists."""
        return (lambda v, t, tt: rule(v, t)) if field == "text" else (lambda v, t, tt: rule(v, tt))

    grid = list(itertools.product((10, 30, 60, 100), (0.5, 0.75, 1.0, 1.5, 2.0), (50, 200)))
    families: dict[str, list[tuple[str, Callable]]] = {}
    for field in ("text", "title+text"):
        families[f"rrf over chunks, BM25 on {field}"] = [
            (
                f"rrf-chunks k={k} w_txt={w} cut={c} [{field}]",
                on(field, lambda v, t, k=k, w=w, c=c: rrf_chunks(v, t, k, 1.0, w, c)),
            )
            for k, w, c in grid
        ]
        families[f"rrf over documents, BM25 on {field}"] = [
            (
                f"rrf-docs k={k} w_txt={w} cut={c} [{field}]",
                on(field, lambda v, t, k=k, w=w, c=c: rrf_documents(v, t, k, 1.0, w, c)),
            )
            for k, w, c in grid
        ]
        for how in ("minmax", "tmm", "z"):
            families[f"convex {how} over chunks, BM25 on {field}"] = [
                (
                    f"convex-{how}-chunks alpha={a} cut={c} [{field}]",
                    on(field, lambda v, t, a=a, c=c, how=how: convex_chunks(v, t, a, c, how)),
                )
                for a, c in itertools.product((0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8), (50, 200))
            ]
            families[f"convex {how} over documents, BM25 on {field}"] = [
                (
                    f"convex-{how}-docs alpha={a} cut={c} second={b} [{field}]",
                    on(field, lambda v, t, a=a, c=c, b=b, how=how: convex_documents(v, t, a, c, how, b)),
                )
                for a, c, b in itertools.product((0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8), (50, 200), (0.0, 0.25, 0.5))
            ]
    # What `rag eval retrieval` measured as hybrid before: RRF k=60 over the top 200 of each list (it asks
    # for k=200); and what ships now, over 200 (as `rag eval retrieval` runs it) and 50 (as `rag ask` does).
    baseline_name = "rrf-chunks k=60 cut=200 (shipped before)"
    baseline = on("text", lambda v, t: rrf_chunks(v, t, 60, 1.0, 1.0, 200))
    shipped = {
        f"ships: convex-z-chunks alpha={HYBRID_ALPHA} cut={c}": on("text", lambda v, t, c=c: ships(v, t, c))
        for c in (200, 50)
    }
    runs, qrels = splits[args.choose]
    base_choose = mean(score(baseline, runs, qrels))
    print(f"\n{args.choose} split ({len(runs)} queries), nDCG@10; baseline {baseline_name}: {base_choose:.4f}")
    print(
        f"  text only {mean(score(lambda v, t, tt: single(t), runs, qrels)):.4f}, "
        f"title+text only {mean(score(lambda v, t, tt: single(tt), runs, qrels)):.4f}, "
        f"vector only {mean(score(lambda v, t, tt: single(v), runs, qrels)):.4f}"
    )
    best: dict[str, tuple[str, Callable, float]] = {}
    for family, rules in families.items():
        results = sorted(((mean(score(rule, runs, qrels)), name, rule) for name, rule in rules), key=lambda r: -r[0])
        print(f" {family}:")
        for value, name, _ in results[:3]:
            print(f"  {name:<56}{value:.4f}")
        best[family] = (results[0][1], results[0][2], results[0][0])
    print(" what ships:")
    for name, rule in shipped.items():
        print(f"  {name:<56}{mean(score(rule, runs, qrels)):.4f}")
    if args.no_report:
        return
    runs, qrels = splits[args.report]
    print(f"\n{args.report} split ({len(runs)} queries), once, nDCG@10 with 95% bootstrap intervals")
    base = score(baseline, runs, qrels)
    lo, hi = bootstrap_ci(list(base.values()))
    print(f"  {baseline_name:<56}{mean(base):.4f} [{lo:.4f}, {hi:.4f}]")
    for name, rule in [(n, r) for n, r, _ in best.values()] + list(shipped.items()):
        got = score(rule, runs, qrels)
        lo, hi = bootstrap_ci(list(got.values()))
        diff, dlo, dhi = paired_difference(base, got)
        print(f"  {name:<56}{mean(got):.4f} [{lo:.4f}, {hi:.4f}]   vs baseline {diff:+.4f} [{dlo:+.4f}, {dhi:+.4f}]")
    for label, pick in (("vector only", 0), ("text only", 1), ("title+text only", 2)):
        print(f"  {label:<56}{mean(score(lambda *lists, i=pick: single(lists[i]), runs, qrels)):.4f}")


if __name__ == "__main__":
    main()

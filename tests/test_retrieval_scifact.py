"""Retrieval sanity on real data: a slice of BEIR SciFact indexed through the real pipeline."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from conftest import data_path

import rag

QUERIES = 30
CORPUS = 120


def _scifact_slice(folder: Path) -> dict[str, set[str]]:
    """Write the judged docs of the first QUERIES test queries plus distractors as .txt files."""
    root = data_path("scifact")
    with (root / "qrels" / "test.tsv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if int(r["score"].strip()) > 0]
    qrels: dict[str, set[str]] = {}
    for r in rows:
        if r["query-id"] in qrels or len(qrels) < QUERIES:
            qrels.setdefault(r["query-id"], set()).add(r["corpus-id"].strip())
    wanted = set().union(*qrels.values())
    with (root / "corpus.jsonl").open() as f:
        for line in f:
            doc = json.loads(line)
            if doc["_id"] in wanted or len(wanted) < CORPUS:
                wanted.add(doc["_id"])
                (folder / f"{doc['_id']}.txt").write_text(f"{doc['title']}\n\n{doc['text']}")
    return qrels


def test_judged_relevant_abstract_is_in_top_10_for_most_queries(tmp_path, embedder):
    folder = tmp_path / "scifact"
    folder.mkdir()
    qrels = _scifact_slice(folder)
    queries = {}
    with (data_path("scifact") / "queries.jsonl").open() as f:
        for line in f:
            q = json.loads(line)
            if q["_id"] in qrels:
                queries[q["_id"]] = q["text"]
    index = rag.open_index(tmp_path / "idx", embed_model=embedder)
    report = index.add(folder)
    assert report.failed == [] and len(report.added) >= CORPUS

    found = 0
    for qid, text in queries.items():
        top = {Path(h.path).stem for h in index.search(text, k=10)}
        found += bool(top & qrels[qid])
    assert len(queries) == QUERIES
    assert found / len(queries) >= 0.8, f"only {found}/{len(queries)} queries found a judged doc in the top 10"

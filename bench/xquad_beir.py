"""Write XQuAD (SQuAD format) as a BEIR folder, for `rag eval retrieval`: paragraph retrieval.

    python bench/xquad_beir.py OUT [--data ../shared/data/xquad-en/xquad.en.json]
    rag eval retrieval OUT --embed-model ~/.cache/rag-test-models/all-MiniLM-L6-v2 --modes text,vector,hybrid

Each paragraph becomes a document (title: its article's), each question a query whose one relevant
document is its paragraph (qrels/test.tsv). A second collection to check retrieval rules chosen on
SciFact against, never used to choose them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    default = Path(__file__).resolve().parents[2] / "shared/data/xquad-en/xquad.en.json"
    parser.add_argument("--data", type=Path, default=default)
    args = parser.parse_args()
    data = json.loads(args.data.read_text(encoding="utf-8-sig"))
    (args.out / "qrels").mkdir(parents=True, exist_ok=True)
    corpus, queries, qrels = [], [], ["query-id\tcorpus-id\tscore"]
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            pid = f"p{len(corpus) + 1:04d}"
            corpus.append(json.dumps({"_id": pid, "title": article["title"], "text": paragraph["context"]}))
            for qa in paragraph["qas"]:
                queries.append(json.dumps({"_id": qa["id"], "text": qa["question"]}))
                qrels.append(f"{qa['id']}\t{pid}\t1")
    (args.out / "corpus.jsonl").write_text("\n".join(corpus) + "\n", encoding="utf-8")
    (args.out / "queries.jsonl").write_text("\n".join(queries) + "\n", encoding="utf-8")
    (args.out / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n", encoding="utf-8")
    print(f"{len(corpus)} documents, {len(queries)} queries -> {args.out}")


if __name__ == "__main__":
    main()

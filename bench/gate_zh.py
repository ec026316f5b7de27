"""Measure the refusal gate (rag/refusal.py) on Chinese questions over Chinese pages (tldr-pages zh).

Each page's first `--per-page` example descriptions ("- 列出存档的内容：") become questions ("如何列出存档的
内容？"). For each question the gate judges what `Index.context` would give the model, once with the full
index and once with the question's own page dropped (unanswerable: should be refused). Prints how many
are refused when retrieval found the page (should pass), when it missed it, and with the page dropped.

    python bench/gate_zh.py ../shared/data/tldr/zh/common --embed-model ~/.cache/rag-test-models/all-MiniLM-L6-v2
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag import Index  # noqa: E402
from rag.context import assemble  # noqa: E402

_EXAMPLE = re.compile(r"^- (.+?)[：:]\s*$", re.M)


def questions(page: Path, per_page: int) -> list[str]:
    return [f"如何{d.strip()}？" for d in _EXAMPLE.findall(page.read_text())[:per_page]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--embed-model", required=True)
    ap.add_argument("--pages", type=int, default=150)
    ap.add_argument("--per-page", type=int, default=2)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--workspace", type=Path, default=Path("/tmp/gate-zh"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    corpus = args.workspace / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    pages = sorted(args.folder.glob("*.md"))[: args.pages]
    for page in pages:
        if not (corpus / page.name).is_file():
            shutil.copy(page, corpus / page.name)
    index = Index(args.workspace / "index", embed_model=args.embed_model)
    index.add(corpus)
    gate = index.gate
    counts = {"gold retrieved": [0, 0], "gold not retrieved": [0, 0], "gold dropped": [0, 0]}  # [refused, of]
    for page in pages:
        gold = str((corpus / page.name).resolve())
        for question in questions(page, args.per_page):
            ranked = index.search(question, args.k * 3)
            sources = assemble(ranked, args.k)
            found = "gold retrieved" if any(s.path == gold for s in sources) else "gold not retrieved"
            for case, judged in (
                (found, sources),
                ("gold dropped", assemble([s for s in ranked if s.path != gold], args.k)),
            ):
                counts[case][0] += gate.refuses(question, judged)[0]
                counts[case][1] += 1
    if args.json:
        print(
            json.dumps(
                {"gate": gate.name, "pages": len(pages)} | {k: {"refused": r, "of": n} for k, (r, n) in counts.items()}
            )
        )
        return
    print(f"{counts['gold dropped'][1]} questions over {len(pages)} pages, gate {gate.name}; refused:")
    for case, (refused, of) in counts.items():
        print(f"  {case:<19} {refused:>4}/{of:<4} {refused / max(of, 1):6.1%}")


if __name__ == "__main__":
    main()

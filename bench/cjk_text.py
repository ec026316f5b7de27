"""Chinese full text: finding a page from its description, and from a 4-character piece of it.

    python bench/cjk_text.py [--data ../shared/data/tldr/zh] [--workspace DIR] [--pages N]

Indexes the tldr-pages in Chinese (all platforms, or the first N in file order) with MiniLM through
`rag.open_index(...).add`, then asks, in text mode, for each page whose description (its first "> "
line) is unique among the pages:
  description   the description itself, trailing 。 dropped
  piece         4 characters cut from the middle of the description's longest run of CJK characters
                (runs of 6 or more only, so the piece is inside a phrase, not the whole of it)
  question      "如何" + the page's first example description + "？" ("如何列出存档的内容？"), a question
                that is not a substring of the page (as bench/gate_zh.py asks)
A query finds its page if the page is first (top 1) or among the first three (top 3); pieces are also
counted apart by how many pages hold them verbatim. Each query is
searched two ways on the same index, side by side:
  words         BM25 over ICU word segmentation alone (what shipped before the pair index)
  words+pairs   what `Store.search_text` does now: for a CJK query, that list fused by reciprocal rank
                with BM25 over the chunks' CJK character pairs
and, for reference, hybrid (vector + full text) as `rag.retrieve` runs it now: with MiniLM, whose
vectors don't read Chinese, hybrid is worse than text alone; the multilingual default embedder is not
available on these machines.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rag
from ingest.normalize import normalize_text
from ingest.store import Store
from rag.retrieve import retrieve

HAN_RUN = re.compile(r"[\u4e00-\u9fff]{6,}")
EXAMPLE = re.compile(r"^- (.+?)[：:]\s*$", re.M)


def description(page: Path) -> str:
    lines = [ln[2:].strip() for ln in page.read_text(encoding="utf-8").splitlines() if ln.startswith("> ")]
    lines = [ln for ln in lines if "更多信息" not in ln]
    return lines[0].rstrip("。") if lines else ""


def piece(text: str) -> str | None:
    runs = HAN_RUN.findall(text)
    if not runs:
        return None
    run = max(runs, key=len)
    mid = len(run) // 2
    return run[mid - 2 : mid + 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/tldr/zh"))
    parser.add_argument("--workspace", help="keep the copied pages and the index here (reused when present)")
    parser.add_argument("--pages", type=int, default=0, help="the first N pages only (0: all)")
    parser.add_argument("--embed-model", default=None, help="default: MiniLM from the test models")
    args = parser.parse_args()
    rag.tune_cpu()
    pages = sorted(Path(args.data).rglob("*.md"))
    if args.pages:
        pages = pages[: args.pages]
    workspace = Path(args.workspace or tempfile.mkdtemp(prefix="cjk-bench-"))
    folder = workspace / "pages"
    copies = {}
    for page in pages:
        copy = folder / page.relative_to(args.data)
        copy.parent.mkdir(parents=True, exist_ok=True)
        if not copy.exists():
            shutil.copy(page, copy)
        copies[page] = str(copy.resolve())
    model = args.embed_model or str(Path.home() / ".cache/rag-test-models/all-MiniLM-L6-v2")
    index = rag.open_index(workspace / "index", embed_model=model)
    index.add(folder)
    store = Store.open(workspace / "index")
    embedder = rag.MLXEmbedder(model)

    descriptions = {p: description(p) for p in pages}
    count: dict[str, int] = {}
    for d in descriptions.values():
        count[d] = count.get(d, 0) + 1
    queries: dict[str, list[tuple[str, str]]] = {"description": [], "piece": [], "question": []}
    for page, d in descriptions.items():
        if len(d) < 4 or count[d] > 1:
            continue
        queries["description"].append((d, copies[page]))
        cut = piece(d)
        if cut:
            queries["piece"].append((cut, copies[page]))
    asked: dict[str, list[str]] = {}
    for page in pages:
        examples = EXAMPLE.findall(page.read_text(encoding="utf-8"))
        if examples:
            asked.setdefault(f"如何{examples[0].strip()}？", []).append(copies[page])
    queries["question"] = [(q, where[0]) for q, where in asked.items() if len(where) == 1]
    # A piece that several pages hold verbatim can't single out its own page: the same rows again for
    # the pieces one page holds, and three pages at most.
    texts = [normalize_text(page.read_text(encoding="utf-8")) for page in pages]
    holders = {q: sum(q in t for t in texts) for q, _ in queries["piece"]}
    queries["piece, 1 page holds it"] = [(q, w) for q, w in queries["piece"] if holders[q] == 1]
    queries["piece, held by <=3"] = [(q, w) for q, w in queries["piece"] if holders[q] <= 3]

    def words(q: str) -> list[str]:
        return [r.path for r, _ in store.search_text(normalize_text(q), 10, pairs=False)]

    def words_pairs(q: str) -> list[str]:
        return [r.path for r, _ in store.search_text(normalize_text(q), 10)]

    def hybrid(q: str) -> list[str]:
        return [s.path for s in retrieve(store, embedder, q, 10, mode="hybrid")]

    print(f"{len(pages)} pages indexed ({store.count_chunks()} chunks), text mode unless named")
    print(f"{'query':<24}{'n':>6}  {'search':<14}{'top 1':>8}{'top 3':>8}")
    for kind, items in queries.items():
        for name, search in (("words", words), ("words+pairs", words_pairs), ("hybrid", hybrid)):
            top1 = top3 = 0
            for q, want in items:
                got = search(q)
                top1 += bool(got) and got[0] == want
                top3 += want in got[:3]
            n = len(items)
            print(f"{kind:<24}{n:>6}  {name:<14}{top1 / n:>8.1%}{top3 / n:>8.1%}")


if __name__ == "__main__":
    main()

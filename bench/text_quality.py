"""How searchable is the text we index from real PDFs? Counts, over every chunk of every readable PDF
under a folder (default ../shared/data/pdfs), the chunks that still carry characters search can't match:
ligatures (U+FB00-FB06), private-use, control, lone-surrogate characters, line-end hyphenation, and
run-together words (a "word" of 25+ Latin letters: an extraction that lost its spaces).

    python bench/text_quality.py [FOLDER] [--embed-model PATH] [--per-file]

It loads and chunks with the project's own loaders and chunker (the embedder's tokenizer sizes the
chunks; nothing is embedded), so it runs the same on an older checkout for a before/after comparison.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import rag
from ingest.chunking import chunk_blocks
from ingest.embed import MLXEmbedder
from ingest.errors import RagError
from ingest.loaders import load

rag.tune_cpu(os.environ.get("RAG_BLAS", "auto"))  # before mlx loads, as the CLI does

KINDS = {
    "ligature": lambda t: any(0xFB00 <= ord(c) <= 0xFB06 for c in t),
    "private-use": lambda t: any(0xE000 <= ord(c) <= 0xF8FF or ord(c) >= 0xF0000 for c in t),
    "control": lambda t: any(ord(c) < 0x20 and c not in "\n\t" or 0x7F <= ord(c) < 0xA0 for c in t),
    "surrogate": lambda t: any(0xD800 <= ord(c) <= 0xDFFF for c in t),
    "line-end hyphen": lambda t: re.search(r"[a-z]-\s*\n\s*[a-z]", t) is not None,
    "run-together": lambda t: re.search(r"[A-Za-z]{25,}", t) is not None,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared/data/pdfs"))
    parser.add_argument("--embed-model", default=str(Path.home() / ".cache/rag-test-models/all-MiniLM-L6-v2"))
    parser.add_argument("--per-file", action="store_true", help="list the files whose chunks are affected")
    args = parser.parse_args()
    embedder = MLXEmbedder(args.embed_model)
    files = sorted(Path(args.folder).rglob("*.pdf"))
    chunks, read, affected = 0, 0, {k: 0 for k in KINDS}
    files_with = {k: [] for k in KINDS}
    for path in files:
        try:
            blocks = load(path, password="foo")
            texts = [c.text for c in chunk_blocks(blocks, embedder.token_spans)]
        except RagError:
            continue
        except Exception as exc:  # noqa: BLE001 - an older checkout crashes on some files: count it
            print(f"  crashed: {path.name}: {type(exc).__name__}: {exc}"[:160], file=sys.stderr)
            continue
        read += 1
        chunks += len(texts)
        for kind, test in KINDS.items():
            n = sum(map(test, texts))
            affected[kind] += n
            if n:
                files_with[kind].append(f"{path.name} ({n})")
    print(f"{read} readable PDFs of {len(files)}, {chunks} chunks")
    print(f"{'kind':<18}{'chunks':>8}{'share':>9}  files")
    for kind in KINDS:
        share = affected[kind] / chunks if chunks else 0.0
        print(f"{kind:<18}{affected[kind]:>8}{share:>8.1%}  {len(files_with[kind])}")
        if args.per_file and files_with[kind]:
            print("    " + ", ".join(files_with[kind]))


if __name__ == "__main__":
    main()

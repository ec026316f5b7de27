"""Plugging your own models into rag: a custom Embedder and Generator behind an Index.

    python examples/custom_models.py examples/docs "Where is the spare key hidden?"

rag indexes, searches and checks citations; the models are yours. Subclass `rag.Embedder` (texts ->
vectors) and `rag.Generator` (chat messages -> streamed reply) and pass instances to `rag.open_index`.
Here both are tiny pure-Python stand-ins, so this runs anywhere, offline, with no model files: the
embedder hashes words into a vector, and the "chat model" answers with the source sentence that shares
most words with the question. In your app they would call your own model (an HTTP API, llama.cpp,
sentence-transformers...). An object that doesn't subclass them is refused by `open_index` with a
message naming what it lacks.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import tempfile

import numpy as np

import rag  # import rag before anything else that imports mlx: it loads the fast BLAS on Linux

WORD = re.compile(r"\w+")


class HashedWords(rag.Embedder):
    """Bag of words, each word hashed to one of `dim` signed buckets ("feature hashing")."""

    # Required attributes: a name, a fingerprint the index records (change it when the vectors change:
    # an index refuses vectors of another fingerprint), the vector size, the longest text embedded whole.
    id = "hashed-words"
    fingerprint = "hashed-words-v1-256"
    dim = 256
    max_tokens = 256
    # Optional, default "": a prefix for search queries, for models trained with one.
    query_prefix = ""

    def embed(self, texts):
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in WORD.findall(text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()  # stable across runs
                bucket = int.from_bytes(digest[:4], "little") % self.dim
                vectors[row, bucket] += 1.0 if digest[4] & 1 else -1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)  # rows L2-normalised: search scores are cosines

    def token_spans(self, text):
        # One "token" per word or punctuation mark; chunks are sized in these (at most max_tokens).
        return [m.span() for m in re.finditer(r"\w+|[^\w\s]", text)]


class BestSentence(rag.Generator):
    """A stand-in chat model: replies with the source sentence sharing most words with the question,
    citing its source as [n]. It reads the prompt rag builds: numbered sources in <source> tags, then
    the question."""

    # Optional, default None: how many tokens the model takes (prompt + reply), to fit the sources in.
    context_window = 4096

    def stream(self, messages, *, max_tokens=512, thinking=False):
        prompt = messages[-1]["content"]
        question = set(WORD.findall(prompt.rsplit("Question:", 1)[-1].lower()))
        best, best_overlap = "I couldn't find that in your documents.", 0
        for n, text in re.findall(r"\[(\d+)\] [^\n]*\n<source>\n(.*?)\n</source>", prompt, re.S):
            paragraphs = [" ".join(p.split()) for p in text.split("\n\n") if not p.startswith("#")]  # no headings
            for sentence in (s for p in paragraphs for s in re.split(r"(?<=[.!?])\s+", p)):
                overlap = len(question & set(WORD.findall(sentence.lower())))
                if overlap > best_overlap:
                    best, best_overlap = f"{sentence.rstrip('.')} [{n}].", overlap
        for word in re.findall(r"\S+\s*", best):  # streamed a word at a time, like a real model
            yield rag.Piece(text=word)

    def count_tokens(self, text):
        # Optional, default len(text) // 3 + 1: the model's own count fills the context exactly.
        return len(WORD.findall(text)) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("question")
    parser.add_argument("--index", default=None, help="index folder (default: a temporary one)")
    args = parser.parse_args()

    index_dir = args.index or tempfile.mkdtemp(prefix="rag-custom-")
    index = rag.open_index(index_dir, embed_model=HashedWords(), llm=BestSentence(), reranker=False)
    report = index.add(args.folder)
    print(f"indexed {len(report.added)} new files ({report.chunks} chunks), {len(report.failed)} failed")

    answer = index.ask(args.question, k=3)
    print(answer.text)
    for n, source in enumerate(answer.sources, 1):
        cited = "cited" if source in answer.cited_sources else ""
        print(f"[{n}] {source.location} {cited}".rstrip())


if __name__ == "__main__":
    main()

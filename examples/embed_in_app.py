"""Embedding rag in another Python app: index a folder, then stream an answer with its sources.

    python examples/embed_in_app.py ~/Documents "Where is the spare key?" \
        --embed-model mlx-community/Qwen3-Embedding-0.6B-8bit --llm mlx-community/Qwen3-4B-4bit

Models default to the library defaults (Qwen3 from the model hub); pass local folders to run offline.
"""

from __future__ import annotations

import argparse
import tempfile

import rag

# This script owns its process, so it may tune it for MLX on the CPU (on Linux: an optimized BLAS, ~15x
# faster float32). Call it before anything imports mlx; a library embedding rag would leave it to its app.
rag.tune_cpu()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("question")
    parser.add_argument("--index", default=None, help="index folder (default: a temporary one)")
    parser.add_argument("--embed-model", default=None)
    parser.add_argument("--llm", default=None)
    args = parser.parse_args()

    index_dir = args.index or tempfile.mkdtemp(prefix="rag-example-")
    index = rag.open_index(index_dir, embed_model=args.embed_model, llm=args.llm)
    report = index.add(args.folder)
    print(f"indexed {len(report.added)} new files ({report.chunks} chunks), {len(report.failed)} failed")

    for event in index.stream_answer(args.question, k=3, max_tokens=96):
        if isinstance(event, rag.TokenEvent):
            print(event.text, end="", flush=True)
        elif isinstance(event, rag.DoneEvent):
            print()
            for n, source in enumerate(event.answer.sources, 1):
                print(f"[{n}] {source.location} ({source.score:.2f})")


if __name__ == "__main__":
    main()

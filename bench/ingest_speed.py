"""Ingest throughput with a per-stage breakdown, and the same chunks embedded by sentence-transformers.

    python bench/ingest_speed.py [--data ../shared/data/tldr/en] [--limit 1000] [--peer-chunks 300] [--repeat 3] [--json]
    python bench/ingest_speed.py --data ../shared/data/scifact --limit 1000      # BEIR folder or corpus.jsonl

1. The real pipeline (`ingest.pipeline.index_paths`) indexes the files into a fresh LanceDB index in a
   temp folder. The stages are timed from outside by wrapping the functions the pipeline calls (load,
   hash, chunk_blocks, the embedder's tokenizer and forward pass, the Store writes and the full-text
   index), so the pipeline's own code runs unmodified. Prints files/s, chunks/s, embedded tokens/s and
   the process's peak RSS (before torch is imported).
2. A seeded sample of those chunk texts (`--peer-chunks`; all of them with 0) is embedded alternately by
   our embedder and by sentence-transformers on PyTorch CPU with the same MiniLM weights, in a child
   process so neither library's BLAS or threads leak into the other; `--threads` (default 2) is given
   to torch. Medians of `--repeat` runs, the ratio ours/peer, and the cosine of the two embeddings of
   each chunk (~1.0: same model).
A BEIR folder (scifact) is written to a temp folder as one `<id>.txt` per document (title, blank line,
text), like `rag eval`, and then indexed as files. BLAS preload on vs off: see bench/blas.py.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import rag
from ingest import embed as embed_module
from ingest import pipeline
from ingest.chunking import ChunkConfig
from ingest.discover import discover
from ingest.embed import MLXEmbedder
from ingest.store import Store

rag.tune_cpu(os.environ.get("RAG_BLAS", "auto"))  # before mlx loads, as the CLI does

DEFAULT_DATA = "/work/shared/data/tldr/en"
DEFAULT_MODEL = "~/.cache/rag-test-models/all-MiniLM-L6-v2"


class _Timer:
    """Accumulates wall time per stage name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, stage: str, fn):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started

        return timed


class _TimedTokenizer:
    """Stands in for the embedder's tokenizer: times `encode_batch` and counts the tokens."""

    def __init__(self, inner, timer: _Timer) -> None:
        self._inner, self.tokens = inner, 0
        self.encode_batch = timer.wrap("tokenize", self._encode_batch)

    def _encode_batch(self, texts):
        out = self._inner.encode_batch(texts)
        self.tokens += sum(len(e.ids) for e in out)
        return out

    def __getattr__(self, name):
        return getattr(self._inner, name)


def corpus_files(data: Path, workdir: Path) -> list[Path]:
    """The files to index: a folder as is; a BEIR folder / corpus.jsonl written out as <id>.txt files."""
    corpus = data / "corpus.jsonl" if data.is_dir() else data
    if corpus.suffix != ".jsonl" or not corpus.is_file():
        return sorted(discover([data]))
    out = workdir / "corpus"
    out.mkdir()
    files = []
    with corpus.open() as f:
        for line in f:
            doc = json.loads(line)
            path = out / f"{doc['_id'].replace('/', '_')}.txt"
            path.write_text(f"{doc.get('title', '')}\n\n{doc['text']}".strip() + "\n")
            files.append(path)
    return files


def run_pipeline(files: list[Path], embedder: MLXEmbedder, workdir: Path) -> tuple[dict, list[str]]:
    """Index `files` with the real pipeline, timing each stage. Returns (result, embedded chunk texts)."""
    timer = _Timer()
    texts: list[str] = []
    embed = embedder.embed

    def embed_and_keep(batch):
        texts.extend(batch)
        return embed(batch)

    embedder._load()  # weights outside the timed region
    embedder.embed(["warm-up"])
    tokenizer = embedder._embed_tok = _TimedTokenizer(embedder._embed_tok, timer)
    embedder.embed = timer.wrap("embed", embed_and_keep)
    meta = {"id": embedder.id, "fingerprint": embedder.fingerprint, "max_tokens": embedder.max_tokens}
    store = Store.open_or_create(workdir / "index", meta | {"dim": embedder.dim}, {})
    patches = {
        (pipeline, "load"): "load",
        (pipeline, "_hash_file"): "hash",
        (pipeline, "chunk_blocks"): "chunk",
        (store, "replace_documents"): "write",
        (store, "cached_vectors"): "write",
        (store, "sync_text_index"): "write",
    }
    originals = {key: getattr(*key) for key in patches}
    for (owner, name), stage in patches.items():
        setattr(owner, name, timer.wrap(stage, originals[(owner, name)]))
    try:
        started = time.perf_counter()
        report = pipeline.index_paths(files, store, embedder, ChunkConfig())
        total = time.perf_counter() - started
    finally:
        for (owner, name), fn in originals.items():
            setattr(owner, name, fn)
        del embedder.embed
        embedder._embed_tok = tokenizer._inner
    stages = dict(timer.seconds)
    stages["embed"] = stages.get("embed", 0.0) - stages.get("tokenize", 0.0)  # embed() includes tokenizing
    stages["chunk"] = stages.get("chunk", 0.0)  # includes the chunker's own token_spans calls
    stages["other"] = total - sum(stages.values())
    files_ok = len(report.added) + len(report.updated)
    return {
        "files": len(files),
        "files_indexed": files_ok,
        "failed": len(report.failed),
        "skipped": len(report.skipped),
        "chunks": report.chunks,
        "embedded_tokens": tokenizer.tokens,
        "seconds": total,
        "files_per_s": files_ok / total,
        "chunks_per_s": report.chunks / total,
        "embedded_tokens_per_s": tokenizer.tokens / total,
        "peak_rss_mb": _peak_rss_mb(),
        "stages_s": {
            k: stages[k] for k in ("load", "hash", "chunk", "tokenize", "embed", "write", "other") if k in stages
        },
    }, texts


def compare_with_peer(texts: list[str], embedder: MLXEmbedder, args: argparse.Namespace, workdir: Path) -> dict:
    """Embed `texts` alternately with ours and with sentence-transformers (child process); medians."""
    src = workdir / "peer_texts.json"
    src.write_text(json.dumps(texts))
    cmd = [sys.executable, __file__, "--peer-child", str(src), "--embed-model", args.embed_model]
    cmd += ["--threads", str(args.threads), "--peer-batch", str(args.peer_batch), "--repeat", str(args.repeat)]
    child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdin and child.stdout
    info = json.loads(child.stdout.readline())  # the child has loaded its model and warmed up
    ours, peer = [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        mine = embedder.embed(texts)
        ours.append(time.perf_counter() - started)
        child.stdin.write("go\n")
        child.stdin.flush()
        peer.append(json.loads(child.stdout.readline())["seconds"])
    child.stdin.close()
    child.wait()
    theirs = np.load(workdir / "peer_texts.npy")
    cos = (mine * theirs).sum(1) / np.linalg.norm(theirs, axis=1) / np.linalg.norm(mine, axis=1)
    ours_rate = len(texts) / statistics.median(ours)
    peer_rate = len(texts) / statistics.median(peer)
    return {
        "chunks": len(texts),
        "repeat": args.repeat,
        "ours_chunks_per_s": ours_rate,
        "peer_chunks_per_s": peer_rate,
        "ratio_ours_peer": ours_rate / peer_rate,
        "ours_runs_s": ours,
        "peer_runs_s": peer,
        "cosine_min": float(cos.min()),
        "cosine_mean": float(cos.mean()),
        "peer": info,
    }


def peer_child(args: argparse.Namespace) -> None:
    """sentence-transformers side: load, warm up, then time one encode per "go" line on stdin."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    texts = json.loads(Path(args.peer_child).read_text())
    model = SentenceTransformer(os.path.expanduser(args.embed_model), device="cpu")
    model.encode(texts[:8], batch_size=args.peer_batch)
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(), "batch_size": args.peer_batch}
    info["max_seq_length"] = model.max_seq_length
    print(json.dumps(info), flush=True)
    vectors = None
    for _ in sys.stdin:
        started = time.perf_counter()
        vectors = model.encode(texts, batch_size=args.peer_batch, normalize_embeddings=True, convert_to_numpy=True)
        print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)
    np.save(Path(args.peer_child).with_suffix(".npy"), vectors)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=DEFAULT_DATA, help="folder of files, or a BEIR folder / corpus.jsonl")
    p.add_argument("--limit", type=int, default=0, help="index a seeded sample of N files (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--embed-model", default=DEFAULT_MODEL)
    p.add_argument("--peer-chunks", type=int, default=300, help="seeded sample of chunks for the comparison (0: all)")
    p.add_argument("--peer-batch", type=int, default=32, help="sentence-transformers batch_size")
    p.add_argument("--threads", type=int, default=2, help="torch threads (MLX uses one CPU stream per core)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-peer", action="store_true", help="skip the sentence-transformers comparison")
    p.add_argument("--stock-kernels", action="store_true", help="keep the model's own softmax/GELU (for before/after)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--peer-child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.peer_child:
        peer_child(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        files = corpus_files(Path(args.data).expanduser(), workdir)
        if args.limit and args.limit < len(files):
            files = sorted(random.Random(args.seed).sample(files, args.limit))
        if args.stock_kernels:
            embed_module._fast_cpu_bert = lambda model: False
        embedder = MLXEmbedder(os.path.expanduser(args.embed_model))
        ingest, texts = run_pipeline(files, embedder, workdir)
        result = {
            "data": args.data,
            "limit": args.limit,
            "blas": rag.cpu_status(),
            "mlx_streams": len(embedder._streams()),
            "fast_cpu_kernels": embedder.fast_cpu_kernels,
            "ingest": ingest,
        }
        if not args.no_peer and texts:
            sample = texts
            if args.peer_chunks and args.peer_chunks < len(texts):
                sample = random.Random(args.seed).sample(texts, args.peer_chunks)
            result["embed_vs_peer"] = compare_with_peer(sample, embedder, args, workdir)
            result["ingest"]["pipeline_over_peer_embed"] = (
                ingest["chunks_per_s"] / result["embed_vs_peer"]["peer_chunks_per_s"]
            )
    print(json.dumps(result, indent=2) if args.json else render(result))


def render(r: dict) -> str:
    i = r["ingest"]
    lines = [
        f"data: {r['data']}  (limit {r['limit'] or 'all'})",
        f"BLAS: {r['blas']}",
        f"MLX CPU streams: {r['mlx_streams']}, fused CPU BERT kernels: {r['fast_cpu_kernels']}",
        "",
        f"ingest (real pipeline, fresh index): {i['files_indexed']}/{i['files']} files, {i['chunks']} chunks, "
        f"{i['embedded_tokens']} embedded tokens in {i['seconds']:.1f} s",
        f"  files/s {i['files_per_s']:.2f}   chunks/s {i['chunks_per_s']:.2f}   "
        f"embedded tokens/s {i['embedded_tokens_per_s']:.0f}   peak RSS {i['peak_rss_mb']:.0f} MB",
        "",
        f"  {'stage':<10}{'seconds':>10}{'share':>8}",
    ]
    for stage, s in i["stages_s"].items():
        lines.append(f"  {stage:<10}{s:>10.2f}{s / i['seconds']:>8.1%}")
    if "embed_vs_peer" in r:
        c = r["embed_vs_peer"]
        peer = c["peer"]
        lines += [
            "",
            f"same {c['chunks']} chunks, median of {c['repeat']}: ours (MLX) vs sentence-transformers "
            f"(torch {peer['torch']} CPU, {peer['threads']} threads, batch {peer['batch_size']})",
            f"  ours chunks/s {c['ours_chunks_per_s']:.2f}   peer chunks/s {c['peer_chunks_per_s']:.2f}   "
            f"ratio ours/peer {c['ratio_ours_peer']:.2f}",
            f"  cosine(ours, peer) min {c['cosine_min']:.6f} mean {c['cosine_mean']:.6f}",
            f"  whole-pipeline chunks/s / peer embed-only chunks/s: {i['pipeline_over_peer_embed']:.2f}",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

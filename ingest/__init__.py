"""ingest: files -> chunks -> vectors -> LanceDB. The write side of the index.

Stages, one module each: discover (which files), loaders (file -> text blocks with page/heading; the
format readers live in blocks.py, markup.py and zipped.py), chunking (blocks -> token-sized chunks),
embed (chunks -> vectors, MLX), store (LanceDB rows + provenance, atomic per batch), pipeline (an
incremental run with a per-file report), watch (re-run it as files change).
ingest never imports rag; rag reads what ingest writes.

Importing it changes nothing in the process; CPU tuning for MLX is explicit (`ingest.cpu.tune_cpu`).
"""

from ingest.chunking import ChunkConfig
from ingest.pipeline import IndexReport, Progress, index_paths
from ingest.store import ChunkRow, Store

__all__ = ["ChunkConfig", "ChunkRow", "IndexReport", "Progress", "Store", "index_paths"]

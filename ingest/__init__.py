"""ingest: files -> chunks -> vectors -> LanceDB. The write side of the index.

Stages, one module each: discover (which files), loaders (file -> text blocks with page/heading; the
format readers live in blocks.py, markup.py and zipped.py), chunking (blocks -> token-sized chunks),
embed (chunks -> vectors, MLX), store (LanceDB rows + provenance, atomic per batch), pipeline (an
incremental run with a per-file report), watch (re-run it as files change).
ingest never imports rag; rag reads what ingest writes.

Importing this package first loads an optimized BLAS for MLX on Linux (see ingest/_blas.py) and keeps
MLX's large CPU temporaries in the heap (see ingest/_malloc.py).
"""

from ingest import _blas, _malloc

_blas.preload()
_malloc.tune()

from ingest.chunking import ChunkConfig  # noqa: E402
from ingest.pipeline import IndexReport, Progress, index_paths  # noqa: E402
from ingest.store import ChunkRow, Store  # noqa: E402

__all__ = ["ChunkConfig", "ChunkRow", "IndexReport", "Progress", "Store", "index_paths"]

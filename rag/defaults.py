"""Every default a user or an adapter sees, defined once: the models, how much is retrieved and
generated, the search and OCR modes. The CLI, the servers and the library's signatures all read them from here
(re-exported by `rag`), so a changed default changes everywhere. This module holds values only.
"""

from __future__ import annotations

from ingest.chunking import DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP_TOKENS
from ingest.ocr import DEFAULT_MODE as DEFAULT_OCR
from ingest.ocr import MODES as OCR_MODES
from ingest.pipeline import WRITE_BATCH_CHUNKS as DEFAULT_BATCH_CHUNKS
from ingest.store import DEFAULT_COLLECTION
from ingest.watch import DEFAULT_DEBOUNCE_MS

# Qwen3 first: hybrid-thinking instruct models (thinking off by default, --think to turn it on), 4-bit
# so they fit an 8 GB iPhone/iPad/Mac. 4B answers grounded questions well in English and Chinese; 1.7B
# is the smaller, ~2x faster preset. Qwen3-Embedding-0.6B is multilingual (100+ languages, Chinese
# included), 1024-d; 8-bit keeps its accuracy at half the size. The embedder is the same in both presets
# because it is the index's identity: changing it means re-indexing.
DEFAULT_EMBED_MODEL = "mlx-community/Qwen3-Embedding-0.6B-8bit"
PRESETS = {
    "default": "mlx-community/Qwen3-4B-4bit",
    "small": "mlx-community/Qwen3-1.7B-4bit",
}
DEFAULT_PRESET = "default"
DEFAULT_LLM = PRESETS[DEFAULT_PRESET]
DEFAULT_RERANK_MODEL = "mlx-community/Qwen3-Reranker-0.6B-4bit"

DEFAULT_K = 5  # chunks retrieved per question
MAX_K = 50  # the most a server request may ask for
SEARCH_MODES = ("hybrid", "vector", "text")
DEFAULT_MODE = "hybrid"  # vector + full text, their z-scores combined (rag/retrieve.py)

DEFAULT_MAX_TOKENS = 256  # a grounded answer is a few sentences; 512 let looping replies run for minutes
DEFAULT_CONTEXT_TOKENS = 8192  # prompt budget cap: prefill on a CPU runs at ~50-150 tokens/s

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_PAGE_WIDTH = 1000  # pixels: a page image for the web app's citation panel (Index.page_image)
MAX_PAGE_WIDTH = 2400

__all__ = [
    "DEFAULT_BATCH_CHUNKS",
    "DEFAULT_CHUNK_TOKENS",
    "DEFAULT_COLLECTION",
    "DEFAULT_CONTEXT_TOKENS",
    "DEFAULT_DEBOUNCE_MS",
    "DEFAULT_EMBED_MODEL",
    "DEFAULT_HOST",
    "DEFAULT_K",
    "DEFAULT_LLM",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_MODE",
    "DEFAULT_OCR",
    "DEFAULT_OVERLAP_TOKENS",
    "DEFAULT_PAGE_WIDTH",
    "DEFAULT_PORT",
    "DEFAULT_PRESET",
    "DEFAULT_RERANK_MODEL",
    "MAX_K",
    "MAX_PAGE_WIDTH",
    "OCR_MODES",
    "PRESETS",
    "SEARCH_MODES",
]

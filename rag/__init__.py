"""rag: ask questions of your own documents, answered on-device with citations.

    import rag
    index = rag.open_index("my-index", embed_model="mlx-community/Qwen3-Embedding-0.6B-8bit")
    index.add("~/Documents")
    answer = index.ask("Where is the spare key?")
    print(answer.text, [s.location for s in answer.cited_sources])

The read side of the project: retrieve from the LanceDB index that `ingest` writes, prompt an mlx-lm
chat model with numbered sources, stream the answer. Importing rag changes nothing in your process: on
a Linux CPU, call `rag.tune_cpu()` before anything imports mlx for ~15x faster float32 (an optimized
BLAS with one thread, malloc thresholds; see ingest/cpu.py). The `rag` CLI does.
"""

from ingest.chunking import ChunkConfig
from ingest.cluster import Cluster
from ingest.cpu import CpuTuningWarning, cpu_status, tune_cpu
from ingest.embed import Embedder, MLXEmbedder
from ingest.ocr import Line as OcrLine
from ingest.ocr import RapidOCR, Recognizer
from ingest.ocr import Reader as OcrReader
from ingest.pipeline import IndexReport, Progress
from ingest.state import index_location, is_remote
from rag.chat import Conversation, Turn, standalone_question
from rag.citations import best_snippet
from rag.defaults import *  # noqa: F403 - every default, listed in rag.defaults.__all__
from rag.doctor import SetupCheck, check_setup
from rag.errors import (
    CorruptIndex,
    EmbedderMismatch,
    IndexIncomplete,
    IndexNotFound,
    InvalidOption,
    LoadError,
    ModelLoadError,
    NotInIndex,
    RagError,
    UnsupportedFile,
)
from rag.generate import Generator, MLXGenerator, Piece
from rag.index import Index, open_index
from rag.markers import strip_markers
from rag.pages import PageView, find_span, has_pages
from rag.rerank import MLXReranker, Reranker
from rag.types import (
    Answer,
    DoneEvent,
    Event,
    Evidence,
    IndexStatus,
    Sentence,
    Source,
    SourcesEvent,
    ThinkingEvent,
    Timings,
    TokenEvent,
    collect,
)

__version__ = "0.1.0"

from rag import defaults as _defaults

__all__ = [
    *_defaults.__all__,
    "CpuTuningWarning",
    "cpu_status",
    "tune_cpu",
    "SetupCheck",
    "check_setup",
    "collect",
    "best_snippet",
    "find_span",
    "has_pages",
    "PageView",
    "standalone_question",
    "Answer",
    "ChunkConfig",
    "Conversation",
    "DoneEvent",
    "CorruptIndex",
    "Embedder",
    "EmbedderMismatch",
    "Event",
    "Evidence",
    "Generator",
    "Index",
    "IndexIncomplete",
    "IndexNotFound",
    "InvalidOption",
    "IndexReport",
    "Cluster",
    "index_location",
    "is_remote",
    "IndexStatus",
    "LoadError",
    "MLXEmbedder",
    "MLXGenerator",
    "MLXReranker",
    "ModelLoadError",
    "NotInIndex",
    "OcrLine",
    "OcrReader",
    "Piece",
    "Progress",
    "RagError",
    "RapidOCR",
    "Recognizer",
    "Reranker",
    "Sentence",
    "Source",
    "SourcesEvent",
    "ThinkingEvent",
    "Timings",
    "TokenEvent",
    "Turn",
    "UnsupportedFile",
    "open_index",
    "strip_markers",
]

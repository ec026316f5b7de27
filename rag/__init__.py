"""rag: ask questions of your own documents, answered on-device with citations.

    import rag
    index = rag.open_index("my-index", embed_model="mlx-community/Qwen3-Embedding-0.6B-8bit")
    index.add("~/Documents")
    answer = index.ask("Where is the spare key?")
    print(answer.text, [s.location for s in answer.cited_sources])

The read side of the project: retrieve from the LanceDB index that `ingest` writes, prompt an mlx-lm
chat model with numbered sources, stream the answer. Importing rag loads an optimized BLAS for MLX on
Linux first (see ingest/_blas.py), so import it before anything that imports mlx.
"""

from ingest import _blas

_blas.preload()

from ingest.chunking import ChunkConfig  # noqa: E402
from ingest.embed import Embedder, MLXEmbedder  # noqa: E402
from ingest.pipeline import IndexReport, Progress  # noqa: E402
from rag.chat import Conversation, Turn, standalone_question  # noqa: E402
from rag.defaults import *  # noqa: E402, F403 - every default, listed in rag.defaults.__all__
from rag.doctor import SetupCheck, check_setup  # noqa: E402
from rag.errors import (  # noqa: E402
    CorruptIndex,
    EmbedderMismatch,
    IndexIncomplete,
    IndexNotFound,
    LoadError,
    ModelLoadError,
    NotInIndex,
    RagError,
    UnsupportedFile,
)
from rag.generate import Generator, MLXGenerator, Piece  # noqa: E402
from rag.index import Index, open_index  # noqa: E402
from rag.markers import strip_markers  # noqa: E402
from rag.rerank import MLXReranker, Reranker  # noqa: E402
from rag.types import (  # noqa: E402
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

from rag import defaults as _defaults  # noqa: E402

__all__ = [
    *_defaults.__all__,
    "SetupCheck",
    "check_setup",
    "collect",
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
    "IndexReport",
    "IndexStatus",
    "LoadError",
    "MLXEmbedder",
    "MLXGenerator",
    "MLXReranker",
    "ModelLoadError",
    "NotInIndex",
    "Piece",
    "Progress",
    "RagError",
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

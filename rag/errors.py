"""The error types users of the rag API may catch. Defined in ingest.errors (rag builds on ingest)."""

from ingest.errors import (
    CorruptIndex,
    EmbedderMismatch,
    IndexNotFound,
    LoadError,
    ModelLoadError,
    NotInIndex,
    RagError,
    UnsupportedFile,
)

__all__ = [
    "CorruptIndex",
    "EmbedderMismatch",
    "IndexNotFound",
    "LoadError",
    "ModelLoadError",
    "NotInIndex",
    "RagError",
    "UnsupportedFile",
]

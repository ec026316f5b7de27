"""The error types users of the rag API may catch. Defined in ingest.errors (rag builds on ingest)."""

from ingest.errors import (
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

__all__ = [
    "CorruptIndex",
    "EmbedderMismatch",
    "IndexIncomplete",
    "IndexNotFound",
    "InvalidOption",
    "LoadError",
    "ModelLoadError",
    "NotInIndex",
    "RagError",
    "UnsupportedFile",
]

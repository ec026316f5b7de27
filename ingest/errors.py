"""Typed errors shared by ingest and rag, each with a message that says what to do next.

They live here (not in rag/) because data flows one way, ingest -> LanceDB -> rag: rag re-exports them.
This module defines exceptions only; it does not print or exit (the CLI does that).
"""

from __future__ import annotations


class RagError(Exception):
    """Base class for every error this project raises on purpose."""

    hint: str = ""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint or self.hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UnsupportedFile(RagError, ValueError):
    """A file whose type has no loader, or whose content is not what its name says."""


class LoadError(RagError):
    """A file of a supported type that could not be read (corrupt, encrypted, no text...)."""


class IndexNotFound(RagError, FileNotFoundError):
    """No index exists at the given location."""

    hint = "run `rag index PATH` first, or pass --index / RAG_INDEX to point at an existing index"


class CorruptIndex(RagError):
    """A file of the index (its provenance or failure list) that cannot be read."""


class TextIndexMissing(RagError):
    """The index has chunks but no full-text index (an index run was stopped before building it)."""


class IndexIncomplete(UserWarning):
    """Warned (not raised) when a search runs on an index that lacks one of its search indexes."""


class ModelLoadError(RagError):
    """A model (hub id or local folder) could not be loaded."""


class EmbedderMismatch(RagError):
    """The index was built with a different embedding model than the one requested."""


class NotInIndex(RagError, LookupError):
    """A chunk id, document path or collection that the index does not hold."""


class InvalidOption(RagError, ValueError):
    """An argument that is not one of its choices or out of its range (in HTTP, a 400)."""

    hint = "take ids and paths from search results, or see `rag status` for what is indexed"

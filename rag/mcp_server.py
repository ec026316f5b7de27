"""`rag mcp`: a Model Context Protocol server over stdio, so editors and agents can use the index.

Tools (each a thin wrapper over the public `rag` API):
    search(query, k, collection)                       ranked chunks with their text and location
    get_chunk(chunk_id)                                one chunk by the id search/ask returned
    get_document(path, collection, first_chunk, max_chunks)  a document's chunks in reading order
    ask(question, k, collection)                       the RAG answer with numbered sources
    status()                                           what is indexed, with which embedder

Built on the official `mcp` SDK (MCPServer). Model work runs on one ModelWorker thread, so concurrent
tool calls queue; the models start loading in the background as soon as the server starts. Errors the
user can act on (RagError) reach the client as tool errors with their hint. This module does not read
the environment or parse arguments (rag/cli.py does); stdout belongs to the protocol.
"""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

import rag
from rag.generate import DEFAULT_MAX_TOKENS
from rag.index import DEFAULT_K
from rag.worker import ModelWorker

MAX_K = 50
DEFAULT_DOCUMENT_CHUNKS = 50

INSTRUCTIONS = (
    "Search and question the user's own indexed documents (PDF, Markdown, Word, HTML, …). "
    "Use `search` to find passages, `get_chunk`/`get_document` to read more around a hit, and `ask` for an "
    "answer written from the documents by a local model, with numbered sources. Cite paths and pages."
)

K = Annotated[int, Field(ge=1, le=MAX_K, description="How many chunks to retrieve.")]
Collection = Annotated[str | None, Field(description="Search only this collection (default: all).")]


class Chunk(BaseModel):
    """A stored chunk: where it is, its similarity score (0 when fetched by id) and its text."""

    chunk_id: str
    path: str
    collection: str
    page: int | None
    heading: str
    location: str
    score: float
    text: str

    @classmethod
    def of(cls, s: rag.Source) -> Chunk:
        return cls(
            chunk_id=s.chunk_id,
            path=s.path,
            collection=s.collection,
            page=s.page,
            heading=s.heading,
            location=s.location,
            score=round(s.score, 4),
            text=s.text,
        )


class SearchResult(BaseModel):
    query: str
    results: list[Chunk]


class Document(BaseModel):
    path: str
    total_chunks: int
    chunks: list[Chunk] = Field(description="Consecutive chunks overlap by a sentence or so.")


class AskResult(BaseModel):
    answer: str
    citations: list[int] = Field(description="Source numbers cited as [n] in the answer.")
    sources: list[Chunk] = Field(description="Source n is sources[n-1].")


class Status(BaseModel):
    index: str
    exists: bool
    documents: int
    chunks: int
    embedder: str
    dim: int
    collections: dict[str, dict[str, int]]
    failed_files: int


def create_mcp(index: rag.Index, *, k: int = DEFAULT_K, max_tokens: int = DEFAULT_MAX_TOKENS) -> MCPServer:
    """The MCP server for `index`. `k` and `max_tokens` are the defaults for `search`/`ask`."""
    worker = ModelWorker()
    worker.submit(_warm_up, index)  # in the background: the client's handshake doesn't wait for it
    mcp = MCPServer("rag", instructions=INSTRUCTIONS, version=rag.__version__, log_level="WARNING")

    async def call(fn, *args, **kwargs):
        try:
            return await worker.run(fn, *args, **kwargs)
        except rag.RagError as exc:
            raise ToolError(str(exc)) from exc

    @mcp.tool()
    async def search(query: str, k: K = k, collection: Collection = None) -> SearchResult:
        """Find the passages of the user's documents most relevant to `query`, best first (no LLM)."""
        hits = await call(index.search, query, k, collection)
        return SearchResult(query=query, results=[Chunk.of(h) for h in hits])

    @mcp.tool()
    async def get_chunk(chunk_id: str) -> Chunk:
        """Fetch one chunk by its `chunk_id` (from `search` or `ask` results), with its full text."""
        return Chunk.of(await call(index.get_chunk, chunk_id))

    @mcp.tool()
    async def get_document(
        path: str,
        collection: Collection = None,
        first_chunk: Annotated[int, Field(ge=0, description="Index of the first chunk to return.")] = 0,
        max_chunks: Annotated[int, Field(ge=1, le=500, description="How many chunks to return.")] = (
            DEFAULT_DOCUMENT_CHUNKS
        ),
    ) -> Document:
        """Read an indexed document (its `path` as search results give it) chunk by chunk, in order."""
        chunks = await call(index.get_document, path, collection)
        page = chunks[first_chunk : first_chunk + max_chunks]
        return Document(path=chunks[0].path, total_chunks=len(chunks), chunks=[Chunk.of(c) for c in page])

    @mcp.tool()
    async def ask(question: str, k: K = k, collection: Collection = None) -> AskResult:
        """Answer `question` from the user's documents with a local model; the answer cites sources as [n]."""
        answer = await call(index.ask, question, k=k, collection=collection, max_tokens=max_tokens)
        return AskResult(answer=answer.text, citations=answer.citations, sources=[Chunk.of(s) for s in answer.sources])

    @mcp.tool()
    async def status() -> Status:
        """What is indexed: documents, chunks, collections, the embedding model, files that failed."""
        return _status(await call(index.status))

    return mcp


def run_stdio(index: rag.Index, **options) -> None:
    """Serve `index` over stdio until the client closes the connection (`options` as for `create_mcp`)."""
    if not index.exists:
        raise rag.IndexNotFound(f"no index at {index.path}")
    create_mcp(index, **options).run("stdio")


def _status(st: rag.IndexStatus) -> Status:
    return Status(
        index=st.path,
        exists=st.exists,
        documents=st.documents,
        chunks=st.chunks,
        embedder=st.embedder,
        dim=st.dim,
        collections={name: {"documents": d, "chunks": c} for name, (d, c) in st.collections.items()},
        failed_files=len(st.failures),
    )


def _warm_up(index: rag.Index) -> None:
    try:
        index.embedder.embed(["warm-up"])
        _ = index.generator
    except rag.RagError:
        pass  # the first tool call that needs the model reports the error

"""`rag mcp`: a Model Context Protocol server over stdio, so editors and agents can use the index.

Tools (each a thin wrapper over the public `rag` API):
    search(query, k, collection)                       ranked chunks with their text and location
    get_chunk(chunk_id)                                one chunk by the id search/ask returned
    get_document(path, collection, first_chunk, max_chunks)  a document's chunks in reading order
    ask(question, k, collection)                       the RAG answer with numbered sources
    status()                                           what is indexed, with which embedder

Built on the official `mcp` SDK (MCPServer). Searches run on one worker thread and answers on another
(rag/serve/serving.py), so a search never waits behind an answer; `ask` is capped in tokens and seconds. The
models start loading in the background as soon as the server starts. Errors the user can act on
(RagError) reach the client as tool errors with their hint, without the index's local path; any other
failure is a tool error that says to look at the server's log (stderr).
A line on stdin that is not JSON, not a JSON-RPC message, or carries text that is not valid Unicode (a
lone surrogate, "\\ud800") is answered with a JSON-RPC error (-32700, -32600, -32602): the SDK drops such
lines silently, which leaves the client waiting for a reply that never comes.
This module does not read the environment or parse arguments (rag/cli/main.py does); stdout belongs to the
protocol.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
import mcp_types as types
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from pydantic import BaseModel, Field

import rag
from rag.serve.serving import SHUTDOWN_WAIT_S, Limits, Models

DEFAULT_DOCUMENT_CHUNKS = 50
INTERNAL = "internal error (see the server's log)"
log = logging.getLogger("rag.mcp")

INSTRUCTIONS = (
    "Search and question the user's own indexed documents (PDF, Markdown, Word, HTML, …). "
    "Use `search` to find passages, `get_chunk`/`get_document` to read more around a hit, and `ask` for an "
    "answer written from the documents by a local model, with numbered sources. Cite paths and pages."
)

K = Annotated[int, Field(ge=1, le=rag.MAX_K, description="How many chunks to retrieve.")]
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
    ocr: float | None = Field(None, description="Read by OCR (a scan or an image): its page's mean confidence, 0-1.")

    @classmethod
    def of(cls, s: rag.Source) -> Chunk:
        return cls.model_validate(s.to_dict() | {"score": round(s.score, 4)})  # the fields above; the rest is ignored


class SearchResult(BaseModel):
    query: str
    results: list[Chunk]


class Document(BaseModel):
    path: str
    total_chunks: int
    chunks: list[Chunk] = Field(description="Consecutive chunks overlap by a sentence or so.")


class AnswerSentence(BaseModel):
    text: str
    citations: list[int] = Field(description="Numbers of the sources that back this sentence.")
    supported: bool = Field(description="False: no source backs this sentence; treat it as unverified.")


class AskResult(BaseModel):
    answer: str
    citations: list[int] = Field(
        description="Numbers of the sources the answer cites (model-written [n] that were verified, and "
        "citations the checker added), as `rag ask` and the HTTP API star them."
    )
    attributed: list[int] = Field(description="Of `citations`, those the checker added (no [n] in the text).")
    sentences: list[AnswerSentence]
    stopped_reason: str = Field(description='"end", "max_tokens" or "repetition" (a looping reply was cut).')
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


def create_mcp(
    index: rag.Index, *, k: int = rag.DEFAULT_K, max_tokens: int = rag.DEFAULT_MAX_TOKENS, models: Models | None = None
) -> MCPServer:
    """The MCP server for `index`. `k` and `max_tokens` are the defaults for `search`/`ask`; `models` are the
    workers it runs model work on (default: new ones, with rag/serve/serving.py's default limits)."""
    models = models or Models(index)
    models.warm_up()  # in the background: the client's handshake doesn't wait for it (errors: at first use)
    mcp = MCPServer("rag", instructions=INSTRUCTIONS, version=rag.__version__, log_level="WARNING")

    async def tool_errors(work):
        try:
            return await work
        except rag.RagError as exc:
            raise ToolError(models.redact(str(exc))) from exc
        except Exception as exc:  # the SDK would send its text, local paths and all
            log.exception("tool call failed")
            raise ToolError(INTERNAL) from exc

    async def call(fn, *args, **kwargs):
        return await tool_errors(models.search(fn, *args, **kwargs))

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
        stop = threading.Event()  # set by the stream itself if the SDK cancels this call (cancelled, or EOF)
        answer, _ = await tool_errors(models.answer(question, stop, k=k, collection=collection, max_tokens=max_tokens))
        return AskResult(
            answer=answer.text,
            citations=answer.citations,
            attributed=answer.attributed_citations,
            sentences=[
                AnswerSentence(text=x.text, citations=list(x.citations), supported=x.supported)
                for x in answer.sentences
            ],
            stopped_reason=answer.stopped_reason,
            sources=[Chunk.of(s) for s in answer.sources],
        )

    @mcp.tool()
    async def status() -> Status:
        """What is indexed: documents, chunks, collections, the embedding model, files that failed."""
        return _status(await call(index.status))

    return mcp


def run_stdio(index: rag.Index, *, limits: Limits = Limits(), **options) -> None:
    """Serve `index` over stdio until the client closes the connection (`options` as for `create_mcp`;
    `limits` cap answers and queues). Work under way then finishes before the process exits."""
    if not index.exists:
        raise rag.IndexNotFound(f"no index at {index.path}")
    models = Models(index, limits)
    try:
        anyio.run(serve_stdio, create_mcp(index, models=models, **options))
    finally:
        models.close(SHUTDOWN_WAIT_S)  # in-flight answers were cancelled: they stop at their next token


async def serve_stdio(mcp: MCPServer) -> None:
    """`mcp.run_stdio_async()`, with every line the SDK would drop answered by a JSON-RPC error."""
    stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")  # as the SDK reads it
    lines = CheckedLines(anyio.wrap_file(stdin))
    try:
        async with stdio_server(stdin=lines) as (read_stream, write_stream):  # type: ignore[arg-type]
            lines.replies = write_stream
            server = mcp._lowlevel_server  # what MCPServer.run_stdio_async runs, over our stdin
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        stdin.detach()  # sys.stdin stays open


class CheckedLines:
    """stdin for the SDK's stdio transport: lines it can read pass through; any other is answered here,
    with a JSON-RPC error on the transport's write stream, and never reaches the SDK."""

    def __init__(self, source) -> None:
        self.source, self.replies = source, None

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        async for line in self.source:
            readable, reply = check_line(line)
            if readable:
                yield line
            elif reply is not None and self.replies is not None:
                await self.replies.send(SessionMessage(reply))


def check_line(line: str) -> tuple[bool, types.JSONRPCError | None]:
    """(True, None) if the SDK can read `line`; else (False, the JSON-RPC error that answers it), the
    error None for a notification (JSON-RPC never answers those, not even with an error)."""
    if not line.strip():
        return True, None  # the SDK skips blank lines itself
    try:
        message = json.loads(line)
    except ValueError:
        return False, _error(None, types.PARSE_ERROR, "parse error: the line is not JSON")
    request_id = message.get("id") if isinstance(message, dict) else None
    if not (isinstance(request_id, str | int) and not isinstance(request_id, bool) and _encodable(request_id)):
        request_id = None
    notification = isinstance(message, dict) and "method" in message and "id" not in message
    if not _encodable(message):
        text = "invalid params: text that is not valid Unicode (a lone surrogate such as \\ud800)"
        return False, None if notification else _error(request_id, types.INVALID_PARAMS, text)
    try:
        types.jsonrpc_message_adapter.validate_python(message, by_name=False)
    except ValueError:
        text = "invalid request: not a JSON-RPC 2.0 message"
        return False, None if notification else _error(request_id, types.INVALID_REQUEST, text)
    return True, None


def _encodable(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _error(request_id: str | int | None, code: int, message: str) -> types.JSONRPCError:
    return types.JSONRPCError(jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message))


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

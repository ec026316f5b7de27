"""`rag serve`: an OpenAI-compatible HTTP API over an Index (FastAPI app factory + uvicorn runner).

    POST /v1/chat/completions   the RAG answer, streamed (SSE) or not, with a top-level `sources` field
    POST /v1/embeddings         the index's embedder
    GET  /v1/models             "rag" (all collections) and "rag:<collection>" for each collection
    POST /v1/search             ranked chunks with metadata and text, no LLM
    GET  /v1/chunks/{id}        one chunk with its full text
    GET  /health                liveness, no key needed

The models load once, at start-up, and are shared; all model work runs on one ModelWorker thread, so
concurrent requests queue instead of crashing MLX (beyond `max_queue` waiting jobs they get 503).
Errors, limits and the API key are rag/_http.py's; the wire format is rag/openai_compat.py's.
This module only adapts HTTP to the public `rag` API; it never reads the environment (rag/cli.py does).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

import rag
from rag import openai_compat as oa
from rag._http import ApiError, BodyLimit, add_error_handlers, log, public_message, require_key
from rag.chat import standalone_question
from rag.generate import DEFAULT_MAX_TOKENS
from rag.index import DEFAULT_K
from rag.worker import ModelWorker

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_BODY_BYTES = 1 << 20  # 1 MiB: far above any question, far below a memory problem
DEFAULT_MAX_QUEUE = 64
MODEL = "rag"  # all collections; "rag:<name>" is one collection


class Service:
    """What each endpoint does, over the public API; model work goes through the one worker."""

    def __init__(self, index: rag.Index, k: int, max_tokens: int, max_queue: int) -> None:
        self.index, self.k, self.max_tokens, self.max_queue = index, k, max_tokens, max_queue
        self.worker = ModelWorker()
        self.started = int(time.time())

    def warm_up(self) -> None:
        self.index.status()  # opens the store
        self.index.embedder.embed(["warm-up"])
        _ = self.index.generator

    def check_queue(self) -> None:
        if self.worker.pending >= self.max_queue:
            raise ApiError(
                503, f"busy: {self.worker.pending} requests queued, retry later", "server_error", code="busy"
            )

    async def on_worker(self, fn, *args, **kwargs):
        self.check_queue()
        return await self.worker.run(fn, *args, **kwargs)

    async def collection_of(self, model: str) -> str | None:
        """The collection a `model` field names: "rag" -> None (all), "rag:<name>" -> name if it exists; else 404."""
        if model == MODEL:
            return None
        name = model.removeprefix(f"{MODEL}:")
        if name != model and name in await run_in_threadpool(self.index.collections):
            return name
        message = f"The model '{model}' does not exist: GET /v1/models lists them"
        raise ApiError(404, message, param="model", code="model_not_found")

    async def models(self) -> dict:
        names = await run_in_threadpool(self.index.collections)
        data = [oa.model_json(MODEL, self.started, collection=None)]
        data += [oa.model_json(f"{MODEL}:{name}", self.started, collection=name) for name in names]
        return {"object": "list", "data": data}

    async def model(self, model_id: str) -> dict:
        return oa.model_json(model_id, self.started, collection=await self.collection_of(model_id))

    async def chat(self, body: oa.ChatRequest):
        collection = await self.collection_of(body.model)
        question = body.question()
        if question is None:
            message = f"messages need a user message of 1 to {oa.MAX_TEXT_CHARS} characters"
            raise ApiError(400, message, param="messages")
        history = body.history()
        if history:  # a follow-up: rewrite it into a standalone question before retrieval
            question = await self.on_worker(standalone_question, self.index.generator, history, question)
        limit = body.token_limit(self.max_tokens)
        options = dict(k=body.k or self.k, collection=collection, thinking=body.thinking, max_tokens=limit)
        if not body.stream:
            answer = await self.on_worker(self.index.ask, question, **options)
            return oa.completion_json(body.model, answer, limit)
        self.check_queue()
        events = self.worker.stream(lambda: self.index.stream_answer(question, **options))
        first = await anext(events)  # errors during retrieval still get a proper status code
        usage = body.stream_options is not None and body.stream_options.include_usage
        return StreamingResponse(_sse(body.model, first, events, limit, usage), media_type="text/event-stream")

    async def embeddings(self, body: oa.EmbeddingsRequest) -> dict:
        await self.collection_of(body.model)
        vectors, tokens = await self.on_worker(_embed, self.index, body.texts())
        if body.dimensions not in (None, vectors.shape[1]):
            raise ApiError(400, f"this embedder has {vectors.shape[1]} dimensions", param="dimensions")
        return oa.embeddings_json(body.model, vectors, tokens, body.encoding_format)

    async def search(self, body: oa.SearchRequest) -> dict:
        if body.collection is not None:
            await self.collection_of(f"{MODEL}:{body.collection}")
        hits = await self.on_worker(self.index.search, body.query, body.k or self.k, body.collection)
        data = [oa.source_json(hit, n, text=True) for n, hit in enumerate(hits, 1)]
        return {"object": "list", "query": body.query, "data": data}

    async def chunk(self, chunk_id: str) -> dict:
        return oa.source_json(await run_in_threadpool(self.index.get_chunk, chunk_id), text=True)


def create_app(
    index: rag.Index,
    *,
    api_key: str | None = None,
    k: int = DEFAULT_K,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_queue: int = DEFAULT_MAX_QUEUE,
) -> FastAPI:
    """The ASGI app serving `index`.

    Args:
        index: an opened `rag.Index`; its models load when the app starts.
        api_key: if set, every /v1 request needs `Authorization: Bearer <api_key>`.
        k: chunks retrieved per question unless a request sends `k` (default 5).
        max_tokens: answer length unless a request sends `max_tokens` (default 512).
        max_body_bytes: larger request bodies are refused with 413 (default 1 MiB).
        max_queue: model jobs allowed to wait at once before requests get 503 (default 64).
    """
    service = Service(index, k, max_tokens, max_queue)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await service.worker.run(service.warm_up)
        yield
        service.worker.close()

    app = FastAPI(title="rag", version=rag.__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    add_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_api_route("/health", _health, methods=["GET"])
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_key(api_key))])
    v1.add_api_route("/models", service.models, methods=["GET"])
    v1.add_api_route("/models/{model_id}", service.model, methods=["GET"])
    v1.add_api_route("/chat/completions", service.chat, methods=["POST"])
    v1.add_api_route("/embeddings", service.embeddings, methods=["POST"])
    v1.add_api_route("/search", service.search, methods=["POST"])
    v1.add_api_route("/chunks/{chunk_id}", service.chunk, methods=["GET"])
    app.include_router(v1)
    return app


def serve(
    index: rag.Index,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    api_key: str | None = None,
    log_level: str = "info",
    **options,
) -> None:
    """Serve `index` over HTTP until Ctrl-C (`options` as for `create_app`).

    Raises RagError for a non-loopback `host` without an `api_key`, or if there is no index yet.
    """
    import uvicorn

    check_bind(host, api_key)
    if not index.exists:
        raise rag.IndexNotFound(f"no index at {index.path}")
    uvicorn.run(create_app(index, api_key=api_key, **options), host=host, port=port, log_level=log_level)


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to listen beyond this machine without an API key."""
    if not api_key and not is_loopback(host):
        raise rag.RagError(
            f"refusing to serve on {host} without an API key: anyone who can reach it could read your documents",
            "pass --api-key (or set RAG_API_KEY), or bind to 127.0.0.1",
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


async def _health() -> dict:
    return {"status": "ok"}


def _embed(index: rag.Index, texts: list[str]):
    embedder = index.embedder
    return embedder.embed(texts), sum(len(embedder.token_spans(t)) for t in texts)


async def _sse(model: str, first, events: AsyncIterator, max_tokens: int, usage: bool) -> AsyncIterator[str]:
    """The SSE body: a role chunk, content (and reasoning) deltas, a finish chunk with `sources`, [DONE]."""
    out = oa.ChunkWriter(model)
    yield out.delta({"role": "assistant", "content": ""})
    try:
        async with aclosing(events):
            async for event in _chain(first, events):
                if isinstance(event, rag.TokenEvent):
                    yield out.delta({"content": event.text})
                elif isinstance(event, rag.ThinkingEvent):
                    yield out.delta({"reasoning_content": event.text})
                elif isinstance(event, rag.DoneEvent):
                    answer = event.answer
                    yield out.delta({}, oa.finish_reason(answer, max_tokens), sources=oa.sources_json(answer))
                    if usage:
                        yield out.usage(answer)
    except Exception as exc:  # the 200 header is out: the error travels in the stream, as OpenAI does
        log.exception("streamed answer failed")
        yield oa.sse(oa.error_body(public_message(exc), "server_error"))
    yield oa.sse("[DONE]")


async def _chain(first, rest: AsyncIterator) -> AsyncIterator:
    yield first
    async for item in rest:
        yield item

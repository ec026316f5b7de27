"""`rag serve`: an OpenAI-compatible HTTP API over an Index (FastAPI app factory + uvicorn runner).

    POST /v1/chat/completions   the RAG answer, streamed (SSE) or not, with a top-level `sources` field
    POST /v1/embeddings         the index's embedder
    GET  /v1/models             "rag" (all collections) and "rag:<collection>" for each collection
    POST /v1/search             ranked chunks with metadata and text, no LLM
    GET  /v1/chunks/{id}        one chunk with its full text
    GET  /health                liveness, no key needed
    GET  /, /api/...            the web app and its endpoints (rag/serve/web.py)

The models load once, at start-up, and are shared. Searches and embeddings run on one worker thread,
answers on another (rag/serve/serving.py), so a search never waits behind an answer; beyond each queue's
limit requests get 503 with Retry-After. An answer is capped in tokens and in seconds, and stops when
its client disconnects. Errors, the API key, the Host/Origin check and the body limit are rag/serve/requests.py's;
the wire format is rag/serve/openai.py's.
This module only adapts HTTP to the public `rag` API; it never reads the environment (rag/cli/main.py does).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing, asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

import rag
from rag.serve import openai as oa
from rag.serve.requests import (
    ApiError,
    BodyLimit,
    HostCheck,
    add_error_handlers,
    is_loopback,
    log,
    public_message,
    require_key,
)
from rag.serve.serving import (
    DEFAULT_ANSWER_SECONDS,
    DEFAULT_MAX_ANSWER_QUEUE,
    DEFAULT_MAX_QUEUE,
    DEFAULT_TOKEN_CAP,
    SHUTDOWN_WAIT_S,
    Limits,
    Models,
    Partial,
    chain,
)
from rag.serve.web import SameOrigin, SecurityHeaders, add_web_app

DEFAULT_MAX_BODY_BYTES = 1 << 20  # 1 MiB: far above any question, far below a memory problem
DISCONNECT_POLL_S = 0.25
MODEL = "rag"  # all collections; "rag:<name>" is one collection


class Service:
    """What each endpoint does, over the public API; model work goes through rag/serve/serving.py's workers."""

    def __init__(
        self, index: rag.Index, k: int, max_tokens: int, limits: Limits, collection: str | None = None
    ) -> None:
        self.index, self.k, self.max_tokens = index, k, max_tokens
        self.default_collection = collection  # what "rag" (and a search without one) means; None: all
        self.models = Models(index, limits)
        self.started = int(time.time())

    async def collection_of(self, model: str) -> str | None:
        """The collection a `model` field names: "rag" -> the default collection (None: all), "rag:<name>" ->
        name if it exists; else 404."""
        if model == MODEL:
            return self.default_collection
        name = model.removeprefix(f"{MODEL}:")
        if name != model and name in await run_in_threadpool(self.index.collections):
            return name
        message = f"The model '{model}' does not exist: GET /v1/models lists them"
        raise ApiError(404, message, param="model", code="model_not_found")

    async def models_list(self) -> dict:
        names = await run_in_threadpool(self.index.collections)
        data = [oa.model_json(MODEL, self.started, collection=None)]
        data += [oa.model_json(f"{MODEL}:{name}", self.started, collection=name) for name in names]
        return {"object": "list", "data": data}

    async def model(self, model_id: str) -> dict:
        return oa.model_json(model_id, self.started, collection=await self.collection_of(model_id))

    async def standalone(self, question: str, history: list[tuple[str, str]]) -> str:
        """The question to retrieve and answer: `question` itself, or for a follow-up (earlier
        (question, answer) pairs in `history`) the standalone question the chat model rewrites it into,
        as `rag chat` does. A full answer queue refuses first, before any work is done."""
        self.models.check_answers()
        if not history:
            return question
        return await self.models.generate(rag.standalone_question, self.index.generator, history, question)

    def answer_options(self, collection: str | None, k: int | None, thinking: bool, max_tokens: int | None) -> dict:
        """`Models.stream`'s options for an answer; what a request left out comes from the server's
        settings, and `max_tokens` is capped at the server's token cap."""
        limit = self.models.tokens(max_tokens or self.max_tokens)
        return dict(k=k or self.k, collection=collection, thinking=thinking, max_tokens=limit)

    async def chat(self, body: oa.ChatRequest, request: Request):
        collection = await self.collection_of(body.model)
        question = body.question()
        if question is None:
            message = f"messages need a user message of 1 to {oa.MAX_TEXT_CHARS} characters"
            raise ApiError(400, message, param="messages")
        question = await self.standalone(question, body.history())
        options = self.answer_options(collection, body.k, body.thinking, body.token_limit(self.max_tokens))
        limit = options["max_tokens"]
        stop = threading.Event()
        if not body.stream:
            async with _stop_on_disconnect(request, stop):
                answer, cut = await self.models.answer(question, stop, **options)
            return oa.completion_json(body.model, answer, limit, finish="length" if cut else None)
        events = self.models.stream(question, stop, **options)  # a disconnect closes it: Starlette cancels _sse
        first = await anext(events)  # errors during retrieval still get a proper status code
        usage = body.stream_options is not None and body.stream_options.include_usage
        body_lines = _sse(body.model, question, first, events, limit, usage, self.models.redact)
        return StreamingResponse(body_lines, media_type="text/event-stream")

    async def embeddings(self, body: oa.EmbeddingsRequest) -> dict:
        # Any model name is accepted (OpenAI clients send "text-embedding-3-small" by default): there is
        # one embedder, the index's, and the reply names it.
        vectors, tokens = await self.models.search(_embed, self.index, body.texts())
        if body.dimensions not in (None, vectors.shape[1]):
            raise ApiError(400, f"this embedder has {vectors.shape[1]} dimensions", param="dimensions")
        model = self.models.redact(str(self.index.embedder.id))
        return oa.embeddings_json(model, vectors, tokens, body.encoding_format)

    async def search(self, body: oa.SearchRequest) -> dict:
        collection = body.collection if body.collection is not None else self.default_collection
        if collection is not None:
            await self.collection_of(f"{MODEL}:{collection}")
        hits = await self.models.search(self.index.search, body.query, body.k or self.k, collection)
        data = [oa.source_json(hit, n, text=True) for n, hit in enumerate(hits, 1)]
        return {"object": "list", "query": body.query, "data": data}

    async def chunk(self, chunk_id: str) -> dict:
        return oa.source_json(await run_in_threadpool(self.index.get_chunk, chunk_id), text=True)


def create_app(
    index: rag.Index,
    *,
    api_key: str | None = None,
    k: int = rag.DEFAULT_K,
    max_tokens: int = rag.DEFAULT_MAX_TOKENS,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_queue: int = DEFAULT_MAX_QUEUE,
    max_answer_queue: int = DEFAULT_MAX_ANSWER_QUEUE,
    token_cap: int = DEFAULT_TOKEN_CAP,
    answer_seconds: float = DEFAULT_ANSWER_SECONDS,
    allowed_hosts: Sequence[str] = (),
    collection: str | None = None,
    web_app: bool = True,
) -> FastAPI:
    """The ASGI app serving `index`.

    Args:
        index: an opened `rag.Index`; its models load when the app starts.
        api_key: if set, every /v1 request needs `Authorization: Bearer <api_key>`.
        k: chunks retrieved per question unless a request sends `k` (default 5).
        max_tokens: answer length unless a request sends `max_tokens` (default rag.DEFAULT_MAX_TOKENS, 256).
        max_body_bytes: larger request bodies are refused with 413 (default 1 MiB).
        max_queue: searches and embeddings allowed to wait before requests get 503 (default 64).
        max_answer_queue: answers allowed to wait behind the one being generated (default 4).
        token_cap: no answer is longer, whatever `max_tokens` a request sends (default 1024).
        answer_seconds: an answer still generating after this long stops there, finish_reason "length"
            (default 120).
        allowed_hosts: host names (besides localhost, 127.x.x.x and [::1]) that requests may name in
            their Host header, and browser pages in their Origin; without an `api_key` no other Host is
            served, so a DNS-rebinding page cannot read the index (default: none).
        collection: what the model "rag" (and a search that names no collection) means; None (default)
            is every collection. "rag:<name>" still picks any one.
        web_app: serve the web app at / and its endpoints under /api (rag/serve/web.py; default True).
    """
    limits = Limits(token_cap, answer_seconds, max_queue, max_answer_queue)
    service = Service(index, k, max_tokens, limits, collection)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await asyncio.wrap_future(service.models.warm_up())
        yield
        if not await run_in_threadpool(service.models.close, SHUTDOWN_WAIT_S):
            log.warning("model work still running at shutdown")

    app = FastAPI(title="rag", version=rag.__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    add_error_handlers(app, service.models.redact)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    if web_app:
        app.add_middleware(SameOrigin)  # the app's /api: only its own page may call it
    app.add_middleware(HostCheck, allowed=allowed_hosts, any_host=api_key is not None)
    app.add_middleware(SecurityHeaders)  # runs first: every response gets the CSP
    app.add_api_route("/health", _health, methods=["GET"])
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_key(api_key))])
    v1.add_api_route("/models", service.models_list, methods=["GET"])
    v1.add_api_route("/models/{model_id}", service.model, methods=["GET"])
    v1.add_api_route("/chat/completions", service.chat, methods=["POST"])
    v1.add_api_route("/embeddings", service.embeddings, methods=["POST"])
    v1.add_api_route("/search", service.search, methods=["POST"])
    v1.add_api_route("/chunks/{chunk_id}", service.chunk, methods=["GET"])
    app.include_router(v1)
    if web_app:
        add_web_app(app, service, api_key)
    return app


def serve(
    index: rag.Index,
    *,
    host: str = rag.DEFAULT_HOST,
    port: int = rag.DEFAULT_PORT,
    api_key: str | None = None,
    log_level: str = "info",
    on_ready: Callable[[str], None] | None = None,
    **options,
) -> None:
    """Serve `index` over HTTP until Ctrl-C (`options` as for `create_app`). `on_ready(url)` is called
    once the models are loaded and the port is open (`port` 0: any free port; `url` names the one taken).

    Raises RagError for a non-loopback `host` without an `api_key`, or if there is no index yet.
    """
    import uvicorn

    check_bind(host, api_key)
    if not index.exists:
        raise rag.IndexNotFound(f"no index at {index.path}")
    app = create_app(index, api_key=api_key, **options)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level))
    if on_ready is not None:
        threading.Thread(target=_when_started, args=(server, host, on_ready), daemon=True).start()
    server.run()


def _when_started(server, host: str, on_ready: Callable[[str], None]) -> None:
    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    name = f"[{host.strip('[]')}]" if ":" in host else host
    on_ready(f"http://{name}:{port}")


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to listen beyond this machine without an API key."""
    if not api_key and not is_loopback(host):
        raise rag.RagError(
            f"refusing to serve on {host} without an API key: anyone who can reach it could read your documents",
            "pass --api-key (or set RAG_API_KEY), or bind to 127.0.0.1",
        )


async def _health() -> dict:
    return {"status": "ok"}


def _embed(index: rag.Index, texts: list[str]):
    embedder = index.embedder
    return embedder.embed(texts), sum(len(embedder.token_spans(t)) for t in texts)


async def _sse(
    model: str, question: str, first, events: AsyncIterator, max_tokens: int, usage: bool, redact
) -> AsyncIterator[str]:
    """The SSE body: a role chunk, content (and reasoning) deltas, a finish chunk with `sources`, [DONE].

    A stream that ends without its DoneEvent was cut at the time limit: it finishes with "length"."""
    out = oa.ChunkWriter(model)
    partial = Partial(question)
    yield out.delta({"role": "assistant", "content": ""})
    try:
        async with aclosing(events):  # type: ignore[type-var]  # an async generator: it has aclose
            async for event in chain(first, events):
                partial.add(event)
                if isinstance(event, rag.TokenEvent):
                    yield out.delta({"content": event.text})
                elif isinstance(event, rag.ThinkingEvent):
                    yield out.delta({"reasoning_content": event.text})
        answer = partial.answer()
        finish = "length" if partial.cut else oa.finish_reason(answer, max_tokens)
        extra = dict(sentences=oa.sentences_json(answer), stopped_reason=answer.stopped_reason)
        yield out.delta({}, finish, sources=oa.sources_json(answer), **extra)
        if usage:
            yield out.usage(answer)
    except Exception as exc:  # the 200 header is out: the error travels in the stream, as OpenAI does
        log.exception("streamed answer failed")
        yield oa.sse(oa.error_body(redact(public_message(exc)), "server_error"))
    yield oa.sse("[DONE]")


@asynccontextmanager
async def _stop_on_disconnect(request: Request, stop: threading.Event):
    """Set `stop` if the client disconnects while the block runs (a non-streamed answer, still generating)."""

    async def watch() -> None:
        while not stop.is_set():
            if await request.is_disconnected():
                stop.set()
            await asyncio.sleep(DISCONNECT_POLL_S)

    watcher = asyncio.create_task(watch())
    try:
        yield
    finally:
        watcher.cancel()

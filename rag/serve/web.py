"""The web app of `rag serve`: the page at `/`, its static files, and the JSON/SSE endpoints it calls.

    GET  /                      the app (rag/serve/static/index.html, app.js, app.css: no build step)
    POST /api/session           {"key"}: check the API key once, keep it in an HttpOnly cookie
    GET  /api/status            collections, documents, chunks, failed files, models, index location
    POST /api/ask               the answer as server-sent events: question, sources, thinking, token, done
    POST /api/search            ranked chunks, no LLM (mode, collection, path and type filters)
    GET  /api/passage           a chunk in its document (neighbouring text), the quote's span and page boxes
    GET  /api/page              a page of an indexed PDF or image, as PNG
    GET  /api/file              an indexed document's original file
    GET  /api/documents         the indexed documents

Security beyond rag/serve/requests.py's Host/Origin check: /api requests must come from the app's own
origin (Origin, when sent, names exactly this server; Sec-Fetch-Site, when sent, is same-origin or none),
every response carries a Content-Security-Policy allowing only this origin, and CORP same-origin keeps
other sites from embedding page images. Document endpoints take a path only if it is exactly one the
index holds (`Index.document_file`): nothing else on disk is reachable. A file is served inline only as
PDF, image or plain text, never as HTML or script of this origin.
This module adapts HTTP to the public `rag` API, like rag/serve/http.py, whose Service it shares.
"""

from __future__ import annotations

import hashlib
import hmac
import mimetypes
import threading
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote as url_quote

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import AfterValidator, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders

import rag
from rag.serve import openai as oa
from rag.serve.requests import ApiError, log, public_message
from rag.serve.serving import Partial, chain

if TYPE_CHECKING:
    from rag.serve.http import Service

COOKIE = "rag_session"
STATIC = ("app.js", "app.css", "icon.svg")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
    "font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# Served inline: PDFs (the browser's viewer), images, and text shown as text. Anything else downloads.
INLINE_TYPES = ("application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/tiff")
TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".rst", ".csv", ".json", ".log", ".html", ".htm", ".xml", ".py")
NEIGHBOUR_CHARS = 700  # of the chunks before and after a cited one, shown around it
MAX_OVERLAP_CHARS = 800


def _words(text: str) -> str:
    """`text` stripped; a ValueError (a 400) if nothing but spaces is left."""
    if not text.strip():
        raise ValueError("must not be empty or only spaces")
    return text.strip()


Question = Annotated[oa.Text, AfterValidator(_words)]


class AskRequest(oa._Lenient):
    """POST /api/ask: a question, and for a follow-up the conversation so far (question, answer) pairs."""

    question: Question
    history: list[tuple[oa.Str, oa.Str]] = Field(default_factory=list, max_length=oa.MAX_MESSAGES)
    collection: oa.Str | None = None
    k: int | None = Field(None, ge=1, le=rag.MAX_K)
    max_tokens: int | None = Field(None, ge=1, le=oa.MAX_COMPLETION_TOKENS)
    thinking: bool = False


class WebSearchRequest(oa._Lenient):
    """POST /api/search."""

    query: Question
    k: int | None = Field(None, ge=1, le=rag.MAX_K)
    mode: str = rag.DEFAULT_MODE
    collection: oa.Str | None = None
    paths: list[oa.Str] = Field(default_factory=list, max_length=32)
    types: list[oa.Str] = Field(default_factory=list, max_length=32)


class SessionRequest(oa._Lenient):
    key: oa.Str = Field(max_length=4096)


def session_token(api_key: str) -> str:
    """The cookie value for `api_key`: derived from it, so the key itself never sits in the browser."""
    return hmac.new(api_key.encode(), b"rag web session v1", hashlib.sha256).hexdigest()


def require_session(api_key: str | None):
    """A FastAPI dependency: with an API key, the session cookie or `Authorization: Bearer <key>`, else 401."""

    async def check(request: Request) -> None:
        if api_key is None:
            return
        cookie = request.cookies.get(COOKIE, "")
        if cookie and hmac.compare_digest(cookie.encode(), session_token(api_key).encode()):
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), api_key.encode()):
            return
        raise ApiError(401, "this server needs its API key: enter it in the app", code="invalid_api_key")

    return check


class SameOrigin:
    """ASGI middleware for /api: refuse requests a browser marks as coming from another origin.

    HostCheck lets any loopback Origin through (another app on localhost:3000 is loopback too); here the
    Origin must be this very server (scheme, host and port of the Host header), and Sec-Fetch-Site, which
    browsers send with every request, must not be cross-site or same-site. Clients that send neither (curl,
    scripts) are not browsers and pass, as they do on /v1."""

    def __init__(self, app, prefix: str = "/api") -> None:
        self.app, self.prefix = app, prefix

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        origin, site = headers.get("origin"), headers.get("sec-fetch-site")
        ours = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}".lower()
        if (origin is not None and origin.lower() != ours) or site in ("cross-site", "same-site"):
            body = oa.error_body(
                "requests from other web pages are refused", "invalid_request_error", None, "forbidden_origin"
            )
            return await JSONResponse(body, status_code=403)(scope, receive, send)
        await self.app(scope, receive, send)


class SecurityHeaders:
    """ASGI middleware: the CSP and friends on every response (a served file gets a sandboxing CSP)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        is_file = scope["path"] == "/api/file"

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("X-Frame-Options", "DENY")
                pdf = headers.get("content-type", "").startswith("application/pdf")
                if not (is_file and pdf):  # the browser's PDF viewer runs under the PDF's own policy
                    headers.setdefault("Content-Security-Policy", "sandbox; default-src 'none'" if is_file else CSP)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def add_web_app(app: FastAPI, service: Service, api_key: str | None) -> None:
    """Register the app's page, static files and /api endpoints on `app` (rag/serve/http.py's, which
    adds the SameOrigin and SecurityHeaders middleware)."""
    web = WebApi(service, api_key)
    app.add_api_route("/", _page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/static/{name}", _static, methods=["GET"], include_in_schema=False)
    app.add_api_route("/favicon.ico", _favicon, methods=["GET"], include_in_schema=False)  # asked for by PDF tabs
    app.add_api_route("/api/session", web.login, methods=["POST"])
    api = APIRouter(prefix="/api", dependencies=[Depends(require_session(api_key))])
    api.add_api_route("/status", web.status, methods=["GET"])
    api.add_api_route("/ask", web.ask, methods=["POST"])
    api.add_api_route("/search", web.search, methods=["POST"])
    api.add_api_route("/passage", web.passage, methods=["GET"])
    api.add_api_route("/page", web.page, methods=["GET"])
    api.add_api_route("/file", web.file, methods=["GET"])
    api.add_api_route("/documents", web.documents, methods=["GET"])
    app.include_router(api)


def _asset(name: str) -> bytes:
    return resources.files("rag.serve").joinpath("static", name).read_bytes()


async def _page() -> Response:
    return Response(_asset("index.html"), media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})


async def _favicon() -> Response:
    return await _static("icon.svg")


async def _static(name: str) -> Response:
    if name not in STATIC:  # a fixed list: no path from the request reaches the file system
        raise ApiError(404, f"no static file '{name}'", code="not_found")
    media = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}[name.rsplit(".", 1)[1]]
    return Response(_asset(name), media_type=f"{media}; charset=utf-8", headers={"Cache-Control": "no-cache"})


class WebApi:
    """The /api endpoints over the server's Service (its index, models and workers)."""

    def __init__(self, service: Service, api_key: str | None) -> None:
        self.service, self.index, self.api_key = service, service.index, api_key

    async def login(self, body: SessionRequest) -> Response:
        if self.api_key is None:
            return JSONResponse({"ok": True, "key_needed": False})
        if not hmac.compare_digest(body.key.encode(), self.api_key.encode()):
            raise ApiError(401, "wrong API key", code="invalid_api_key")
        reply = JSONResponse({"ok": True, "key_needed": True})
        reply.set_cookie(COOKIE, session_token(self.api_key), httponly=True, samesite="strict", path="/")
        return reply

    async def status(self) -> dict:
        st = await run_in_threadpool(self.index.status)
        generator = self.index.generator  # loaded at start-up
        where = self.index.path
        data = asdict(st) | {"path": str(where.resolve() if isinstance(where, Path) else where)}
        data["collections"] = {name: {"documents": d, "chunks": c} for name, (d, c) in st.collections.items()}
        data["llm"] = str(getattr(generator, "id", type(generator).__name__))
        data["default_collection"] = self.service.default_collection
        data["k"], data["max_tokens"] = self.service.k, self.service.max_tokens
        data["version"] = rag.__version__
        return data

    async def _collection(self, name: str | None) -> str | None:
        if not name:
            return self.service.default_collection
        if name not in await run_in_threadpool(self.index.collections):
            raise ApiError(404, f"no collection '{name}'", param="collection", code="not_found")
        return name

    async def ask(self, body: AskRequest) -> StreamingResponse:
        models = self.service.models
        collection = await self._collection(body.collection)
        question = body.question.strip()
        searched = await self.service.standalone(question, [(q, a) for q, a in body.history if q.strip()])
        options = self.service.answer_options(collection, body.k, body.thinking, body.max_tokens)
        stop = threading.Event()
        events = models.stream(searched, stop, **options)  # a disconnect closes it, which sets stop
        first = await anext(events)  # errors during retrieval still get a proper status code
        head = {"question": question, "searched": searched, "rewritten": searched != question}
        lines = _answer_events(head, first, events, models.redact)
        return StreamingResponse(lines, media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def search(self, body: WebSearchRequest) -> dict:
        collection = await self._collection(body.collection)
        options = dict(mode=body.mode, path_globs=body.paths, file_types=body.types)
        k = body.k or self.service.k
        hits = await self.service.models.search(self.index.search, body.query, k, collection, **options)
        data = [
            oa.source_json(h, n, text=True) | {"best": rag.best_snippet(h.text, body.query)}  # as an answer's sources
            for n, h in enumerate(hits, 1)
        ]
        return {"query": body.query, "hits": data}

    async def passage(
        self, chunk: str = Query(max_length=200), quote: str = Query("", max_length=oa.MAX_TEXT_CHARS)
    ) -> dict:
        """The chunk, the text around it in its document, where `quote` is in it, and its page view."""
        return await run_in_threadpool(self._passage, chunk, quote)

    def _passage(self, chunk_id: str, quote: str) -> dict:
        source = self.index.get_chunk(chunk_id)
        around = {c.chunk_index: c for c in self.index.neighbours(source)}
        before = after = ""
        if (previous := around.get(source.chunk_index - 1)) is not None:
            text = previous.text.rstrip()
            before = text[: len(text) - _overlap(text, source.text)][-NEIGHBOUR_CHARS:]
        if (following := around.get(source.chunk_index + 1)) is not None:
            after = following.text.lstrip()[_overlap(source.text, following.text) :][:NEIGHBOUR_CHARS]
        span = rag.find_span(source.text, quote) if quote.strip() else None
        data: dict[str, Any] = {
            "source": oa.source_json(source, text=True),
            "before": before,
            "after": after,
            "highlight": list(span) if span else None,
            "file": f"/api/file?path={url_quote(source.path, safe='')}",
            "page": None,
        }
        if rag.has_pages(source.path):
            page = f"&page={source.page}" if source.page is not None else ""
            data["page"] = {"image": f"/api/page?path={url_quote(source.path, safe='')}{page}", "boxes": [], "kind": ""}
            try:
                view = self.index.locate(source, quote)
                data["page"] |= {"boxes": [list(b) for b in view.boxes], "kind": view.kind}
            except rag.RagError as exc:
                data["page"]["error"] = self.service.models.redact(public_message(exc))
        return data

    async def page(
        self,
        path: str = Query(max_length=4096),
        page: int | None = Query(None, ge=1, le=100_000),
        width: int = Query(rag.DEFAULT_PAGE_WIDTH, ge=100, le=rag.MAX_PAGE_WIDTH),
    ) -> Response:
        try:
            png = await run_in_threadpool(self.index.page_image, path, page, width=width)
        except rag.LoadError as exc:  # no such page, or a file that can't be drawn
            raise ApiError(404, self.service.models.redact(str(exc)), code="no_page") from None
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})

    async def file(self, path: str = Query(max_length=4096)) -> Response:
        file = await run_in_threadpool(self.index.document_file, path)
        kind = mimetypes.guess_type(file.name)[0] or ""
        if kind in INLINE_TYPES:
            return FileResponse(file, media_type=kind, content_disposition_type="inline", filename=file.name)
        if file.suffix.lower() in TEXT_SUFFIXES:  # shown as text: an indexed HTML page never runs here
            return FileResponse(file, media_type="text/plain; charset=utf-8", content_disposition_type="inline")
        return FileResponse(file, media_type="application/octet-stream", filename=file.name)

    async def documents(self, collection: str | None = Query(None, max_length=200)) -> dict:
        docs = await run_in_threadpool(self.index.documents, collection=collection or None)
        return {"documents": docs}


def _overlap(first: str, second: str) -> int:
    """How many characters the end of `first` (right-stripped) repeats of the start of `second`
    (left-stripped): consecutive chunks overlap by a few sentences. 0 for fewer than 8."""
    first, second = first.rstrip(), second.lstrip()
    for n in range(min(len(first), len(second), MAX_OVERLAP_CHARS), 7, -1):
        if first.endswith(second[:n]):
            return n
    return 0


def _event(name: str, data: dict) -> str:
    return f"event: {name}\n{oa.sse(data)}"


async def _answer_events(head: dict, first, events: AsyncIterator, redact) -> AsyncIterator[str]:
    """The SSE body of /api/ask: question, sources, thinking/token deltas, then done (the finished
    answer, as `Answer.to_dict`, its thinking, and `cut` when it stopped at the time limit) or error."""
    partial = Partial(head["searched"])
    best: dict[str, str] = {}  # chunk id -> its sentence closest to the question, found once

    def brief(sources: list[rag.Source]) -> list[dict]:
        """Sources as JSON, each with `best`: what the panel marks for a source that backs no sentence."""
        for s in sources:
            if s.chunk_id not in best:
                best[s.chunk_id] = rag.best_snippet(s.text, head["searched"])
        return [oa.source_json(s, n) | {"best": best[s.chunk_id]} for n, s in enumerate(sources, 1)]

    yield _event("question", head)
    try:
        async with aclosing(events):  # type: ignore[type-var]  # an async generator: it has aclose
            async for event in chain(first, events):
                partial.add(event)
                if isinstance(event, rag.SourcesEvent):
                    yield _event("sources", {"sources": brief(event.sources)})
                elif isinstance(event, rag.TokenEvent):
                    yield _event("token", {"text": event.text})
                elif isinstance(event, rag.ThinkingEvent):
                    yield _event("thinking", {"text": event.text})
        answer = partial.answer()
        done = answer.to_dict()
        for data, shown in zip(done["sources"], brief(answer.sources), strict=True):
            del data["text"]  # the panel fetches a chunk's text when it is opened
            data |= {"snippet": shown["snippet"], "best": shown["best"]}
        yield _event("done", {"answer": done, "thinking": answer.thinking, "cut": partial.cut})
    except Exception as exc:  # the 200 header is out: the error travels in the stream
        log.exception("streamed answer failed")
        yield _event("error", {"message": redact(public_message(exc))})

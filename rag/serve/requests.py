"""HTTP plumbing for `rag serve`: OpenAI-shaped errors, the API-key check, the Host/Origin check and the
request-size limit.

Every error leaves as {"error": {"message", "type", "param", "code"}} with a fitting status: 400 for
invalid requests (OpenAI's choice over 422; also any InvalidOption), 401 bad key, 403 foreign Host or
Origin, 404 unknown model/chunk/collection/route (NotInIndex), 413 too large, 503 busy (with
Retry-After), 500 server errors (whose internals stay in the server log). Messages pass through a `redact` function first, so no local path leaves the machine.
No routes live here (rag/serve/http.py).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException

import rag
from rag.serve.openai import error_body
from rag.serve.serving import Busy

INTERNAL = "internal error (see the server log)"
log = logging.getLogger("rag.serve.http")


class ApiError(Exception):
    """An error response: HTTP status plus OpenAI's error fields."""

    def __init__(
        self, status: int, message: str, type: str = "invalid_request_error", param=None, code=None, headers=None
    ):
        super().__init__(message)
        self.status, self.body, self.headers = status, error_body(message, type, param, code), headers


def require_key(api_key: str | None):
    """A FastAPI dependency: `Authorization: Bearer <api_key>` or 401 (no check when api_key is None)."""

    async def check(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # compare_digest: the time taken must not reveal how much of the key was right
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), api_key.encode()):
            raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'", code="invalid_api_key")

    return check


def public_message(exc: BaseException) -> str:
    """What a client may see of an error: a RagError's message and hint, nothing of a crash."""
    return str(exc) if isinstance(exc, rag.RagError) else INTERNAL


def add_error_handlers(app: FastAPI, redact: Callable[[str], str] = str) -> None:
    """OpenAI-shaped replies for every error; `redact` cleans the message of a RagError (local paths)."""

    def reply(status: int, body: dict, headers=None) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else exc.headers
        return reply(exc.status, exc.body, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [e for e in exc.errors() if isinstance(e, dict)]
        where = [".".join(map(str, e.get("loc", ())[1:])) for e in errors]
        message = "; ".join(f"{w or 'body'}: {e.get('msg')}" for w, e in zip(where, errors, strict=True))
        json_broken = bool(errors) and errors[0].get("type") == "json_invalid"
        param = None if json_broken or not where else where[0] or None
        return reply(400, error_body(message or "invalid request", "invalid_request_error", param))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return reply(exc.status_code, error_body(str(exc.detail), "invalid_request_error"), exc.headers)

    @app.exception_handler(Busy)
    async def busy(_: Request, exc: Busy) -> JSONResponse:
        body = error_body(exc.message + ", retry later", "server_error", None, "busy")
        return reply(503, body, {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(rag.NotInIndex)
    async def not_found(_: Request, exc: rag.NotInIndex) -> JSONResponse:
        return reply(404, error_body(redact(exc.message), "invalid_request_error", None, "not_found"))

    @app.exception_handler(rag.InvalidOption)
    async def invalid_option(_: Request, exc: rag.InvalidOption) -> JSONResponse:
        return reply(400, error_body(redact(str(exc)), "invalid_request_error"))

    @app.exception_handler(rag.RagError)
    async def rag_error(_: Request, exc: rag.RagError) -> JSONResponse:
        return reply(500, error_body(redact(str(exc)), "server_error"))

    @app.exception_handler(Exception)
    async def crash(_: Request, exc: Exception) -> JSONResponse:
        return reply(500, error_body(INTERNAL, "server_error"))


def is_loopback(host: str) -> bool:
    """localhost, 127.x.x.x or ::1 (with or without brackets)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


class HostCheck:
    """ASGI middleware against DNS rebinding and cross-site requests: 403 unless the Host header names
    this machine (or an `allowed` host), and an Origin header, if sent, names one too.

    A page on evil.example whose name the attacker re-points at 127.0.0.1 reaches a loopback server
    with `Host: evil.example`: without an API key (`any_host` False) only loopback and `allowed` names
    are served. The Origin check holds with a key too: a browser page from a foreign site is refused.
    """

    def __init__(self, app, allowed: Iterable[str] = (), any_host: bool = False) -> None:
        self.app, self.any_host = app, any_host
        self.allowed = {name.lower().strip("[]") for name in allowed}

    def ours(self, host: str | None) -> bool:
        return host is not None and (is_loopback(host) or host.lower().strip("[]") in self.allowed)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        refusal = None
        if not self.any_host and not self.ours(_host_name(headers.get("host", ""))):
            refusal = "this server answers only requests addressed to localhost (Host header); see --allow-host"
        elif "origin" in headers and not self.ours(_host_name(headers["origin"], url=True)):
            refusal = "requests from web pages of other sites are refused (Origin header); see --allow-host"
        if refusal is None:
            return await self.app(scope, receive, send)
        body = error_body(refusal, "invalid_request_error", None, "forbidden_host")
        await JSONResponse(body, status_code=403)(scope, receive, send)


def _host_name(value: str, url: bool = False) -> str | None:
    """The host name in a Host header ("evil.example:8000", "[::1]:80") or an Origin; None if unreadable."""
    try:
        return urlsplit(value if url else f"//{value}").hostname
    except ValueError:
        return None


class BodyLimit:
    """ASGI middleware: read the whole request body, at most `max_bytes`, before the app runs; else 413."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = Headers(scope=scope).get("content-length", "")
        too_big = declared.isdigit() and int(declared) > self.max_bytes
        body, more = b"", True
        while more and not too_big:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            too_big = len(body) > self.max_bytes
        if too_big:
            error = error_body(f"request body over {self.max_bytes} bytes", "invalid_request_error", None, "too_large")
            return await JSONResponse(error, status_code=413)(scope, receive, send)
        replay = [{"type": "http.request", "body": body, "more_body": False}]

        async def replayed():
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)

"""The `rag` commands that serve the index to other programs and to the browser: serve, ui, mcp.

Thin over rag/serve (HTTP with the web app, MCP on stdio), which loads only when one of these runs.
Registered on the app by rag/cli/main.py, which passes its `_open` (settings -> Index).
"""

from __future__ import annotations

import socket
import webbrowser
from collections.abc import Callable
from typing import Annotated

import typer

import rag
from rag.cli.common import EmbedOpt, IndexOpt, KOpt, LlmOpt, PresetOpt, TidyCommand, err, guard

HostOpt = Annotated[str, typer.Option("--host", help="Address to listen on (off loopback needs --api-key).")]
PortOpt = Annotated[int, typer.Option("--port", help="Port to listen on (0: any free port).", min=0, max=65535)]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key", help="Require this key: a Bearer header, or once in the app (env RAG_API_KEY).", show_default=False
    ),
]
MaxTokensOpt = Annotated[int, typer.Option("--max-tokens", help="Default answer length, in tokens.", min=1)]
AllowHostOpt = Annotated[
    list[str] | None,
    typer.Option("--allow-host", help="Also answer requests for this host name (Host/Origin); repeatable."),
]
CollectionOpt = Annotated[
    str | None, typer.Option("--collection", "-c", help="What the model 'rag' searches (default: all collections).")
]


def register(app: typer.Typer, open_index: Callable, examples: dict[str, str]) -> None:
    def command(fn: Callable) -> Callable:
        return app.command(cls=TidyCommand, epilog=examples.get(fn.__name__))(guard(fn))

    def run(index, embed_model, llm, preset, k, host, port, api_key, max_tokens, allow_host, collection, browser):
        from rag.serve import http as server  # FastAPI/uvicorn load only for these commands

        idx, s = open_index(index, embed_model, llm, preset, k)
        key = api_key or s.api_key
        server.check_bind(host, key)  # before minutes of model loading, not after
        if not idx.exists:
            raise rag.IndexNotFound(f"no index at {idx.path}", "run `rag index FOLDER` first")
        if browser and port and not _free(host, port):
            err.print(f"Port {port} is taken: using another one.", markup=False)
            port = 0
        err.print(f"Loading the models for {idx.path}…", markup=False)

        def ready(url: str) -> None:
            err.print(
                f"Serving the app at {url}/ and an OpenAI-compatible API at {url}/v1. Ctrl-C stops.", markup=False
            )
            if browser and not webbrowser.open(f"{url}/"):
                err.print(f"No browser could be started here: open {url}/ yourself.", markup=False)

        options = dict(k=s.k, max_tokens=max_tokens, allowed_hosts=allow_host or (), collection=collection)
        server.serve(idx, host=host, port=port, api_key=key, on_ready=ready, **options)

    def server(browser: bool, doc: str) -> Callable:
        """The serve command, or with `browser` the ui command: the same options."""

        def command(
            index: IndexOpt = None,
            embed_model: EmbedOpt = None,
            llm: LlmOpt = None,
            preset: PresetOpt = None,
            k: KOpt = None,
            host: HostOpt = rag.DEFAULT_HOST,
            port: PortOpt = rag.DEFAULT_PORT,
            api_key: ApiKeyOpt = None,
            max_tokens: MaxTokensOpt = rag.DEFAULT_MAX_TOKENS,
            allow_host: AllowHostOpt = None,
            collection: CollectionOpt = None,
        ) -> None:
            run(index, embed_model, llm, preset, k, host, port, api_key, max_tokens, allow_host, collection, browser)

        command.__doc__ = doc
        return command

    for name, browser, doc in [
        (
            "serve",
            False,
            "Serve the index: the web app at / and an OpenAI-compatible HTTP API (chat, embeddings, search).",
        ),
        ("ui", True, "Start `rag serve` and open the web app in your browser (ask, check citations, search, status)."),
    ]:
        app.command(name, cls=TidyCommand, epilog=examples.get(name))(guard(server(browser, doc)))

    @command
    def mcp(
        index: IndexOpt = None,
        embed_model: EmbedOpt = None,
        llm: LlmOpt = None,
        preset: PresetOpt = None,
        k: KOpt = None,
        max_tokens: Annotated[int, typer.Option("--max-tokens", help="Longest answer of `ask`, in tokens.", min=1)] = (
            rag.DEFAULT_MAX_TOKENS
        ),
    ) -> None:
        """Run an MCP server on stdio for editors and agents (tools: search, get_chunk, get_document, ask, status)."""
        from rag.serve import mcp as mcp_server  # the MCP SDK loads only for this command

        idx, s = open_index(index, embed_model, llm, preset, k)
        mcp_server.run_stdio(idx, k=s.k, max_tokens=max_tokens)


def _free(host: str, port: int) -> bool:
    """Whether `port` on `host` can be listened on now."""
    with socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET) as probe:
        try:
            probe.bind((host.strip("[]"), port))
        except OSError:
            return False
    return True

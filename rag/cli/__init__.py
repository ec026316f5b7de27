"""The `rag` command line: a thin typer layer over the public API in `rag`.

main (the app: index, ask, chat, search, status, serve, mcp, doctor), docs (docs, rm, show, config, log),
eval (`rag eval`), common (shared options, help formatting, the one error handler), progress (index
progress and reports), config (settings: flag > env > config file > default), history (the question
log), doctor (set-up checks). Only this layer reads the environment and prints.
"""

from rag.cli.main import app

__all__ = ["app"]

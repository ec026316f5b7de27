"""Serving the public API to other programs: an OpenAI-compatible HTTP server (http, with openai for the
wire format and requests for request checks) and an MCP server (mcp), both on serving's model workers
(worker: one model call at a time, in order). Adapters: they use only what `rag` exports.
"""

"""`rag mcp` end to end: the real `rag mcp` command spawned over stdio and driven by the official MCP SDK
client (list tools, search, fetch by id, ask, status). Real MiniLM, real SmolLM2, real LanceDB."""

from __future__ import annotations

import asyncio
import json
import os
import select
import subprocess
import sys

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from typer.testing import CliRunner

import rag
from rag.cli import app

TOOLS = {"search", "get_chunk", "get_document", "ask", "status"}


@pytest.fixture
def index_dir(tmp_path, docs, embedder):
    index = rag.open_index(tmp_path / "idx", embed_model=embedder)
    index.add(docs)
    return index.path


def server(index_dir, minilm_path, smollm2_path, home) -> StdioServerParameters:
    cli = ["-c", "from rag.cli import app; app()", "mcp", "--index", str(index_dir)]
    cli += ["--embed-model", str(minilm_path), "--llm", str(smollm2_path), "-k", "2", "--max-tokens", "48"]
    # the stdio client passes only a minimal environment on: keep the server offline and its home private
    return StdioServerParameters(command=sys.executable, args=cli, env={"RAG_HOME": str(home), "HF_HUB_OFFLINE": "1"})


async def conversation(params: StdioServerParameters) -> dict:
    """One MCP session: every call the test checks, in the order a client would make them."""
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        seen = {"init": await session.initialize(), "tools": (await session.list_tools()).tools}
        seen["search"] = await session.call_tool("search", {"query": "Where is the spare key hidden?"})
        chunk_id = seen["search"].structured_content["results"][0]["chunk_id"]
        seen["chunk"] = await session.call_tool("get_chunk", {"chunk_id": chunk_id})
        path = seen["search"].structured_content["results"][0]["path"]
        seen["document"] = await session.call_tool("get_document", {"path": path})
        seen["missing"] = await session.call_tool("get_chunk", {"chunk_id": "no-such-chunk"})
        seen["ask"] = await session.call_tool("ask", {"question": "Where is the spare key hidden?"})
        seen["status"] = await session.call_tool("status", {})
        return seen


def test_mcp_server_lists_tools_searches_fetches_and_answers(index_dir, minilm_path, smollm2_path, tmp_path):
    seen = asyncio.run(conversation(server(index_dir, minilm_path, smollm2_path, tmp_path / "home")))
    assert seen["init"].server_info.name == "rag"
    tools = {t.name: t for t in seen["tools"]}
    assert set(tools) == TOOLS and all(t.description for t in tools.values())
    assert tools["search"].input_schema["required"] == ["query"]

    hits = seen["search"].structured_content["results"]
    assert not seen["search"].is_error and len(hits) == 2  # -k 2 from the command line
    assert hits[0]["path"].endswith("house.md") and "flowerpot" in hits[0]["text"]
    assert "flowerpot" in seen["search"].content[0].text  # the same result as text, for clients without structure

    chunk = seen["chunk"].structured_content
    assert (chunk["chunk_id"], chunk["text"], chunk["path"]) == (hits[0]["chunk_id"], hits[0]["text"], hits[0]["path"])
    document = seen["document"].structured_content
    assert document["total_chunks"] >= 1 and hits[0]["chunk_id"] in {c["chunk_id"] for c in document["chunks"]}

    missing = seen["missing"].content[0].text
    assert seen["missing"].is_error and "no chunk with id 'no-such-chunk' in the index" in missing
    assert str(index_dir) not in missing  # no local path leaves the server

    answer = seen["ask"].structured_content
    assert "flowerpot" in answer["answer"].lower()
    assert any(s["path"].endswith("house.md") for s in answer["sources"]) and len(answer["sources"]) == 2

    status = seen["status"].structured_content
    assert (status["documents"], status["dim"]) == (3, 384) and status["collections"]["default"]["documents"] == 3


def test_mcp_command_without_an_index_fails_with_one_clear_line(tmp_path, minilm_path):
    run = CliRunner().invoke(app, ["mcp", "--index", str(tmp_path / "none"), "--embed-model", str(minilm_path)])
    assert run.exit_code == 1 and "no index at" in run.output


def test_mcp_server_answers_lines_it_cannot_take_with_json_rpc_errors(index_dir, minilm_path, smollm2_path, tmp_path):
    """The SDK drops such lines silently (a client waited 120 s for a reply); each gets an error at once."""
    params = server(index_dir, minilm_path, smollm2_path, tmp_path / "home")
    env = os.environ | params.env
    with subprocess.Popen(
        [params.command, *params.args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    ) as process:

        def reply(line: str, timeout: float = 60) -> dict:
            process.stdin.write(line.encode() + b"\n")
            process.stdin.flush()
            ready, _, _ = select.select([process.stdout], [], [], timeout)
            assert ready, f"no reply to {line!r}"
            return json.loads(process.stdout.readline())

        init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        assert reply(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}))["result"]
        process.stdin.write(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')

        def search(request_id: int, query: str) -> str:
            arguments = {"name": "search", "arguments": {"query": query}}
            return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": arguments})

        not_json = reply("{not json", timeout=10)
        lone = reply(search(2, "key LONE").replace("LONE", "\\ud800"), timeout=10)  # a lone surrogate
        not_rpc = reply('{"id": 3, "hello": "world"}', timeout=10)
        found = reply(search(4, "Where is the spare key hidden?"))  # still serving
        process.stdin.close()
        assert process.wait(60) == 0
    assert not_json["id"] is None and not_json["error"]["code"] == -32700
    assert lone["id"] == 2 and lone["error"]["code"] == -32602 and "Unicode" in lone["error"]["message"]
    assert not_rpc["id"] == 3 and not_rpc["error"]["code"] == -32600
    assert "flowerpot" in found["result"]["content"][0]["text"]

"""`rag mcp` end to end: the real `rag mcp` command spawned over stdio and driven by the official MCP SDK
client (list tools, search, fetch by id, ask, status). Real MiniLM, real SmolLM2, real LanceDB."""

from __future__ import annotations

import asyncio
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

    assert seen["missing"].is_error and "no chunk with id 'no-such-chunk'" in seen["missing"].content[0].text

    answer = seen["ask"].structured_content
    assert "flowerpot" in answer["answer"].lower()
    assert any(s["path"].endswith("house.md") for s in answer["sources"]) and len(answer["sources"]) == 2

    status = seen["status"].structured_content
    assert (status["documents"], status["dim"]) == (3, 384) and status["collections"]["default"]["documents"] == 3


def test_mcp_command_without_an_index_fails_with_one_clear_line(tmp_path, minilm_path):
    run = CliRunner().invoke(app, ["mcp", "--index", str(tmp_path / "none"), "--embed-model", str(minilm_path)])
    assert run.exit_code == 1 and "no index at" in run.output

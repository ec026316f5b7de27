"""`rag serve` end to end: the real app on uvicorn on a free loopback port, called with the official
openai client and plain HTTP. Real MiniLM embeddings, real SmolLM2 answers, real LanceDB."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing, contextmanager
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import uvicorn
from conftest import make_pdf
from typer.testing import CliRunner

import rag
from rag.cli import app as cli_app
from rag.serve.http import check_bind, create_app, serve
from rag.serve.worker import ModelWorker

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "Where is the spare key hidden?"
KEY = "s3cret-key"


@pytest.fixture(scope="module")
def index(tmp_path_factory, embedder, smollm2):
    """House notes and a recipe in collection "default", a two-page PDF manual in "manuals"."""
    docs, manuals = tmp_path_factory.mktemp("docs"), tmp_path_factory.mktemp("manuals")
    (docs / "house.md").write_text(
        "# House notes\n\n## Keys\n\nThe spare key is hidden under the blue flowerpot on the back porch.\n\n"
        "## Wifi\n\nThe wifi password is written on the fridge calendar.\n"
    )
    (docs / "recipes.txt").write_text("Grandma's pancake recipe: two eggs, one cup of flour, one cup of milk.\n")
    make_pdf(manuals / "manual.pdf", ["The boiler reset button is red.", "Bleed the radiators every October."])
    idx = rag.open_index(tmp_path_factory.mktemp("idx") / "index", embed_model=embedder, llm=smollm2)
    idx.add(docs)
    idx.add(manuals, collection="manuals")
    return idx


@contextmanager
def running(app):
    """Run `app` on uvicorn in a thread, on a free loopback port; yields the base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def url(index):
    with running(create_app(index, max_tokens=48)) as base:
        yield base


@pytest.fixture
def client(url):
    with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120) as c:
        yield c


@pytest.fixture
def http(url):
    with httpx.Client(base_url=url, timeout=120) as c:
        yield c


def ask(client, question=QUESTION, model="rag", **options):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}], **options)


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert code is None or error["code"] == code
    return error


def test_chat_completion_answers_from_the_index_with_sources(client):
    completion = ask(client, max_tokens=48)
    assert "flowerpot" in completion.choices[0].message.content.lower()
    sources = completion.model_extra["sources"]
    assert any(s["path"].endswith("house.md") for s in sources)
    assert [s["n"] for s in sources] == list(range(1, len(sources) + 1))
    assert {"chunk_id", "page", "heading", "snippet", "score", "location", "cited"} <= set(sources[0])
    assert completion.usage.completion_tokens > 0 and completion.choices[0].finish_reason in ("stop", "length")


def test_streamed_answer_is_the_same_answer_and_ends_with_sources(client):
    stream = ask(client, max_tokens=48, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.rstrip() == ask(client, max_tokens=48).choices[0].message.content  # greedy: same answer
    assert "flowerpot" in text.lower()
    with_sources = [c for c in chunks if (c.model_extra or {}).get("sources")]
    assert len(with_sources) == 1 and with_sources[0].choices[0].finish_reason in ("stop", "length")
    assert any(s["path"].endswith("house.md") for s in with_sources[0].model_extra["sources"])
    assert chunks[-1].usage.completion_tokens > 0 and len({c.id for c in chunks}) == 1


def test_the_readme_openai_example_runs(url, capsys):
    readme = (ROOT / "README.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "from openai import OpenAI" in b)
    namespace: dict = {}
    exec(compile(code.replace("http://127.0.0.1:8000", url), "README.md", "exec"), namespace)
    namespace["client"].close()
    printed = capsys.readouterr().out
    assert "flowerpot" in printed.lower() and "\n[1] house.md › House notes  (score " in printed
    assert len(namespace["vector"]) == 384


def test_model_rag_colon_collection_answers_from_that_collection_only(client):
    completion = ask(client, "What color is the boiler reset button?", model="rag:manuals", max_tokens=8)
    sources = completion.model_extra["sources"]
    assert sources and all(s["collection"] == "manuals" and s["path"].endswith("manual.pdf") for s in sources)
    assert {s["page"] for s in sources} == {1, 2}


def test_embeddings_are_the_index_embedders_vectors(client, embedder):
    texts = ["The spare key is under the flowerpot.", "Bleed the radiators every October."]
    packed = client.embeddings.create(model="rag", input=texts)  # the client asks for base64 by default
    vectors = np.array([d.embedding for d in packed.data])
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert np.allclose(vectors, embedder.embed(texts), atol=1e-5)
    floats = client.embeddings.create(model="rag", input=texts, encoding_format="float")
    assert np.allclose([d.embedding for d in floats.data], vectors, atol=1e-6)
    one = client.embeddings.create(model="rag:manuals", input=texts[1])
    assert len(one.data) == 1 and np.allclose(one.data[0].embedding, vectors[1], atol=1e-5)
    assert packed.usage.prompt_tokens > one.usage.prompt_tokens > 0


def test_models_health_search_and_chunk_by_id(client, http):
    assert [m.id for m in client.models.list()] == ["rag", "rag:default", "rag:manuals"]
    assert client.models.retrieve("rag:manuals").id == "rag:manuals"
    assert http.get("/health").json() == {"status": "ok"}
    hits = http.post("/v1/search", json={"query": "What color is the boiler reset button?", "k": 3}).json()["data"]
    assert hits[0]["path"].endswith("manual.pdf") and hits[0]["page"] == 1 and "red" in hits[0]["text"]
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    chunk = http.get(f"/v1/chunks/{hits[0]['chunk_id']}").json()
    assert (chunk["text"], chunk["page"], chunk["collection"]) == (hits[0]["text"], 1, "manuals")
    only = http.post("/v1/search", json={"query": "boiler", "collection": "default"}).json()["data"]
    assert only and all(h["collection"] == "default" for h in only)


def test_bad_requests_get_openai_shaped_errors(client, http):
    chat = "/v1/chat/completions"
    assert assert_error(http.post(chat, json={"model": "rag"}), 400)["param"] == "messages"
    assert_error(http.post(chat, content=b"{not json", headers={"content-type": "application/json"}), 400)
    no_user = {"model": "rag", "messages": [{"role": "system", "content": "Be brief."}]}
    assert assert_error(http.post(chat, json=no_user), 400)["param"] == "messages"
    too_long = {"model": "rag", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}
    assert assert_error(http.post(chat, json=too_long), 400)["param"] == "max_tokens"
    assert_error(http.post("/v1/embeddings", json={"model": "rag", "input": [1, 2, 3]}), 400)
    assert_error(http.post("/v1/embeddings", json={"model": "rag", "input": "x" * (2 << 20)}), 413, "too_large")
    assert_error(http.post("/v1/search", json={"query": "boiler", "collection": "nope"}), 404, "model_not_found")
    assert_error(http.get("/v1/chunks/no-such-chunk"), 404, "not_found")
    assert_error(http.get("/v1/no-such-endpoint"), 404)
    with pytest.raises(openai.NotFoundError) as raised:
        ask(client, model="gpt-4o")
    assert raised.value.code == "model_not_found" and raised.value.param == "model"


def test_a_burst_of_concurrent_requests_all_succeed(client, http):
    def streamed() -> str:
        return "".join(c.choices[0].delta.content or "" for c in ask(client, max_tokens=12, stream=True)).rstrip()

    jobs = [
        lambda: ask(client, max_tokens=12).choices[0].message.content,
        streamed,
        lambda: len(client.embeddings.create(model="rag", input=["boiler", "pancakes"]).data),
        lambda: http.post("/v1/search", json={"query": "pancake recipe", "k": 1}).json()["data"][0]["path"],
        lambda: ask(client, max_tokens=12).choices[0].message.content,
        lambda: http.get("/v1/models").json()["data"][0]["id"],
    ]
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = [f.result(timeout=300) for f in [pool.submit(job) for job in jobs]]
    answers = [results[0], results[1], results[4]]
    assert answers[0] == answers[1] == answers[2] and "flowerpot" in answers[0]  # queued, not garbled
    assert results[2] == 2 and results[3].endswith("recipes.txt") and results[5] == "rag"


def test_the_worker_runs_jobs_one_at_a_time_and_stops_abandoned_streams():
    worker, running_now, most, produced = ModelWorker(), [0], [0], []

    def job(n: int) -> int:
        running_now[0] += 1
        most[0] = max(most[0], running_now[0])
        time.sleep(0.01)
        running_now[0] -= 1
        return n

    def endless():
        while True:
            produced.append(len(produced))
            yield produced[-1]

    async def scenario() -> tuple[list[int], list[int], int]:
        results = await asyncio.gather(*(worker.run(job, n) for n in range(8)))
        async with aclosing(worker.stream(endless)) as items:
            first = [await anext(items) for _ in range(3)]
        # queued behind the endless stream: it runs only because closing the stream freed the worker
        await asyncio.wait_for(worker.run(job, 0), timeout=30)
        return list(results), first, len(produced)

    results, first, produced_then = asyncio.run(scenario())
    assert results == list(range(8)) and most[0] == 1  # in order, never two at once
    assert first == [0, 1, 2] and len(produced) == produced_then and worker.pending == 0
    worker.close()


def test_a_client_leaving_mid_stream_does_not_jam_the_server(http, client):
    body = {"model": "rag", "messages": [{"role": "user", "content": QUESTION}], "stream": True, "max_tokens": 48}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data:"))
    assert "flowerpot" in ask(client, max_tokens=48).choices[0].message.content.lower()


def test_api_key_is_required_when_set(index):
    with running(create_app(index, api_key=KEY)) as base, httpx.Client(base_url=base) as http:
        assert http.get("/health").status_code == 200  # liveness needs no key
        missing = http.get("/v1/models")
        assert_error(missing, 401, "invalid_api_key")
        assert missing.headers["www-authenticate"] == "Bearer"
        assert_error(http.get("/v1/models", headers={"Authorization": "Bearer wrong"}), 401, "invalid_api_key")
        assert http.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        with openai.OpenAI(base_url=f"{base}/v1", api_key="wrong", max_retries=0) as wrong:
            with pytest.raises(openai.AuthenticationError):
                wrong.embeddings.create(model="rag", input="boiler")
        with openai.OpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0) as right:
            assert len(right.embeddings.create(model="rag", input="boiler").data[0].embedding) == 384


def test_serving_beyond_loopback_needs_an_api_key(index, tmp_path, minilm_path):
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_bind(host, None)
    for host in ("0.0.0.0", "192.168.1.20", "::", "my-laptop.local"):
        with pytest.raises(rag.RagError, match="without an API key"):
            check_bind(host, None)
        check_bind(host, KEY)
    with pytest.raises(rag.RagError, match="without an API key"):
        serve(index, host="0.0.0.0", port=0)  # refused before anything listens
    with pytest.raises(rag.IndexNotFound):
        serve(rag.open_index(tmp_path / "missing"), port=0)
    args = ["serve", "--host", "0.0.0.0", "--index", str(index.path), "--embed-model", str(minilm_path)]
    run = CliRunner().invoke(cli_app, args)
    assert run.exit_code == 1 and "without an API key" in run.output


def test_embeddings_accept_any_model_name_and_report_the_real_one(client, embedder):
    """OpenAI clients (LangChain and others) send "text-embedding-3-small" by default."""
    reply = client.embeddings.create(model="text-embedding-3-small", input="The boiler reset button is red.")
    assert np.allclose(reply.data[0].embedding, embedder.embed(["The boiler reset button is red."])[0], atol=1e-5)
    assert reply.model.endswith("all-MiniLM-L6-v2") and str(Path.home()) not in reply.model


def test_a_default_collection_is_what_rag_and_unscoped_searches_mean(index):
    with running(create_app(index, collection="manuals")) as base, httpx.Client(base_url=base, timeout=60) as http:
        hits = http.post("/v1/search", json={"query": "spare key flowerpot", "k": 3}).json()["data"]
        assert hits and all(h["collection"] == "manuals" for h in hits)
        wider = http.post("/v1/search", json={"query": "spare key", "k": 3, "collection": "default"}).json()["data"]
        assert wider[0]["path"].endswith("house.md")

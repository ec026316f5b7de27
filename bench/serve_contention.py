"""Search latency of `rag serve` while a long answer is being generated, against an idle server.

    RAG_TEST_MODELS=~/.cache/rag-test-models .venv/bin/python bench/serve_contention.py [--searches 20]

Indexes a small folder into a temp dir (MiniLM), serves it with SmolLM2 on uvicorn on 127.0.0.1 (a free
port, in this process), then measures POST /v1/search latency twice, side by side in one run: on the idle
server, and while one streamed chat generates up to --max-tokens tokens. The --searches searches start
one every --interval seconds, each on its own thread (open loop: a slow one doesn't delay the next).
Prints p50/p95 of each phase and their ratio. Runs against whichever `rag` is imported, so the same
script measures an older checkout (PYTHONPATH=that/checkout). Not a test; it never leaves loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import rag

rag.tune_cpu(os.environ.get("RAG_BLAS", "auto"))  # before mlx loads, as the CLI does

MODELS = Path(os.environ.get("RAG_TEST_MODELS", Path.home() / ".cache" / "rag-test-models"))
QUESTION = "Where is the spare key hidden? Explain every detail at length."  # SmolLM2 answers it, long
NOTES = """# House notes

## Keys
The spare key is hidden under the blue flowerpot on the back porch. A second key is with the neighbour.

## Wifi
The wifi password is written on the fridge calendar. The router is in the hall cupboard.

## Heating
The boiler reset button is red. Bleed the radiators every October, starting upstairs.

## Garden
Water the tomatoes every evening in summer. The hose is behind the shed; the tap sticks in winter.
"""


def build_index(folder: Path) -> rag.Index:
    docs = folder / "docs"
    docs.mkdir()
    (docs / "house.md").write_text(NOTES)
    (docs / "recipes.txt").write_text("Grandma's pancake recipe: two eggs, one cup of flour, one cup of milk.\n")
    embedder = rag.MLXEmbedder(str(MODELS / "all-MiniLM-L6-v2"))
    llm = rag.MLXGenerator(str(MODELS / "SmolLM2-135M-Instruct"))
    index = rag.open_index(folder / "index", embed_model=embedder, llm=llm)
    index.add(docs)
    return index


def start(app):
    """uvicorn on a free loopback port in a daemon thread; returns (server, base URL)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 300
    while not server.started:
        if time.monotonic() > deadline:
            sys.exit("the server did not start")
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


def searches(base: str, n: int, interval: float) -> list[float]:
    """Latency (s) of `n` searches, one started every `interval` seconds whether or not the last is done."""
    import httpx

    def one(i: int) -> float:
        with httpx.Client(base_url=base, timeout=900) as http:
            t = time.perf_counter()
            response = http.post("/v1/search", json={"query": f"where is the spare key {i}", "k": 3})
            response.raise_for_status()
            return time.perf_counter() - t

    with ThreadPoolExecutor(n) as pool:
        futures = []
        for i in range(n):
            futures.append(pool.submit(one, i))
            time.sleep(interval)
        return [f.result() for f in futures]


class LongChat(threading.Thread):
    """One streamed chat; `first` is set at its first content token, `tokens`/`seconds` when it ends."""

    def __init__(self, base: str, max_tokens: int) -> None:
        super().__init__(daemon=True)
        self.base, self.max_tokens = base, max_tokens
        self.first, self.tokens, self.seconds, self.finish = threading.Event(), 0, 0.0, None

    def run(self) -> None:
        import httpx

        body = {"model": "rag", "messages": [{"role": "user", "content": QUESTION}], "stream": True}
        body |= {"max_tokens": self.max_tokens, "stream_options": {"include_usage": True}}
        started = time.perf_counter()
        with httpx.Client(base_url=self.base, timeout=900) as http:
            with http.stream("POST", "/v1/chat/completions", json=body) as response:
                for line in response.iter_lines():
                    data = line.removeprefix("data: ")
                    if not line.startswith("data: ") or data == "[DONE]":
                        continue
                    chunk = json.loads(data)
                    if chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                        self.first.set()
                    if chunk.get("choices") and chunk["choices"][0].get("finish_reason"):
                        self.finish = chunk["choices"][0]["finish_reason"]
                    if chunk.get("usage"):
                        self.tokens = chunk["usage"]["completion_tokens"]
        self.seconds = time.perf_counter() - started
        self.first.set()


def percentiles(latencies: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return statistics.median(latencies), cuts[94]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--searches", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between search starts")
    parser.add_argument("--max-tokens", type=int, default=400)
    args = parser.parse_args()
    from rag.serve.http import create_app

    with tempfile.TemporaryDirectory() as tmp:
        index = build_index(Path(tmp))
        server, base = start(create_app(index, max_tokens=args.max_tokens))
        searches(base, 4, 0.0)  # warm-up: LanceDB caches, the HTTP stack
        idle = searches(base, args.searches, args.interval)
        chat = LongChat(base, args.max_tokens)
        chat.start()
        chat.first.wait(300)
        fired = time.perf_counter()
        busy = searches(base, args.searches, args.interval)
        searched_s = time.perf_counter() - fired
        still_generating = chat.is_alive()
        chat.join(900)
        server.should_exit = True
    (p50, p95), (b50, b95) = percentiles(idle), percentiles(busy)
    print(f"rag {Path(rag.__file__).parent}  {args.searches} searches, one every {args.interval} s")
    print(f"idle server            search p50 {p50 * 1000:8.1f} ms   p95 {p95 * 1000:8.1f} ms")
    print(f"during a long answer   search p50 {b50 * 1000:8.1f} ms   p95 {b95 * 1000:8.1f} ms")
    print(f"ratio busy/idle        p50 {b50 / p50:.1f}x   p95 {b95 / p95:.1f}x")
    print(
        f"the answer: {chat.tokens} tokens in {chat.seconds:.1f} s (finish {chat.finish}); "
        f"all searches done {searched_s:.1f} s after its first token, "
        f"{'while it was still generating' if still_generating else 'after it had ended'}"
    )


if __name__ == "__main__":
    main()

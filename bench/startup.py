"""Where a `rag` command's start-up time goes: wall time of whole commands (median of N runs, each a
fresh process) and, in one process, the cost of the imports and loads they pay for.

    python bench/startup.py [--runs 5] [--embed-model PATH]

It indexes examples/docs into a temporary index first (not timed). Run it on a quiet machine: other
processes on the 2 cores change every number here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAG = str(Path(sys.executable).parent / "rag")


def wall(args: list[str], runs: int, env: dict) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([RAG, *args], env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def breakdown(index: str, embed_model: str, env: dict) -> str:
    code = f"""
import time
t = [time.perf_counter()]
import rag.cli; t.append(time.perf_counter())
import lancedb; t.append(time.perf_counter())
import rag; idx = rag.open_index({index!r}); idx.status(); t.append(time.perf_counter())
import mlx_embeddings.utils; t.append(time.perf_counter())
e = rag.MLXEmbedder({embed_model!r}); e.embed(["warm"]); t.append(time.perf_counter())
names = ["import rag.cli", "import lancedb", "open index + status", "import mlx_embeddings", "load MiniLM + 1 embed"]
print("; ".join(f"{{n}} {{b - a:.2f}} s" for n, a, b in zip(names, t, t[1:])))
"""
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--embed-model", default=str(Path.home() / ".cache/rag-test-models/all-MiniLM-L6-v2"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = os.environ | {"RAG_HOME": tmp, "RAG_INDEX": f"{tmp}/idx", "HF_HUB_OFFLINE": "1"}
        subprocess.run(
            [RAG, "index", "-q", "--embed-model", args.embed_model, str(ROOT / "examples/docs")], env=env, check=True
        )
        commands = [["--help"], ["--version"], ["config"], ["status"], ["docs"], ["search", "spare key"]]
        print(f"{'command':<22}{'median s':>9}   ({args.runs} runs each, fresh process)")
        for command in commands:
            print(f"rag {' '.join(command):<18}{wall(command, args.runs, env):>9.2f}")
        print("in one process:", breakdown(f"{tmp}/idx", args.embed_model, env).strip())


if __name__ == "__main__":
    main()

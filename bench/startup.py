"""Where a `rag` command's start-up time goes: wall time of whole commands (median of N runs, each a
fresh process) and, in one process, the cost of the imports and loads they pay for.

    python bench/startup.py [--runs 5] [--embed-model PATH] [--before CHECKOUT] [--index-folder DIR]

It indexes examples/docs into a temporary index first (not timed). With --before (a checkout of an
earlier commit, e.g. `git worktree add /tmp/old REV`), every command also runs with that code, in the
same run, alternating, and the ratio is printed. --index-folder also times `rag index DIR` into a fresh
index (the whole ingest path: load, chunk, embed, write), --index-runs times each. Run it on a quiet machine: other
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
# What the `rag` script runs, with the code taken from PYTHONPATH (for --before) when it is set.
CLI = [sys.executable, "-c", "import sys; from rag.cli import app; sys.argv[0] = 'rag'; app()"]


def once(args: list[str], env: dict) -> float:
    started = time.perf_counter()
    # From a neutral folder: `python -c` puts the working folder first on sys.path, before PYTHONPATH.
    subprocess.run([*CLI, *args], env=env, capture_output=True, check=True, cwd=env["RAG_HOME"])
    return time.perf_counter() - started


def walls(args: list[str], runs: int, envs: list[dict]) -> list[float]:
    """Median wall time of each env's code, runs interleaved so machine noise hits both alike."""
    times: list[list[float]] = [[] for _ in envs]
    for _ in range(runs):
        for i, env in enumerate(envs):
            times[i].append(once(args, env))
    return [statistics.median(t) for t in times]


def breakdown(index: str, embed_model: str, env: dict) -> str:
    code = f"""
import time
t = [time.perf_counter()]
import rag.cli; t.append(time.perf_counter())
import rag; idx = rag.open_index({index!r}); idx.status(); idx.documents(); t.append(time.perf_counter())
import lancedb; t.append(time.perf_counter())
import mlx_embeddings.utils; t.append(time.perf_counter())
e = rag.MLXEmbedder({embed_model!r}); e.embed(["warm"]); t.append(time.perf_counter())
idx.search("spare key", mode="text"); t.append(time.perf_counter())
names = ["import rag.cli", "status + docs (catalog)", "import lancedb", "import mlx_embeddings",
         "load MiniLM + 1 embed", "open table + text search"]
print("; ".join(f"{{n}} {{b - a:.2f}} s" for n, a, b in zip(names, t, t[1:])))
"""
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", help="a checkout of an earlier commit to time side by side")
    parser.add_argument("--index-folder", help="also time `rag index` of this folder into a fresh index")
    parser.add_argument("--index-runs", type=int, default=3)
    parser.add_argument("--embed-model", default=str(Path.home() / ".cache/rag-test-models/all-MiniLM-L6-v2"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = os.environ | {"RAG_HOME": tmp, "RAG_INDEX": f"{tmp}/idx", "HF_HUB_OFFLINE": "1"}
        subprocess.run(
            [RAG, "index", "-q", "--embed-model", args.embed_model, str(ROOT / "examples/docs")], env=env, check=True
        )
        commands = [
            ["--help"],
            ["--version"],
            ["config"],
            ["status"],
            ["docs"],
            ["collection", "list"],
            ["search", "spare key"],
        ]
        envs = [env] + ([env | {"PYTHONPATH": str(Path(args.before).resolve())}] if args.before else [])
        heading = f"{'before s':>9}{'now s':>9}{'now/before':>12}" if args.before else f"{'median s':>9}"
        print(f"{'command':<24}{heading}   (median of {args.runs} runs each, fresh process)")
        for command in commands:
            got = walls(command, args.runs, envs)
            cells = f"{got[1]:>9.2f}{got[0]:>9.2f}{got[0] / got[1]:>12.2f}" if args.before else f"{got[0]:>9.2f}"
            print(f"rag {' '.join(command):<20}{cells}")
        if args.index_folder:
            fresh = iter(range(10**6))

            def index_once(env: dict) -> float:
                where = f"{tmp}/fresh-{next(fresh)}"
                return once(
                    ["index", "-q", "--index", where, "--embed-model", args.embed_model, args.index_folder], env
                )

            runs: list[list[float]] = [[] for _ in envs]
            for _ in range(args.index_runs):
                for i, e in enumerate(envs):
                    runs[i].append(index_once(e))
            got = [statistics.median(r) for r in runs]
            cells = f"{got[1]:>9.2f}{got[0]:>9.2f}{got[0] / got[1]:>12.2f}" if args.before else f"{got[0]:>9.2f}"
            print(f"{'rag index FOLDER':<24}{cells}   ({args.index_runs} runs each, fresh index)")
        print("in one process:", breakdown(f"{tmp}/idx", args.embed_model, env).strip())


if __name__ == "__main__":
    main()

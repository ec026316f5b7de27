"""Index throughput of a local run vs `rag index --ray` with 1 and 2 workers, side by side in one run:

    python bench/cluster.py [FOLDER] --embed-model ~/.cache/rag-test-models/all-MiniLM-L6-v2 [--repeat 3]

Each run is a fresh `rag index --json` process into a new index (a first index: everything is loaded,
chunked and embedded), so the wall time includes what a user waits for: Python start-up and, with
--ray, starting a local Ray cluster and its workers (each loads the embedder). The runs alternate
(local, ray 1, ray 2, local, …) so the machine's noise falls on all of them; medians are printed.
Printed per setting: wall seconds, chunks/s over the wall time, chunks/s of the run itself (the
report's, from planning to the last commit), each as a ratio to the local run; then the scaling
efficiency: chunks/s with 2 workers / (2 x chunks/s with 1 worker). Last, the overhead on a small
folder (examples/docs): the wall time of --ray minus that of a local run.
Default FOLDER: ../shared/data/tldr/en/osx (370 tldr pages). Run it alone: other load skews it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FOLDER = ROOT.parent / "shared" / "data" / "tldr" / "en" / "osx"
SETTINGS = {"local": [], "ray, 1 worker": ["--ray", "--workers", "1"], "ray, 2 workers": ["--ray", "--workers", "2"]}


def rag_index(folder: Path, index: Path, embed_model: str, extra: list[str]) -> tuple[float, dict]:
    cmd = [sys.executable, "-c", "from rag.cli import app; app()", "index", str(folder), "--index", str(index)]
    cmd += ["--embed-model", embed_model, "--json", *extra]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return wall, json.loads(done.stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, nargs="?", default=DEFAULT_FOLDER)
    p.add_argument("--embed-model", required=True)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--small", type=Path, default=ROOT / "examples" / "docs")
    args = p.parse_args()
    if not args.folder.is_dir():
        sys.exit(f"no folder {args.folder} (see ../shared/data/README.md)")

    work = Path(tempfile.mkdtemp(prefix="rag-bench-cluster-"))
    runs: dict[str, list[tuple[float, dict]]] = {name: [] for name in SETTINGS}
    for r in range(args.repeat):
        for name, extra in SETTINGS.items():
            runs[name].append(
                rag_index(args.folder, work / f"{name}-{r}".replace(" ", "").replace(",", ""), args.embed_model, extra)
            )
            print(f"  run {r + 1} {name}: {runs[name][-1][0]:.1f} s", file=sys.stderr)

    files = len(list(args.folder.rglob("*.md")))
    chunks = runs["local"][0][1]["chunks"]
    print(f"\n{args.folder} ({files} files, {chunks} chunks), first index, median of {args.repeat}\n")
    print(f"{'setting':<16}{'wall s':>8}{'chunks/s (wall)':>17}{'× local':>9}{'chunks/s (run)':>16}{'× local':>9}")
    medians = {}
    for name, results in runs.items():
        assert all(rep["chunks"] == chunks and not rep["failed"] for _, rep in results), name
        wall = statistics.median(w for w, _ in results)
        rate = statistics.median(rep["chunks_per_second"] for _, rep in results)
        medians[name] = (wall, chunks / wall, rate)
    base = medians["local"]
    for name, (wall, wall_rate, rate) in medians.items():
        print(f"{name:<16}{wall:>8.1f}{wall_rate:>17.1f}{wall_rate / base[1]:>9.2f}{rate:>16.1f}{rate / base[2]:>9.2f}")
    one, two = medians["ray, 1 worker"], medians["ray, 2 workers"]
    print(
        f"\nscaling efficiency, 2 workers / (2 × 1 worker): wall {two[1] / (2 * one[1]):.2f}, run {two[2] / (2 * one[2]):.2f}"
    )

    small = {name: [] for name in ("local", "ray, 1 worker")}
    for r in range(args.repeat):
        for name in small:
            wall, _ = rag_index(
                args.small,
                work / f"small-{name}-{r}".replace(" ", "").replace(",", ""),
                args.embed_model,
                SETTINGS[name],
            )
            small[name].append(wall)
    local, ray = (statistics.median(v) for v in small.values())
    print(f"small folder ({args.small.name}): local {local:.1f} s, --ray {ray:.1f} s: Ray adds {ray - local:.1f} s")
    print(f"(cpus: {os.cpu_count()})")


if __name__ == "__main__":
    main()

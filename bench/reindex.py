"""Incremental indexing times on a real folder, each step a fresh `rag index` process (as a user runs it):

    python bench/reindex.py ../shared/data/tldr/en --embed-model ~/.cache/rag-test-models/all-MiniLM-L6-v2 [--json]

1. first index of the folder (into a new index, or --index DIR to reuse one);
2. re-index with nothing changed (median of --repeat runs; target < 3 s for 7,425 files);
3. re-index after touching N files (mtime changed, content the same: hashed, not re-embedded);
4. re-index after editing N files (one line appended: re-chunked, only new chunks embedded).
The folder is copied to a temp dir first, so the shared data is never modified.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def rag_index(folder: Path, index: Path, embed_model: str) -> tuple[float, dict]:
    cmd = [sys.executable, "-c", "from rag.cli import app; app()", "index", str(folder)]
    cmd += ["--index", str(index), "--embed-model", embed_model, "--json"]
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, json.loads(out.stdout)


def counts(report: dict) -> str:
    keys = ("added", "updated", "renamed", "removed", "unchanged", "failed")
    return ", ".join(f"{len(report[k])} {k}" for k in keys) + f"; {report['embedded']} chunks embedded"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--embed-model", required=True)
    p.add_argument("--index", type=Path, help="reuse this index folder (its first run is then step 1)")
    p.add_argument("--touch", type=int, default=10)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    folder = work / args.folder.name
    shutil.copytree(args.folder, folder)
    index = args.index or work / "index"
    files = sorted(f for f in folder.rglob("*") if f.is_file() and not f.name.startswith("."))
    rows = []

    seconds, report = rag_index(folder, index, args.embed_model)
    rows.append(("first index", seconds, report))
    nochange = [rag_index(folder, index, args.embed_model) for _ in range(args.repeat)]
    rows.append(
        (f"nothing changed (median of {args.repeat})", statistics.median(s for s, _ in nochange), nochange[-1][1])
    )
    step = max(1, len(files) // args.touch)
    picked = files[::step][: args.touch]
    for f in picked:
        st = f.stat()
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    rows.append((f"{len(picked)} files touched", *rag_index(folder, index, args.embed_model)))
    for f in picked:
        with f.open("a") as fh:
            fh.write("\nEdited for the re-index benchmark.\n")
    rows.append((f"{len(picked)} files edited", *rag_index(folder, index, args.embed_model)))

    if args.json:
        print(json.dumps([{"step": s, "seconds": t, "report": r} for s, t, r in rows], indent=2))
    else:
        print(f"folder: {args.folder} ({len(files)} files); embedder: {args.embed_model}")
        for step_name, seconds, report in rows:
            print(f"{step_name:<32}{seconds:>9.2f} s   {counts(report)}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

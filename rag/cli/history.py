"""The question log behind `rag log`: one JSON line per answered question in RAG_HOME/log.jsonl.

`rag ask` appends (unless the `log` setting is off); `rag log` reads. Each line holds the time, the
question, the answer text, the cited sources' locations, the chat model and the index. A line that
cannot be parsed (a crash mid-write) is skipped when reading, and the rest of the log still reads.
This module writes nothing else and reads no settings: callers pass RAG_HOME.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import rag

LOG_FILE = "log.jsonl"


def log_path(home: Path) -> Path:
    return Path(home) / LOG_FILE


def append(home: Path, answer: rag.Answer, llm: str, index: Path) -> None:
    """Add one answered question to the log (the folder is created if needed)."""
    cited = sorted(set(answer.citations))
    entry = {
        "time": time.time(),
        "question": answer.question,
        "answer": answer.text,
        "refused": answer.refused,
        "sources": [answer.sources[n - 1].location for n in cited if 0 < n <= len(answer.sources)],
        "llm": llm,
        "index": str(index),
    }
    path = log_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(entry, ensure_ascii=False) + "\n")


def read(path: Path) -> list[dict]:
    """Every readable entry, oldest first ([] when there is no log)."""
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries

"""Speed-ups that reach into other packages' internals, each allowed only over the code it was written for.

Three of them (measured in bench/): the fused BERT attention and GELU on the CPU (ingest/embed.py swaps
the `__class__` of mlx-embeddings' `BertSelfAttention`), the one-matmul RoPE for CPU decoding
(rag/_rope.py replaces mlx's `nn.RoPE` modules), and the reranker's shared prompt prefix
(rag/rerank.py fills mlx-lm `KVCache` fields itself). Each names the class it depends on, in the file
that defines it, and the digests of the versions it was tested with (the class's lines, so any
changed line no longer matches). `allowed(name)` compares the installed
code — read from its files, without importing it — and is False, with the reason logged
once, when the code is not the one expected: the caller then takes its plain path (same results, slower).

`report()` gives every fast path's state for `rag status` and `rag doctor`. This module patches nothing.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import logging
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("rag.fastpaths")


@dataclass(frozen=True)
class FastPath:
    name: str
    what: str  # what it speeds up
    distribution: str  # the pip distribution that holds the code it depends on
    file: str  # that code's file, from the site-packages folder: its first part is the importable package
    qualname: str  # the class it depends on
    digests: frozenset[str]  # syntax-tree digests of the versions it was tested with


FAST_PATHS = {
    p.name: p
    for p in (
        FastPath(
            "bert-attention",
            "embedding: fused softmax and GELU in BERT models (MiniLM) on the CPU",
            "mlx-embeddings",
            "mlx_embeddings/models/bert.py",
            "BertSelfAttention",
            frozenset({"458320861f1339bb"}),  # mlx-embeddings 0.1.0
        ),
        FastPath(
            "decode-rope",
            "generation: rotary embedding as one matmul per decoded token on the CPU",
            "mlx",
            "mlx/nn/layers/positional_encoding.py",
            "RoPE",
            frozenset({"0145f3b45ab90f1f"}),  # mlx 0.32.4
        ),
        FastPath(
            "rerank-shared-prefix",
            "reranking: the instruction and query prefilled once per query, not once per passage",
            "mlx-lm",
            "mlx_lm/models/cache.py",
            "KVCache",
            frozenset({"7c3bb184a4f0e0d7"}),  # mlx-lm 0.32.2
        ),
    )
}


def digest(file: str, qualname: str) -> str:
    """Digest of the top-level class or function `qualname` in `file` ("package/sub/module.py"): its lines
    from `class`/`def` to the next top-level statement, blank lines and trailing spaces left out."""
    package, _, rest = file.partition("/")
    spec = importlib.util.find_spec(package)  # a top-level package: located, not imported
    if spec is None or not spec.submodule_search_locations:
        raise LookupError(f"package {package} is not installed")
    lines = (Path(next(iter(spec.submodule_search_locations))) / rest).read_text(encoding="utf-8").splitlines()
    start = re.compile(rf"(class|def|async def) {re.escape(qualname)}\b")
    at = next((i for i, line in enumerate(lines) if start.match(line)), None)
    if at is None:
        raise LookupError(f"{qualname} not found in {file}")
    body = [lines[at]]
    for line in lines[at + 1 :]:
        if line and not line[0].isspace() and not line.startswith((")", "#")):
            break
        if line.strip():
            body.append(line.rstrip())
    return hashlib.blake2b("\n".join(body).encode(), digest_size=8).hexdigest()


@functools.cache
def check(name: str) -> tuple[bool, str]:
    """(allowed, why) for the fast path `name`; logs why once when it is not allowed."""
    path = FAST_PATHS[name]
    try:
        found = digest(path.file, path.qualname)
    except (OSError, SyntaxError, LookupError, ImportError) as exc:
        ok, why = False, f"cannot read {path.qualname} of {path.distribution}: {exc}"
    else:
        ok = found in path.digests
        if ok:
            why = f"{path.qualname} of {path.distribution} is the tested code"
        else:
            version = importlib.metadata.version(path.distribution)  # only now: finding it scans site-packages
            why = f"{path.distribution} {version}: {path.qualname} differs from the tested code (digest {found})"
    if not ok:
        log.warning("fast path %s is off, the plain path is used: %s", name, why)
    return ok, why


def allowed(name: str) -> bool:
    """True if the fast path `name` may patch the installed code."""
    return check(name)[0]


def report() -> list[tuple[str, bool, str]]:
    """(name, allowed, why) of every fast path. Where MLX has a GPU they are not used at all (the caller
    says so); this says whether the installed code would let them."""
    return [(name, *check(name)) for name in FAST_PATHS]

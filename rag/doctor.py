"""`rag doctor`: check this machine's set-up, one line per check, before anyone files a bug.

    platform     OS, machine, Python
    mlx          MLX version and backend (Metal / CUDA / CPU)
    blas         on Linux: whether the optimized BLAS was loaded before MLX (float32 speed on the CPU)
    fast paths   which speed-ups over other packages' internals match the code they were tested with
    embedder, chat model, reranker
                 where each spec came from (flag / env / config file / default), where it was found (a
                 folder, the model-hub cache; offline, a model missing from the cache is named instead of
                 downloaded), that it loads, and its quantization and dtype once loaded
    speed        a ~2-second micro-benchmark: embedding chunks/s, prefill and decode tokens/s
    index        opens, schema version, built with the configured embedder, full-text and vector
                 indexes present, files that failed to index
    disk         free space where the model cache lives

`check_setup` yields `SetupCheck`s as they finish (loading models takes a while); the CLI prints them.
A check with `ok=False` is a failure (exit code 1); `ok=None` is information only.
This module reads no settings itself: the caller (the CLI) passes the resolved index and models and
where each setting came from.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rag
from ingest.cpu import blas_loaded, cpu_status
from ingest.errors import RagError
from ingest.models import read_config
from ingest.state import index_location
from ingest.store import SCHEMA_VERSION, VECTOR_INDEX_MIN_ROWS, Store
from rag.defaults import DEFAULT_EMBED_MODEL, DEFAULT_RERANK_MODEL

BENCH_SECONDS = 2.0
# The default models take ~3.3 GB (Qwen3-4B-4bit 2.3, Qwen3-Embedding-0.6B-8bit 0.65, the reranker 0.35).
MIN_FREE_GB = 4.0


@dataclass(frozen=True)
class _Setup:
    index: Path | str
    llm: str
    embed_model: str | None
    rerank_model: str | None
    storage_options: dict[str, str] | None = None


@dataclass(frozen=True)
class SetupCheck:
    """One line of `rag doctor`."""

    name: str
    ok: bool | None  # True passed, False failed, None information only
    detail: str
    hint: str = ""


def check_setup(
    *,
    index: Path | str,
    llm: str,
    embed_model: str | None = None,
    rerank_model: str | None = None,
    origins: dict[str, str] | None = None,
    rerank: bool | None = None,
    storage_options: dict[str, str] | None = None,
) -> Iterator[SetupCheck]:
    """Every check, in order, each yielded as it finishes.

    Args:
        index: the index folder (or object-store URI, with its `storage_options`) to check.
        llm, embed_model, rerank_model: model specs (hub id or folder). embed_model None: the index's own,
            else DEFAULT_EMBED_MODEL; rerank_model None: DEFAULT_RERANK_MODEL.
        origins: where each setting came from ("flag", "env RAG_LLM", ...), shown next to each model;
            keys index, llm, embed_model, rerank_model. Default: all "given".
        rerank: check the reranker too (None: only where reranking is on by default, i.e. MLX has a GPU,
            or a reranker is named).
    """
    origins = {"index": "given", "llm": "given", "embed_model": "given", "rerank_model": "given"} | (origins or {})
    settings = _Setup(index_location(index), llm, embed_model, rerank_model, storage_options)
    yield _platform()
    yield _mlx()
    if sys.platform.startswith("linux"):
        yield _blas_check()
    yield _fast_paths_check()
    embed_spec, embed_origin = _embed_spec(settings, origins)
    models: dict[str, Any] = {}
    yield _model("embedder", embed_spec, embed_origin, _load_embedder, models)
    yield _model("chat model", settings.llm, origins["llm"], _load_generator, models)
    if rerank or (rerank is None and (settings.rerank_model or _gpu_backend())):
        spec = settings.rerank_model or DEFAULT_RERANK_MODEL
        yield _model("reranker", spec, origins["rerank_model"], _load_reranker, models)
    yield from _speed(models)
    yield from _index(settings.index, models.get("embedder"), settings.storage_options)
    yield _disk(
        [s for s in (embed_spec, settings.llm) if not Path(s).expanduser().is_dir()],
    )


# -- the machine ----------------------------------------------------------------------------------------


def _platform() -> SetupCheck:
    return SetupCheck("platform", None, f"{platform.system()} {platform.machine()}, Python {platform.python_version()}")


def _gpu_backend() -> str:
    import mlx.core as mx

    if mx.metal.is_available():
        return "Metal"
    cuda = getattr(mx, "cuda", None)
    if cuda is not None and cuda.is_available():
        return "CUDA"
    return ""


def _mlx() -> SetupCheck:
    try:
        import mlx.core as mx
    except Exception as exc:  # noqa: BLE001 - a broken install: say what it is
        hint = "on Linux install mlx[cpu] (plain `mlx` has no runtime there); on a Mac, `pip install mlx`"
        return SetupCheck("mlx", False, f"cannot import mlx: {exc}", hint)
    backend = _gpu_backend()
    detail = f"{getattr(mx, '__version__', '?')}, {backend or 'CPU'} backend"
    if backend:
        return SetupCheck("mlx", True, detail)
    return SetupCheck("mlx", True, detail + "; no GPU: answers are slower, and reranking is off by default")


def _blas_check() -> SetupCheck:
    state = cpu_status()
    if blas_loaded():
        return SetupCheck("blas", True, state)
    return SetupCheck(
        "blas",
        False,
        state,
        "`pip install mkl`, and call rag.tune_cpu() before mlx is imported (float32 on the CPU is ~15x faster)",
    )


def _fast_paths_check() -> SetupCheck:
    from ingest import fastpaths
    from ingest.models import mlx_on_cpu

    if not mlx_on_cpu():
        return SetupCheck("fast paths", None, "not used: MLX has a GPU")
    found = fastpaths.report()
    off = [f"{name}: {why}" for name, ok, why in found if not ok]
    if not off:
        return SetupCheck("fast paths", True, ", ".join(name for name, _, _ in found))
    hint = "the plain code runs instead (slower, same results); the tested versions are pinned in pyproject.toml"
    return SetupCheck("fast paths", None, "off: " + "; ".join(off), hint)


# -- models ---------------------------------------------------------------------------------------------


def _embed_spec(settings: _Setup, origins: dict[str, str]) -> tuple[str, str]:
    if settings.embed_model:
        return settings.embed_model, origins["embed_model"]
    try:
        return Store.open(settings.index, settings.storage_options).meta["embedder"]["id"], "the index's own"
    except Exception:  # noqa: BLE001 - none, unreadable or unreachable: the index check reports it
        pass
    return DEFAULT_EMBED_MODEL, "default"


def _model(name: str, spec: str, origin: str, load: Callable[[str], Any], models: dict[str, Any]) -> SetupCheck:
    where = _where(spec)
    if where.startswith("missing"):
        return SetupCheck(name, False, f"{spec} ({origin}): {where}", _offline_hint(name, spec))
    started = time.perf_counter()
    try:
        obj, folder, model = load(spec)
    except RagError as exc:
        return SetupCheck(name, False, f"{spec} ({origin}): {exc.message}", exc.hint)
    except Exception as exc:  # noqa: BLE001 - doctor reports, never crashes
        return SetupCheck(name, False, f"{spec} ({origin}): {type(exc).__name__}: {exc}"[:300])
    models[name] = obj
    seconds = time.perf_counter() - started
    return SetupCheck(name, True, f"{spec} ({origin}, {where}); loads in {seconds:.1f}s; {_weights(folder, model)}")


def _where(spec: str) -> str:
    path = Path(spec).expanduser()
    if path.is_dir():
        return "local folder"
    if spec.startswith(("/", ".", "~")):
        return "missing: no such folder"
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(repo_id=spec, local_files_only=True))
        if (folder / "config.json").is_file() and any(folder.glob("*.safetensors")):
            return "in the model-hub cache"
    except Exception:  # noqa: BLE001 - not cached (or a bad id): decided below
        pass
    if _offline():
        return "missing: not in the local model-hub cache, and the hub is off (HF_HUB_OFFLINE=1)"
    return "not cached yet: downloaded now"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _offline_hint(name: str, spec: str) -> str:
    flag = {"embedder": "--embed-model", "chat model": "--llm", "reranker": "--rerank-model"}[name]
    if Path(spec).expanduser().is_absolute() or spec.startswith((".", "~")):
        return f"point {flag} at an existing model folder"
    return f"run `rag doctor` once online to download '{spec}', or point {flag} at a local model folder"


def _load_embedder(spec: str):
    embedder = rag.MLXEmbedder(spec)
    return embedder, embedder._folder, embedder._load()


def _load_generator(spec: str):
    generator = rag.MLXGenerator(spec)
    return generator, _folder_of(spec), generator.model


def _load_reranker(spec: str):
    reranker = rag.MLXReranker(spec)
    return reranker, _folder_of(spec), reranker.model


def _folder_of(spec: str) -> Path:
    from ingest.models import resolve_model

    return resolve_model(spec, kind="model", env_var="", flag="")


def _weights(folder: Path, model) -> str:
    """ "4-bit (group 64) weights, float32 scales" or "float32 weights": the config's quantization and
    the dtypes the loaded parameters actually have."""
    from mlx.utils import tree_flatten

    config = read_config(folder)
    quant = config.get("quantization") or config.get("quantization_config") or {}
    dtypes: dict[str, set[str]] = {"weight": set(), "scales": set()}
    params: list[tuple[str, Any]] = tree_flatten(model.parameters())  # type: ignore[assignment]
    for name, value in params:
        kind = name.rsplit(".", 1)[-1]
        if kind in dtypes:
            dtypes[kind].add(str(value.dtype).removeprefix("mlx.core."))
    floats = sorted(d for d in dtypes["weight"] if d != "uint32") or ["none"]
    if quant.get("bits"):
        scales = "/".join(sorted(dtypes["scales"])) or "?"
        return f"{quant['bits']}-bit (group {quant.get('group_size', '?')}) weights, {scales} scales, other {'/'.join(floats)}"
    return f"{'/'.join(floats)} weights (not quantized)"


# -- speed ----------------------------------------------------------------------------------------------

_BENCH_TEXT = (
    "The boiler in the cellar is serviced every October. Its reset button is red and sits behind the front "
    "panel; hold it for five seconds after a power cut. The spare key hangs on the hook beside the meter. "
)


def _speed(models: dict[str, Any]) -> Iterator[SetupCheck]:
    embedder = models.get("embedder")
    if embedder is not None:
        texts = [f"{n}. {_BENCH_TEXT * 3}" for n in range(16)]
        done, started = 0, time.perf_counter()
        while done == 0 or time.perf_counter() - started < BENCH_SECONDS:
            embedder.embed(texts)
            done += len(texts)
        rate = done / (time.perf_counter() - started)
        yield SetupCheck("embed speed", None, f"{rate:.1f} chunks/s (~100-token chunks, {BENCH_SECONDS:.0f}s)")
    generator = models.get("chat model")
    if generator is not None:
        messages = [
            {
                "role": "user",
                "content": _BENCH_TEXT * 4
                + "\nRetell the text above in your own words, in detail, sentence by sentence.",
            }
        ]
        last, first = None, None  # decode is timed from the first token, after the prefill
        for piece in generator.stream(messages, max_tokens=256):
            last, first = piece, first or time.perf_counter()
            if time.perf_counter() - first > BENCH_SECONDS and piece.generated_tokens >= 2:
                break
        if last is not None:
            yield SetupCheck(
                "llm speed",
                None,
                f"prefill {last.prompt_tps:.0f} tokens/s ({last.prompt_tokens}-token prompt), "
                f"decode {last.generation_tps:.1f} tokens/s ({last.generated_tokens} tokens)",
            )


# -- the index --------------------------------------------------------------------------------------------


def _index(path: Path | str, embedder: rag.Embedder | None, options: dict[str, str] | None) -> Iterator[SetupCheck]:
    try:
        if not Store.exists(path, options):
            yield SetupCheck("index", None, f"none yet at {path}", "run `rag index FOLDER` to create it")
            return
        store = Store.open(path, options)
    except RagError as exc:
        yield SetupCheck("index", False, f"{path}: {exc.message}", exc.hint)
        return
    except (OSError, ValueError) as exc:  # object storage unreachable, credentials refused
        line = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        yield SetupCheck(
            "index", False, f"{path}: cannot reach it: {line}", "check the [storage] options and AWS_* variables"
        )
        return
    documents, chunks, _ = store.summary()
    yield SetupCheck("index", True, f"{path}: schema {SCHEMA_VERSION}, {documents} documents, {chunks} chunks")
    have = store.meta["embedder"]
    if embedder is not None:
        same = have.get("fingerprint") == embedder.fingerprint
        detail = f"built with {have.get('id')} (dim {have.get('dim')})"
        hint = "use the index's own --embed-model, or index into a new --index" if not same else ""
        yield SetupCheck("provenance", same, detail + ("" if same else f", not the configured {embedder.id}"), hint)
    if chunks:
        text = store.has_text_index()
        yield SetupCheck(
            "text index",
            text,
            "full-text index present" if text else "missing",
            "" if text else "run `rag index` again",
        )
        vector = store._vector_index_name() is not None
        if chunks >= VECTOR_INDEX_MIN_ROWS:
            yield SetupCheck(
                "vector index", vector, "ANN index present" if vector else "missing", "run `rag index` again"
            )
        else:
            yield SetupCheck(
                "vector index", None, f"exact search (an ANN index is built from {VECTOR_INDEX_MIN_ROWS:,} chunks)"
            )
    failures = store.failures()
    if failures:
        yield SetupCheck(
            "failed files", None, f"{len(failures)} files could not be indexed", "`rag status` lists them with reasons"
        )


# -- disk -----------------------------------------------------------------------------------------------


def _disk(hub_specs: list[str]) -> SetupCheck:
    from huggingface_hub import constants

    where = Path(constants.HF_HUB_CACHE)
    probe = where
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free_gb = shutil.disk_usage(probe).free / 1e9
    detail = f"{free_gb:.1f} GB free for the model cache ({where})"
    uncached = [s for s in hub_specs if not _where(s).startswith("in the")]
    if uncached and free_gb < MIN_FREE_GB:
        return SetupCheck("disk", False, detail, f"the default models need ~3.3 GB: free at least {MIN_FREE_GB:.0f} GB")
    return SetupCheck("disk", True, detail)

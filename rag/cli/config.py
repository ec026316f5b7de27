"""Settings for the CLI: where the index lives and which models to use, resolved in ONE place.

Precedence: CLI flag > environment variable (RAG_*) > config file (RAG_HOME/config.toml) > default.
Only this module reads the environment for settings; the library API takes explicit arguments.

    RAG_HOME         all user state (default: the platform's user data dir, e.g. ~/.local/share/rag)
    RAG_INDEX        index folder, or an object-store URI such as s3://bucket/prefix (default: RAG_HOME/index)
    RAG_LLM          chat model, hub id or local folder
    RAG_EMBED_MODEL  embedding model, hub id or local folder (an existing index remembers its own)
    RAG_PRESET       "default" or "small"
    RAG_PDF_PASSWORD password tried on encrypted PDFs
    RAG_OCR          "auto" (default), "force" or "off": on-device OCR of scanned pages and images
    RAG_API_KEY      key `rag serve` requires (`Authorization: Bearer <key>`); needed off loopback
    RAG_RERANK_MODEL reranker (hub id or local folder); reranking is on by default only with a GPU
    RAG_LOG          "off" stops the question log (rag log); on by default
    RAG_BLAS         "off": keep MLX's bundled BLAS; a path: load that BLAS library (default: MKL if installed)

An index in object storage takes LanceDB's storage options from the config file's [storage] table
(e.g. aws_endpoint = "http://127.0.0.1:9000" and allow_http = "true" for an S3-compatible server);
credentials and endpoints may also come from the AWS_*, GOOGLE_* and AZURE_* variables LanceDB reads.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import rag


@dataclass(frozen=True)
class Settings:
    home: Path
    index: Path | str  # a folder, or an object-store URI (a string)
    llm: str
    embed_model: str | None  # None: the index's own, or DEFAULT_EMBED_MODEL for a new index
    k: int
    pdf_password: str | None = None
    api_key: str | None = None  # rag serve: the key clients must send
    rerank_model: str | None = None  # None: the default reranker, used only where reranking is on
    log: bool = True  # keep the question log (rag log)
    ocr: str = rag.DEFAULT_OCR  # rag index/watch: OCR of scanned pages and images (one of rag.OCR_MODES)
    storage_options: dict[str, str] = field(default_factory=dict)  # LanceDB's, for an index in object storage


def default_home(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("RAG_HOME"):
        return Path(env["RAG_HOME"]).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("rag", appauthor=False))


def resolve(
    *,
    index: str | Path | None = None,
    llm: str | None = None,
    embed_model: str | None = None,
    k: int | None = None,
    preset: str | None = None,
    rerank_model: str | None = None,
    ocr: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Combine flags (the arguments), environment, config file and defaults into Settings."""
    env = os.environ if env is None else env
    home = default_home(env)
    file = _read_config(home / "config.toml")

    def pick(flag, env_name: str, key: str, default=None):
        return _pick(flag, env_name, key, env, file, default)[0]

    preset_name = pick(preset, "RAG_PRESET", "preset", rag.DEFAULT_PRESET)
    if preset_name not in rag.PRESETS:
        raise rag.RagError(f"unknown preset '{preset_name}'", f"choose one of: {', '.join(rag.PRESETS)}")
    return Settings(
        home=home,
        index=rag.index_location(pick(index, "RAG_INDEX", "index", home / "index")),
        llm=pick(llm, "RAG_LLM", "llm", rag.PRESETS[preset_name]),
        embed_model=pick(embed_model, "RAG_EMBED_MODEL", "embed_model"),
        k=int(pick(k, "RAG_K", "k", rag.DEFAULT_K)),
        pdf_password=pick(None, "RAG_PDF_PASSWORD", "pdf_password"),
        api_key=pick(None, "RAG_API_KEY", "api_key"),
        rerank_model=pick(rerank_model, "RAG_RERANK_MODEL", "rerank_model"),
        log=_truthy(pick(None, "RAG_LOG", "log", True)),
        ocr=_ocr_mode(pick(ocr, "RAG_OCR", "ocr", rag.DEFAULT_OCR)),
        storage_options=_storage_options(file.get("storage", {})),
    )


def _storage_options(table) -> dict[str, str]:
    if not isinstance(table, dict):
        raise rag.RagError(
            "[storage] in the config file must be a table", 'e.g. [storage] then aws_region = "eu-west-1"'
        )
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in table.items()}


def _ocr_mode(value) -> str:
    mode = str(value).strip().lower()
    if mode not in rag.OCR_MODES:
        choices = ", ".join(rag.OCR_MODES)
        raise rag.RagError(f"unknown OCR mode '{value}'", f"choose {choices} (--ocr, RAG_OCR or ocr = …)")
    return mode


def _truthy(value) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() not in ("0", "off", "false", "no")


def origins(
    *,
    index: str | Path | None = None,
    llm: str | None = None,
    embed_model: str | None = None,
    k: int | None = None,
    preset: str | None = None,
    rerank_model: str | None = None,
    ocr: str | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Where each setting `resolve` would pick comes from: "flag", "env RAG_…", "config file" or
    "default" (for `rag doctor`, which says it next to each model)."""
    env = os.environ if env is None else env
    file = _read_config(default_home(env) / "config.toml")
    layers: dict[str, tuple[object, str]] = {"index": (index, "RAG_INDEX"), "llm": (llm, "RAG_LLM")}
    layers |= {"embed_model": (embed_model, "RAG_EMBED_MODEL")}
    layers |= {"rerank_model": (rerank_model, "RAG_RERANK_MODEL"), "k": (k, "RAG_K"), "ocr": (ocr, "RAG_OCR")}
    found = {key: _pick(flag, env_name, key, env, file)[1] for key, (flag, env_name) in layers.items()}
    if found["llm"] == "default" and (preset or env.get("RAG_PRESET") or file.get("preset")):
        found["llm"] = "preset"
    return found


def _pick(flag, env_name: str, key: str, env: Mapping[str, str], file: dict, default=None) -> tuple:
    """(value, origin) of one setting: the first set of flag > env > config file, else the default.
    The one place the precedence lives: `resolve` takes the value, `origins` the origin."""
    for value, origin in ((flag, "flag"), (env.get(env_name), f"env {env_name}"), (file.get(key), "config file")):
        if value not in (None, ""):
            return value, origin
    return default, "default"


def _read_config(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise rag.RagError(f"cannot read {path}: {exc}", "fix or delete the config file") from exc

"""Resolve a model spec (hub id or local folder) to a local folder, and prepare models for the CPU.

A spec that names an existing folder is used as is; one that looks like a path but does not exist is an
error at once (no network call); anything else is a model-hub id, fetched (or taken from the local cache)
with huggingface_hub. Every failure becomes one `ModelLoadError` that says which model and how to point
at a local folder. This module does not build model objects; embed.py and rag/generate.py do.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ingest.errors import ModelLoadError

_HUB_FILES = ["*.json", "*.safetensors", "*.py", "*.model", "*.tiktoken", "*.txt", "*.jsonl", "*.jinja"]


def resolve_model(spec: str, *, kind: str, env_var: str, flag: str) -> Path:
    """Return a local folder for `spec`; `kind`, `env_var`, `flag` only shape the error message."""
    hint = f"point {flag} or {env_var} at a local model folder, or download '{spec}' once while online"
    folder_hint = f"point {flag} or {env_var} at a folder holding the model's config.json, weights and tokenizer"
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"cannot load {kind} '{spec}': the folder has no config.json", folder_hint)
        return path.resolve()
    if _looks_like_path(spec):
        raise ModelLoadError(f"cannot load {kind} '{spec}': no such folder", folder_hint)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=spec, allow_patterns=_HUB_FILES))
    except Exception as exc:  # offline, unknown repo, bad id: all mean "can't get it from the hub"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelLoadError(
            f"cannot load {kind} '{spec}': not a local folder, and the model hub said: {reason}", hint
        ) from exc


def fingerprint(folder: Path) -> str:
    """A short id for a model's identity: its config plus the names and sizes of its weight files.

    The same model in two places (hub cache, a copied folder) gets the same fingerprint.
    """
    digest = hashlib.sha256((folder / "config.json").read_bytes())
    for weights in sorted(folder.glob("*.safetensors")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def load_failure(kind: str, spec: str, exc: BaseException, hint: str) -> ModelLoadError:
    """One ModelLoadError line for a loader's exception (mlx's "Missing 18 parameters: \n..." spans lines)."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    if len(reason) > 240:
        reason = reason[:239] + "…"
    return ModelLoadError(f"cannot load {kind} '{spec}': {reason}", hint)


def check_tokenizer(tokenizer, vocab_size: int, *, kind: str, spec: str) -> None:
    """Refuse a tokenizer that cannot be the model's: transformers builds one from tokenizer_config.json
    alone when tokenizer.json (or vocab.json + merges.txt) is missing, and it encodes all text to nothing."""
    ids = list(tokenizer.encode("Hello, world", add_special_tokens=False))
    hint = "the folder needs the model's own tokenizer files: tokenizer.json (or vocab.json and merges.txt)"
    if not ids:
        raise ModelLoadError(f"cannot load {kind} '{spec}': its tokenizer turns text into no tokens", hint)
    if vocab_size and max(ids) >= vocab_size:
        raise ModelLoadError(
            f"cannot load {kind} '{spec}': its tokenizer makes token ids beyond the model's vocabulary "
            f"({max(ids)} >= {vocab_size})",
            hint,
        )


def read_config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def mlx_has_gpu() -> bool:
    """True where MLX computes on a GPU by default: Metal (Apple silicon) or CUDA (mlx[cuda])."""
    import mlx.core as mx

    # Not mx.metal.is_available(): that is False under MLX's CUDA backend, whose default device is a GPU too.
    return mx.default_device().type == mx.DeviceType.gpu


def mlx_on_cpu() -> bool:
    """True where MLX computes on the CPU (no Metal or CUDA GPU). Callers decide by it: float32 weights
    (half precision and quantized scales get no BLAS there), the CPU kernels of ingest/fastpaths.py,
    one MLX stream per core, and reranking off by default (seconds per passage)."""
    return not mlx_has_gpu()


def cast_for_cpu(model) -> None:
    """On CPU, make float params float32 (4-bit weights stay packed; their scales become float32)."""
    import mlx.core as mx

    if mlx_on_cpu():
        model.set_dtype(mx.float32)


def _looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", ".", "~")) or spec.count("/") != 1 or os.sep != "/" and os.sep in spec

"""Text embeddings with an MLX model loaded by mlx-embeddings.

`Embedder` is the seam (one required method, `embed`); `MLXEmbedder` is the real implementation. Texts
are tokenized in bulk with the model's fast tokenizer, sorted by length and batched, each batch padded
only to its own longest text; on the CPU, neighbouring batches run at once on one MLX stream per core;
outputs are L2-normalised float32 numpy arrays in the input order.
Queries may get an instruction prefix (Qwen3-Embedding wants one; BERT-style models don't).
This module does not chunk, store or search.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ingest import _blas
from ingest.errors import ModelLoadError
from ingest.models import cast_for_cpu, fingerprint, read_config, resolve_model

_blas.preload()

DEFAULT_BATCH_TOKENS = 8192  # tokens per forward pass (batch rows x padded length)
DEFAULT_MAX_BATCH = 64
MAX_CPU_STREAMS = 4
QWEN3_QUERY_INSTRUCTION = "Given a question, retrieve passages from the user's documents that answer it"


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into L2-normalised vectors of a fixed dimension.

    An optional `query_prefix` attribute is prepended to search queries (Qwen3-Embedding's instruction).
    """

    id: str
    fingerprint: str
    dim: int
    max_tokens: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row L2-normalised."""
        ...

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character span of each token of `text`, without special tokens (used to size chunks)."""
        ...


class MLXEmbedder:
    """An mlx-embeddings model (BERT, XLM-R, ModernBERT, Qwen3-Embedding, ...) on MLX.

    Args:
        spec: hub id (e.g. "mlx-community/Qwen3-Embedding-0.6B-8bit") or a local folder.
        batch_tokens: upper bound on rows x padded length per forward pass. Default 8192.
    """

    def __init__(self, spec: str, batch_tokens: int = DEFAULT_BATCH_TOKENS) -> None:
        self._folder = resolve_model(spec, kind="embedding model", env_var="RAG_EMBED_MODEL", flag="--embed-model")
        config = read_config(self._folder)
        self.id = spec
        self.fingerprint = fingerprint(self._folder)
        self.model_type = config.get("model_type", "")
        self.max_tokens = _max_tokens(self._folder, config)
        self.batch_tokens = batch_tokens
        self.query_prefix = f"Instruct: {QWEN3_QUERY_INSTRUCTION}\nQuery:" if self.model_type == "qwen3" else ""
        self._local = threading.local()
        self._model = None  # weights load on first use: a re-index with nothing to embed never pays for them
        self._dim = 0

    def _load(self):
        if self._model is not None:
            return self._model
        try:
            from mlx_embeddings.utils import load

            model, wrapper = load(str(self._folder))
        except Exception as exc:
            raise ModelLoadError(
                f"cannot load embedding model '{self.id}': {exc}",
                "it must be an mlx-embeddings model folder (config.json, *.safetensors, tokenizer.json)",
            ) from exc
        cast_for_cpu(model)
        backend = wrapper._tokenizer.backend_tokenizer
        self._tok = _copy(backend)
        self._tok.no_padding()
        self._tok.no_truncation()
        self._embed_tok = _copy(backend)
        self._embed_tok.no_padding()
        self._embed_tok.enable_truncation(self.max_tokens)
        self._pad_id = wrapper._tokenizer.pad_token_id or 0
        self._model = model
        return model

    def _streams(self) -> list:
        """One MLX CPU stream per core on the CPU (each runs a batch on its own core, ~2x on 2 cores,
        identical results); the default stream where MLX has a GPU. MLX streams belong to the thread
        that made them, so each thread gets its own."""
        streams = getattr(self._local, "streams", None)
        if streams is None:
            import mlx.core as mx

            from ingest.models import needs_float32

            cores = min(os.cpu_count() or 1, MAX_CPU_STREAMS)
            streams = [mx.new_stream(mx.cpu) for _ in range(cores)] if needs_float32() else [None]
            self._local.streams = streams
        return streams

    @property
    def dim(self) -> int:
        if not self._dim:
            self._dim = int(self.embed(["probe"]).shape[1])
        return self._dim

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character span of each token of `text` (no special tokens); used by the chunker."""
        self._load()
        return self._tok.encode(text, add_special_tokens=False).offsets

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed documents/passages. Returns (len(texts), dim) float32, rows L2-normalised."""
        import mlx.core as mx

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        ids = [e.ids for e in self._embed_tok.encode_batch(list(texts))]
        order = np.argsort([len(x) for x in ids], kind="stable")
        streams = self._streams()
        batches = _batches([ids[i] for i in order], self.batch_tokens // len(streams))
        parts: list[np.ndarray] = []
        for start in range(0, len(batches), len(streams)):
            outs = []
            # Neighbouring (similar-length) batches run at once, one per CPU stream: one core each.
            for batch, stream in zip(batches[start : start + len(streams)], streams, strict=False):
                arr, mask = _pad(batch, self._pad_id)
                with mx.stream(stream) if stream is not None else nullcontext():
                    outs.append(model(mx.array(arr), attention_mask=mx.array(mask)).text_embeds.astype(mx.float32))
            mx.eval(*outs)
            parts.extend(np.array(o) for o in outs)
        out = np.concatenate(parts)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        result_rows = np.empty_like(out)
        result_rows[order] = out
        return result_rows


def _pad(batch: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad to the batch's own longest row; returns (ids, attention mask)."""
    width = max(len(x) for x in batch)
    arr = np.full((len(batch), width), pad_id, dtype=np.int32)
    mask = np.zeros((len(batch), width), dtype=np.int32)
    for row, x in enumerate(batch):
        arr[row, : len(x)] = x
        mask[row, : len(x)] = 1
    return arr, mask


def _batches(rows: list[list[int]], budget: int) -> list[list[list[int]]]:
    """Group length-sorted rows so rows x longest stays within `budget` tokens."""
    batches: list[list[list[int]]] = []
    current: list[list[int]] = []
    for row in rows:
        if current and (len(current) + 1) * len(row) > budget or len(current) >= DEFAULT_MAX_BATCH:
            batches.append(current)
            current = []
        current.append(row)
    if current:
        batches.append(current)
    return batches


def _max_tokens(folder: Path, config: dict) -> int:
    st = folder / "sentence_bert_config.json"
    if st.is_file():
        value = json.loads(st.read_text()).get("max_seq_length")
        if value:
            return int(value)
    return int(min(config.get("max_position_embeddings", 512), 8192))


def _copy(backend):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(backend.to_str())

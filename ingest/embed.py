"""Text embeddings with an MLX model loaded by mlx-embeddings.

`Embedder` is the seam (an ABC declaring every member the code uses; ingest/seams.py checks objects
against it); `MLXEmbedder` is the real implementation. Texts are tokenized in bulk with the model's fast
tokenizer, sorted by length and batched, each batch padded only to its own longest text; on the CPU,
neighbouring batches run at once on one MLX stream per core; outputs are L2-normalised float32 numpy
arrays in the input order.
On the CPU, BERT models get exact GELU and attention softmax built from fused multiply-adds (see
`_fast_cpu_bert`): MLX's CPU `exp`/`erf` are scalar and took ~60% of a forward pass; outputs agree with
the stock model to float32 rounding (cosine > 0.99999).
Queries may get an instruction prefix (Qwen3-Embedding wants one; BERT-style models don't). Qwen3-Embedding
texts end with <|endoftext|>, whose hidden state is the embedding (appended if the tokenizer doesn't).
This module does not chunk, store or search.
"""

from __future__ import annotations

import functools
import json
import math
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from ingest import fastpaths
from ingest.models import cast_for_cpu, check_tokenizer, fingerprint, load_failure, read_config, resolve_model

DEFAULT_BATCH_TOKENS = 8192  # tokens per forward pass (batch rows x padded length)
# On the CPU, smaller batches keep each layer's temporaries in cache (bench/embed_streams.py compares sizes).
DEFAULT_CPU_BATCH_TOKENS = 1024
DEFAULT_MAX_BATCH = 64
MAX_CPU_STREAMS = 4
QWEN3_QUERY_INSTRUCTION = "Given a question, retrieve passages from the user's documents that answer it"


class Embedder(ABC):
    """Anything that turns texts into L2-normalised vectors of a fixed dimension; subclass it to plug
    your own model into `rag.open_index(embed_model=...)`.

    Required: `embed` and `token_spans`, and the attributes `id` (a name, shown and recorded in the
    index), `fingerprint` (changes when the vectors would: the index refuses vectors of another one),
    `dim` and `max_tokens` (the longest text it embeds whole; chunks are sized below it). An attribute
    may be set in `__init__`, on the class, or be a property.
    Optional, with defaults here: `query_prefix` ("": prepended to search queries, for models trained
    with an instruction, like Qwen3-Embedding).

    Membership is by subclassing only: an object with the same members that does not subclass Embedder
    is refused (with a message naming what to do), because the optional members' defaults live here and
    the code reads them directly. Example:

        class Mine(rag.Embedder):
            id = fingerprint = "mine-v1"
            dim, max_tokens = 64, 256

            def embed(self, texts): ...        # (len(texts), 64) float32, rows L2-normalised
            def token_spans(self, text): ...   # [(start, end) of each token], e.g. of each word
    """

    id: str
    fingerprint: str
    dim: int
    max_tokens: int
    query_prefix: str = ""

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row L2-normalised."""

    @abstractmethod
    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character span of each token of `text`, without special tokens (used to size chunks)."""


class MLXEmbedder(Embedder):
    """An mlx-embeddings model (BERT, XLM-R, ModernBERT, Qwen3-Embedding, ...) on MLX.

    Args:
        spec: hub id (e.g. "mlx-community/Qwen3-Embedding-0.6B-8bit") or a local folder.
        batch_tokens: upper bound on rows x padded length per forward pass, split across the CPU
            streams. Default 8192 on a GPU, 1024 on the CPU.
    """

    def __init__(self, spec: str, batch_tokens: int | None = None) -> None:
        self._folder = resolve_model(spec, kind="embedding model", env_var="RAG_EMBED_MODEL", flag="--embed-model")
        config = read_config(self._folder)
        self.id = spec
        self.fingerprint = fingerprint(self._folder)
        self.model_type = config.get("model_type", "")
        self.max_tokens = _max_tokens(self._folder, config)
        self._vocab_size = int(config.get("vocab_size") or 0)
        self.batch_tokens = batch_tokens
        self.query_prefix = f"Instruct: {QWEN3_QUERY_INSTRUCTION}\nQuery:" if self.model_type == "qwen3" else ""
        self._local = threading.local()
        self._model = None  # weights load on first use: a re-index with nothing to embed never pays for them
        self._dim = 0
        self._eos_id: int | None = None  # appended to every text when the tokenizer doesn't (see _missing_eos)
        self.fast_cpu_kernels = False  # set on load when the BERT forward was switched to _fast_cpu_bert's ops
        self.cpu_streams: int | None = None  # CPU streams (cores) to use; None: one per core, at most MAX_CPU_STREAMS

    def _load(self):
        if self._model is not None:
            return self._model
        try:
            from mlx_embeddings.utils import load

            model, wrapper = load(str(self._folder))
        except Exception as exc:
            hint = "it must be an mlx-embeddings model folder (config.json, *.safetensors, tokenizer.json)"
            raise load_failure("embedding model", self.id, exc, hint) from exc
        check_tokenizer(wrapper, self._vocab_size, kind="embedding model", spec=self.id)
        cast_for_cpu(model)
        self.fast_cpu_kernels = _fast_cpu_bert(model)
        backend = wrapper.backend_tokenizer  # TokenizerWrapper forwards to the HF tokenizer
        self._tok = _copy(backend)
        self._tok.no_padding()
        self._tok.no_truncation()
        self._embed_tok = _copy(backend)
        self._embed_tok.no_padding()
        self._embed_tok.enable_truncation(self.max_tokens)
        self._eos_id = self._missing_eos(backend)
        if self._eos_id is not None:
            self._embed_tok.enable_truncation(self.max_tokens - 1)
        self._pad_id = wrapper.pad_token_id or 0
        self._model = model
        return model

    def _missing_eos(self, backend) -> int | None:
        """Qwen3-Embedding pools the hidden state of a final <|endoftext|>. Its tokenizer.json appends one
        only since June 2025; for a conversion made before, this returns the id to append (else None)."""
        eos = backend.token_to_id("<|endoftext|>") if self.model_type == "qwen3" else None
        if eos is None or self._embed_tok.encode("a").ids[-1:] == [eos]:
            return None
        return eos

    def _streams(self) -> list:
        """One MLX CPU stream per core on the CPU (each runs a batch on its own core, with identical
        results; bench/embed_streams.py measures the gain); the default stream where MLX has a GPU. MLX streams belong to the thread
        that made them, so each thread gets its own."""
        streams = getattr(self._local, "streams", None)
        if streams is None:
            import mlx.core as mx

            from ingest.models import mlx_on_cpu

            cores = self.cpu_streams or min(os.cpu_count() or 1, MAX_CPU_STREAMS)
            streams = [mx.new_stream(mx.cpu) for _ in range(cores)] if mlx_on_cpu() else [None]
            self._local.streams = streams
        return streams

    @property
    def dim(self) -> int:  # type: ignore[override]  # Embedder.dim may be a plain attribute; here it is lazy
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
        if self._eos_id is not None:
            ids = [x + [self._eos_id] for x in ids]
        order = np.argsort([len(x) for x in ids], kind="stable")
        streams = self._streams()
        budget = self.batch_tokens or (DEFAULT_CPU_BATCH_TOKENS if streams[0] is not None else DEFAULT_BATCH_TOKENS)
        batches = _batches([ids[i] for i in order], max(1, budget // len(streams)))
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


# -- exact GELU and softmax for BERT on the CPU ------------------------------------------------------
# MLX's CPU exp/erf run one element at a time (~10-20 ns each), while multiply-add chains that
# mx.compile fuses into one loop are vectorised by the C++ compiler (~0.2 ns). So exp is rebuilt from
# those: exp(x) = 2^n * 2^f with n = round(x*log2 e) and 2^f a degree-5 polynomial on [-1/2, 1/2]
# (relative error 8e-8, fitted by least squares), and 2^n written straight into the float's exponent
# bits. Each compiled function stays a single-output chain of at most ~10 operations: longer or
# multi-output graphs are split by mx.compile into kernels that run far slower here.

_LOG2E = 1.4426950408889634
_ROUND = 12582912.0  # 1.5 * 2**23: (t + _ROUND) - _ROUND rounds a float32 t to the nearest integer
_EXP2 = (1.0000000710, 0.6931469492, 0.2402212175, 0.0555074262, 0.0096754597, 0.0013266970)
_EXP_FLOOR = -80.0  # exp(-80) ~ 2e-35: below float32 resolution next to 1, still a normal float
# erfc(a) ~ t * P(t) * exp(-a^2), t = 1 / (1 + p a): Abramowitz & Stegun 7.1.26, |error| <= 1.5e-7
_ERFC_P = 0.3275911
_ERFC = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _exp_mantissa(x):
    t = x * _LOG2E
    f = t - ((t + _ROUND) - _ROUND)
    f2 = f * f
    c = _EXP2
    return (f * c[1] + c[0]) + f2 * ((f * c[3] + c[2]) + f2 * (f * c[5] + c[4]))


def _exp_exponent(x):
    import mlx.core as mx

    t = x * _LOG2E
    return mx.left_shift(((t + _ROUND) - _ROUND).astype(mx.int32) + 127, 23)


def _shift_scores(scores, row_max):
    import mlx.core as mx

    d = scores - row_max
    return mx.maximum(d, d * 0.0 + _EXP_FLOOR)  # an array bound: a scalar one compiles to a slow loop here


def _half_neg_square(x):
    import mlx.core as mx

    e = (x * x) * -0.5
    return mx.maximum(e, e * 0.0 + _EXP_FLOOR)


def _erfc_poly(x):
    import mlx.core as mx

    t = mx.reciprocal(mx.abs(x) * (_ERFC_P / math.sqrt(2)) + 1.0)
    t2 = t * t
    c = _ERFC
    return t * ((t * c[1] + c[0]) + t2 * ((t * c[3] + c[2]) + t2 * c[4]))


def _gelu_from_erfc(x, poly, gauss):
    import mlx.core as mx

    # erf(|x|/sqrt 2) = 1 - poly * gauss; x / |x| puts the sign back (and keeps 0 at 0)
    return x * (0.5 + 0.5 * ((1.0 - poly * gauss) * x * mx.reciprocal(mx.abs(x) + 1e-30)))


@functools.cache
def _kernel(fn):
    import mlx.core as mx

    return mx.compile(fn)


def fast_exp(x):
    """exp(x) for float32 x in [-87, 88] from fused multiply-adds (relative error < 3e-7)."""
    import mlx.core as mx

    return _kernel(_exp_mantissa)(x) * mx.view(_kernel(_exp_exponent)(x), mx.float32)


def fast_softmax(scores):
    """Softmax over the last axis; scores more than 80 below their row's maximum count as exp(-80)."""
    import mlx.core as mx

    e = fast_exp(_kernel(_shift_scores)(scores, mx.max(scores, axis=-1, keepdims=True)))
    return e * mx.reciprocal(mx.sum(e, axis=-1, keepdims=True))


def fast_gelu(x):
    """Exact (erf) GELU to within 2e-7 * |x|."""
    return _kernel(_gelu_from_erfc)(x, _kernel(_erfc_poly)(x), fast_exp(_kernel(_half_neg_square)(x)))


def _fast_cpu_bert(model) -> bool:
    """On the CPU, switch an mlx-embeddings BERT's GELU and attention softmax to the fused versions above.

    Returns False (model untouched) on a GPU or for any other architecture.
    """
    import mlx.nn as nn

    from ingest.models import mlx_on_cpu

    try:
        from mlx_embeddings.models import bert
    except ImportError:
        return False
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if not mlx_on_cpu() or not isinstance(model, bert.Model) or not layers:
        return False
    if not fastpaths.allowed("bert-attention"):  # another mlx-embeddings: its attention may differ
        return False
    for layer in layers:
        act = layer.intermediate.intermediate_act_fn
        exact_gelu = type(act) is nn.GELU and getattr(act, "_approx", None) == "none"
        if type(layer.attention.self) is not bert.BertSelfAttention or not exact_gelu:
            return False
    for layer in layers:
        layer.attention.self.__class__ = _fast_self_attention_class()
        layer.intermediate.intermediate_act_fn = fast_gelu
    return True


@functools.cache
def _fast_self_attention_class():
    from mlx_embeddings.models import bert

    class FastBertSelfAttention(bert.BertSelfAttention):
        """BertSelfAttention with `fast_softmax`; same weights, same inputs and outputs."""

        def __call__(self, hidden_states, attention_mask=None):
            b, length, _ = hidden_states.shape
            heads, size = self.num_attention_heads, self.attention_head_size
            q = self.query(hidden_states).reshape(b, length, heads, size).transpose(0, 2, 1, 3)
            k = self.key(hidden_states).reshape(b, length, heads, size).transpose(0, 2, 3, 1)
            v = self.value(hidden_states).reshape(b, length, heads, size).transpose(0, 2, 1, 3)
            scores = (q * (1 / math.sqrt(size))) @ k
            if attention_mask is not None:
                scores = scores + attention_mask
            context = fast_softmax(scores) @ v
            return context.transpose(0, 2, 1, 3).reshape(b, length, heads * size)

    return FastBertSelfAttention


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

"""Rerank retrieved passages with a causal LM through mlx-lm, the way Qwen3-Reranker works.

A passage's score is P("yes") against P("no") as the model's next token after a judging prompt in
Qwen3-Reranker's documented format, which that model was trained on (plain chat models judge only as
well as they can: SmolLM2-135M shows no relevance signal at all, Qwen2.5-0.5B a weak one):

    system:    Judge whether the Document meets the requirements based on the Query and the Instruct
               provided. Note that the answer can only be "yes" or "no".
    user:      <Instruct>: {instruction}\\n<Query>: {query}\\n<Document>: {passage}
    assistant: <think>\\n\\n</think>\\n\\n          (Qwen3: the chat template with enable_thinking=False)

The prompt comes from the model's own chat template (a plain SYSTEM/USER/ASSISTANT layout when it has
none), tokenized in three parts, as Qwen3-Reranker's reference code does: the head (everything up to
the passage: system, instruction, query), the passage (cut to `max_passage_tokens`, so the closing
template is never cut), and the tail; the split changes no token (tested). The head is the same for every passage of a query, so it runs
ONCE into a KV cache; the passages then run in batches, right-padded: attention is causal, so a real
token never sees the padding after it and no extra mask is needed. Only each sequence's last real
position goes through the LM head. Scores equal the plain one-prompt-at-a-time computation (tested).

On the CPU, batching itself gains little (prompt processing is compute-bound); the shared head and the
last-position-only head are what make it faster than scoring each whole prompt. Cost grows with passage
length and model size (the README's "Reranking" item has the figures), so rerank a short list, or lower
`max_passage_tokens`.

This module does not retrieve, cut passages into chunks, or decide how many to keep; it only scores.
Passage text is tokenized as is, so special-token text inside a passage (e.g. "<|im_end|>") is read
as that special token, as in the reference implementation.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ingest import fastpaths
from ingest.errors import ModelLoadError
from rag.defaults import DEFAULT_RERANK_MODEL
from rag.generate import load_lm

if TYPE_CHECKING:
    import mlx.core as mx

log = logging.getLogger("rag.rerank")
DEFAULT_INSTRUCTION = "Given a question, retrieve passages from the user's documents that answer it"
DEFAULT_MAX_PASSAGE_TOKENS = 320
DEFAULT_BATCH_SIZE = 8
SYSTEM_PROMPT = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)
_SLOT = "\x00RAG-PASSAGE-SLOT\x00"  # stands in for the passage while the template renders


class Reranker(ABC):
    """Anything that scores passages against a query; subclass it to plug your own into
    `rag.open_index(reranker=...)`. Required: `score`; nothing is optional.

    Membership is by subclassing only, as for Embedder and Generator: an object with a `score` method
    that does not subclass Reranker is refused (with a message naming what to do).
    """

    @abstractmethod
    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """Relevance of each passage in [0, 1], higher is more relevant, in the order given."""


class MLXReranker(Reranker):
    """A causal LM (a Qwen3-Reranker, or any mlx-lm chat model) judging "yes"/"no" per passage.

    Args:
        spec: hub id (default model: DEFAULT_RERANK_MODEL) or a local mlx-lm model folder.
        instruction: what "relevant" means; goes into the prompt's <Instruct> line.
        max_passage_tokens: passages are cut to this many tokens (default 320).
        batch_size: passages per forward pass (default 8).

    Example:
        reranker = MLXReranker("mlx-community/Qwen3-Reranker-0.6B-4bit")
        reranker.score("Where is the spare key?", ["Under the blue flowerpot.", "Bananas are yellow."])
    """

    def __init__(
        self,
        spec: str,
        *,
        instruction: str = DEFAULT_INSTRUCTION,
        max_passage_tokens: int = DEFAULT_MAX_PASSAGE_TOKENS,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.model, self.tokenizer = load_lm(
            spec, kind="reranker", env_var="RAG_RERANK_MODEL", flag="--rerank-model", example=DEFAULT_RERANK_MODEL
        )
        self.id = spec
        self.instruction = instruction
        self.max_passage_tokens = max_passage_tokens
        self.batch_size = max(1, batch_size)
        self.yes_id, self.no_id = answer_token_ids(self.tokenizer, spec)
        self._head = _last_position_head(self.model)
        from mlx_lm.models.cache import KVCache, make_prompt_cache  # mlx-lm loads transformers: only when used

        caches = make_prompt_cache(self.model)
        self._share_head = all(type(c) is KVCache for c in caches) and fastpaths.allowed("rerank-shared-prefix")
        self._frame("")  # a chat template that loses the passage fails here, not at the first query

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """P("yes") for each passage, in the order given; [] for no passages."""
        if not passages:
            return []
        head, lead, tail = self._frame(query)
        bodies = [self._passage_ids(lead, p) + tail for p in passages]
        prefix = self._prefill(head) if self._share_head else None
        if prefix is None:
            bodies = [head + body for body in bodies]
        scores = [0.0] * len(bodies)
        order = sorted(range(len(bodies)), key=lambda i: len(bodies[i]))  # similar lengths: less padding
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            for i, s in zip(batch, self._score_batch(prefix, [bodies[i] for i in batch]), strict=True):
                scores[i] = s
        return scores

    def prompt_ids(self, query: str, passage: str) -> list[int]:
        """The exact tokens scored for one passage; the score is read after the last one."""
        head, lead, tail = self._frame(query)
        return head + self._passage_ids(lead, passage) + tail

    def _frame(self, query: str) -> tuple[list[int], str, list[int]]:
        """Token ids before and after the passage, and text to put in front of the passage."""
        user = f"<Instruct>: {self.instruction}\n<Query>: {query}\n<Document>: {_SLOT}"
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False, enable_thinking=False
            )
        else:
            text = f"SYSTEM: {SYSTEM_PROMPT}\n\nUSER: {user}\n\nASSISTANT:\n"
        head, found, tail = text.rpartition(_SLOT)
        if not found:
            raise ModelLoadError(
                f"cannot use '{self.id}' as a reranker: its chat template drops the user message",
                f"use a chat LM whose template keeps user text verbatim, e.g. {DEFAULT_RERANK_MODEL}",
            )
        # BPE merges the space with the next word (" Paris"), so the space belongs to the passage.
        lead = " " if head.endswith(" ") else ""
        head = head[: len(head) - len(lead)]
        bos = getattr(self.tokenizer, "bos_token", None)
        head_ids = self.tokenizer.encode(head, add_special_tokens=not (bos and head.startswith(bos)))
        return head_ids, lead, self.tokenizer.encode(tail, add_special_tokens=False)

    def _passage_ids(self, lead: str, passage: str) -> list[int]:
        return self.tokenizer.encode(lead + passage, add_special_tokens=False)[: self.max_passage_tokens]

    def _prefill(self, head: list[int]) -> list[tuple[mx.array, mx.array]]:
        """Keys and values of the shared head, per layer (computed once per query)."""
        import mlx.core as mx
        from mlx_lm.models.cache import make_prompt_cache

        cache = make_prompt_cache(self.model)
        (self.model.model if self._head else self.model)(mx.array([head]), cache=cache)
        states = [(c.keys[..., : c.offset, :], c.values[..., : c.offset, :]) for c in cache]
        mx.eval(states)
        return states

    def _score_batch(self, prefix: list[tuple[mx.array, mx.array]] | None, seqs: list[list[int]]) -> list[float]:
        import mlx.core as mx

        lengths = [len(s) for s in seqs]
        width = max(lengths)
        # Right padding: causal attention means no real token attends to the padding after it.
        tokens = mx.array([s + [0] * (width - len(s)) for s in seqs])
        cache = None
        if prefix is not None:
            cache = [_repeated(k, v, len(seqs)) for k, v in prefix]
        rows, cols = mx.arange(len(seqs)), mx.array(lengths) - 1
        if self._head is None:
            last = self.model(tokens, cache=cache)[rows, cols]
        else:
            last = self._head(self.model.model(tokens, cache=cache)[rows, cols])
        logits = last[:, [self.no_id, self.yes_id]].astype(mx.float32)
        scores: list[float] = mx.softmax(logits, axis=-1)[:, 1].tolist()  # type: ignore[assignment]
        return scores


def answer_token_ids(tokenizer: Any, spec: str) -> tuple[int, int]:
    """The single-token ids of "yes" and "no" (bare word first, then with a leading space)."""
    found = []
    for word in ("yes", "no"):
        for text in (word, " " + word):
            ids = tokenizer.encode(text, add_special_tokens=False)
            if len(ids) == 1 and tokenizer.decode(ids).strip() == word:  # one token, and not <unk>
                found.append(ids[0])
                break
        else:
            raise ModelLoadError(
                f"cannot use '{spec}' as a reranker: its tokenizer has no single token for '{word}'",
                f"use a chat LM whose vocabulary has 'yes' and 'no', e.g. {DEFAULT_RERANK_MODEL}",
            )
    return found[0], found[1]


def _repeated(keys: mx.array, values: mx.array, n: int):
    import mlx.core as mx
    from mlx_lm.models.cache import KVCache

    cache = KVCache()
    cache.keys, cache.values = mx.repeat(keys, n, axis=0), mx.repeat(values, n, axis=0)
    cache.offset = keys.shape[2]
    return cache


def _last_position_head(model: Any) -> Callable[[mx.array], mx.array] | None:
    """The map from final hidden states to logits, so only the last position pays for the vocabulary.

    Most mlx-lm models are `Model(model=<body>, lm_head | tied embeddings)`; the shortcut is checked once
    against the full model call. None (use the full call) for models that do not match it.
    """
    import mlx.core as mx

    body: Any = getattr(model, "model", None)
    args = getattr(model, "args", None)
    if getattr(args, "tie_word_embeddings", False) and hasattr(getattr(body, "embed_tokens", None), "as_linear"):
        head = body.embed_tokens.as_linear
    else:
        head = getattr(model, "lm_head", None)
    if body is None or head is None:
        return None
    probe = mx.array([[1, 2, 3, 4]])
    try:
        return head if mx.allclose(head(body(probe)), model(probe), atol=1e-4).item() else None
    except (TypeError, ValueError, AttributeError) as exc:  # a body not called like this, or no head at all
        log.info("reranker: no last-position shortcut for %s (%s: %s)", type(model).__name__, type(exc).__name__, exc)
        return None

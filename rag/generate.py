"""Text generation with an mlx-lm chat model, streamed, with Qwen3 thinking handled.

`Generator` is the seam (an ABC: `stream` required, `count_tokens`/`context_window`/`opening_logprob`
with defaults);
`MLXGenerator` is the real implementation.
Thinking is OFF by default (`enable_thinking=False` in the Qwen3 chat template); when on, everything
between <think> and </think> is routed to `Piece.thinking` and never into the answer text, even when
a tag arrives split across tokens.
The KV cache of the previous prompt is kept and reused for the longest token prefix the next prompt
shares with it (the fixed system prompt, and in a chat the earlier turns), so only the new tokens are
prefilled; `Piece.cached_tokens` says how many were reused. Special tokens of the chat template found
inside message text (e.g. "<|im_start|>" in a document) are defused before tokenizing, so document text
can never open a new chat turn. Decoding is greedy, with the repetition penalty the model's
generation_config.json recommends, if any (`Sampling`). This module knows nothing about sources or
citations, nor where an answer should stop early (stream.py).
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.models import cast_for_cpu, check_tokenizer, load_failure, resolve_model
from rag.defaults import DEFAULT_MAX_TOKENS

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
PREFILL_STEP = 512  # tokens per forward pass when a prompt is only read (opening_logprob)


@dataclass(frozen=True)
class Piece:
    """A bit of streamed output: answer text and/or thinking text, plus running stats."""

    text: str = ""
    thinking: str = ""
    prompt_tokens: int = 0
    generated_tokens: int = 0
    prompt_tps: float = 0.0
    generation_tps: float = 0.0
    cached_tokens: int = 0  # prompt tokens whose KV cache was reused from the previous prompt


@dataclass(frozen=True)
class Sampling:
    """What a model's generation_config.json recommends: a repetition penalty (None: none), and top_p /
    top_k, which act only when sampling (temperature > 0; greedy stays the default for grounded answers)."""

    repetition_penalty: float | None = None
    top_p: float = 0.0
    top_k: int = 0

    @classmethod
    def of(cls, folder: Path) -> Sampling:
        path = folder / "generation_config.json"
        config = json.loads(path.read_text()) if path.is_file() else {}
        penalty = config.get("repetition_penalty")
        return cls(
            float(penalty) if penalty and float(penalty) != 1.0 else None,
            float(config.get("top_p") or 0.0),
            int(config.get("top_k") or 0),
        )


class Generator(ABC):
    """Anything that streams a reply to chat messages; subclass it to plug your own chat model into
    `rag.open_index(llm=...)`.

    Required: `stream`, which yields `Piece`s (fill in the token counts you know; the rest default to 0).
    Optional, with defaults here: `count_tokens` (a rough estimate, len(text) // 3 + 1: give the model's
    tokenizer so the sources fill the context window exactly) and `context_window` (the prompt + reply
    tokens the model takes; None: only the caller's `context_tokens` bounds the prompt) and
    `opening_logprob` (None: the answer policy's read check is skipped for this model).

    Membership is by subclassing only: an object with a `stream` method that does not subclass Generator
    is refused (with a message naming what to do), because the optional members' defaults live here and
    the code reads them directly. Example:

        class Echo(rag.Generator):
            def stream(self, messages, *, max_tokens=512, thinking=False):
                yield rag.Piece(text="You asked: " + messages[-1]["content"][-80:])
    """

    context_window: int | None = None

    @abstractmethod
    def stream(
        self, messages: Sequence[dict[str, str]], *, max_tokens: int = DEFAULT_MAX_TOKENS, thinking: bool = False
    ) -> Iterator[Piece]:
        """The reply to `messages` ({"role", "content"} dicts, system first), at most `max_tokens` long,
        as it is generated. Thinking text (when `thinking` is on) goes in `Piece.thinking`, never `text`."""

    def count_tokens(self, text: str) -> int:
        """How many tokens `text` is for this model (default: a rough estimate of 3 characters a token)."""
        return len(text) // 3 + 1

    def opening_logprob(self, messages: Sequence[dict[str, str]], text: str) -> float | None:
        """log P(the reply to `messages` begins with `text`), as the model scores it (whatever it would
        generate); None (the default): this generator can't tell, and the answer policy's read check
        (answer.py) is skipped."""
        return None


class MLXGenerator(Generator):
    """An mlx-lm chat model (Qwen3, Qwen2.5, Llama, SmolLM2, ...), greedy by default.

    Args:
        spec: hub id (e.g. "mlx-community/Qwen3-4B-4bit") or a local folder.
        temperature: 0.0 (default) is greedy, the most faithful choice for grounded answers.
    """

    def __init__(self, spec: str, temperature: float = 0.0) -> None:
        self.model, self.tokenizer = load_lm(spec, kind="chat model", env_var="RAG_LLM", flag="--llm")
        self.id = spec
        self.temperature = temperature
        self.sampling = Sampling.of(resolve_model(spec, kind="chat model", env_var="RAG_LLM", flag="--llm"))
        self.context_window = _context_window(self.model)
        specials = {t for t in getattr(self.tokenizer, "all_special_tokens", []) if len(t) > 1}
        added = getattr(self.tokenizer, "added_tokens_decoder", {}) or {}
        specials |= {t.content for t in added.values() if getattr(t, "special", False) and len(t.content) > 1}
        self._specials = sorted(specials, key=len, reverse=True)
        self._cache: list | None = None
        self._cached_ids: list[int] = []

    def format(self, messages: Sequence[dict[str, str]], thinking: bool = False) -> str:
        """The prompt text for `messages` under the model's chat template (special tokens in the
        message text defused)."""
        messages = [m | {"content": self.defuse(m["content"])} for m in messages]
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False, enable_thinking=thinking
            )
        body = "\n\n".join(f"{m['role'].upper()}: {m['content']}" for m in messages)
        return body + "\n\nASSISTANT:"

    def defuse(self, text: str) -> str:
        """`text` with every special token string (e.g. "<|im_end|>") broken by a zero-width space, so
        the tokenizer reads it as plain text."""
        for token in self._specials:
            if token in text:
                text = text.replace(token, token[0] + "\u200b" + token[1:])
        return text

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def encode(self, prompt: str) -> list[int]:
        """Token ids of a formatted prompt, as mlx-lm would make them."""
        bos = getattr(self.tokenizer, "bos_token", None)
        return list(self.tokenizer.encode(prompt, add_special_tokens=bos is None or not prompt.startswith(bos)))

    def stream(
        self, messages: Sequence[dict[str, str]], *, max_tokens: int = DEFAULT_MAX_TOKENS, thinking: bool = False
    ) -> Iterator[Piece]:
        """Stream the reply. With thinking on, reasoning arrives in `Piece.thinking` only."""
        import mlx.core as mx
        from mlx_lm import stream_generate
        from mlx_lm.sample_utils import make_logits_processors, make_sampler

        ids = self.encode(self.format(messages, thinking))
        cache, reused = self._reuse_cache(ids)
        self._cached_ids = ids
        s = self.sampling
        sampler = make_sampler(temp=self.temperature, top_p=s.top_p, top_k=s.top_k)
        processors = make_logits_processors(repetition_penalty=s.repetition_penalty)
        split = ThinkSplitter()
        rest = mx.array(ids[reused:])
        for r in stream_generate(
            self.model,
            self.tokenizer,
            rest,
            max_tokens=max_tokens,
            sampler=sampler,
            logits_processors=processors,
            prompt_cache=cache,
        ):
            text, thought = split.feed(r.text)
            if r.finish_reason is not None:
                more_text, more_thought = split.flush()
                text, thought = text + more_text, thought + more_thought
            yield Piece(
                text=text,
                thinking=thought,
                prompt_tokens=len(ids),
                cached_tokens=reused,
                generated_tokens=r.generation_tokens,
                prompt_tps=r.prompt_tps,
                generation_tps=r.generation_tps,
            )

    def opening_logprob(self, messages: Sequence[dict[str, str]], text: str) -> float | None:
        """The prompt and `text` read in one forward pass (the prefix shared with the previous prompt is
        reused, and the cache is kept, so streaming the reply to the same messages next prefills only
        the prompt's last token): the sum of the log-probabilities of `text`'s tokens."""
        import mlx.core as mx

        prompt = self.encode(self.format(messages))
        wanted = list(self.tokenizer.encode(text, add_special_tokens=False))
        ids = prompt + wanted
        cache, reused = self._reuse_cache(prompt)  # at least the prompt's last token is read again
        self._cached_ids = ids
        rows = []
        for start in range(reused, len(ids), PREFILL_STEP):
            rows.append(self.model(mx.array(ids[start : start + PREFILL_STEP])[None], cache=cache)[0])
        # row j predicts the token at position reused + j + 1, so `wanted`'s tokens come from these rows:
        logits = mx.concatenate(rows)[len(prompt) - 1 - reused : len(ids) - 1 - reused].astype(mx.float32)
        logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        return float(mx.take_along_axis(logprobs, mx.array(wanted)[:, None], axis=1).sum())

    def _reuse_cache(self, ids: list[int]) -> tuple[list, int]:
        """The kept KV cache trimmed to the longest prefix `ids` shares with the previous prompt (at least
        one token is left to prefill), and that prefix's length; a fresh cache when none can be reused."""
        from mlx_lm.models.cache import can_trim_prompt_cache, make_prompt_cache, trim_prompt_cache

        if self._cache is None or not can_trim_prompt_cache(self._cache):
            self._cache = make_prompt_cache(self.model)
            return self._cache, 0
        common = 0
        for a, b in zip(ids, self._cached_ids, strict=False):
            if a != b:
                break
            common += 1
        held = self._cache[0].offset  # may be short of the last prompt if that generation was cut off
        common = min(common, len(ids) - 1, held)
        trim_prompt_cache(self._cache, held - common)
        return self._cache, common


def load_lm(spec: str, *, kind: str, env_var: str, flag: str, example: str = "") -> tuple[Any, Any]:
    """Load an mlx-lm causal LM (model, tokenizer) from a hub id or folder, float32 on CPU.

    Any failure is one ModelLoadError naming the model and, via `env_var`/`flag`, how to point elsewhere."""
    folder = resolve_model(spec, kind=kind, env_var=env_var, flag=flag)
    try:
        from mlx_lm import load

        model, tokenizer = load(str(folder))[:2]  # newer mlx-lm may return a config too
    except Exception as exc:
        hint = "it must be an mlx-lm model folder (config.json, *.safetensors, tokenizer files)"
        raise load_failure(kind, spec, exc, hint + (f", e.g. {example}" if example else "")) from exc
    check_tokenizer(tokenizer, int(getattr(getattr(model, "args", None), "vocab_size", 0) or 0), kind=kind, spec=spec)
    cast_for_cpu(model)
    from rag._rope import speed_up_decode

    speed_up_decode(model)
    return model, tokenizer


class ThinkSplitter:
    """Separates <think>...</think> content from answer text in a stream of arbitrary pieces."""

    def __init__(self) -> None:
        self._buffer = ""
        self._inside = False

    def feed(self, piece: str) -> tuple[str, str]:
        """Returns (answer_text, thinking_text) that is certain so far."""
        self._buffer += piece
        answer: list[str] = []
        thought: list[str] = []
        while self._buffer:
            tag = THINK_CLOSE if self._inside else THINK_OPEN
            at = self._buffer.find(tag)
            if at >= 0:
                (thought if self._inside else answer).append(self._buffer[:at])
                self._buffer = self._buffer[at + len(tag) :]
                self._inside = not self._inside
                continue
            keep = _partial_suffix(self._buffer, tag)  # a tag may be split across pieces
            (thought if self._inside else answer).append(self._buffer[: len(self._buffer) - keep])
            self._buffer = self._buffer[len(self._buffer) - keep :]
            break
        return "".join(answer), "".join(thought)

    def flush(self) -> tuple[str, str]:
        rest, self._buffer = self._buffer, ""
        return ("", rest) if self._inside else (rest, "")


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


def _context_window(model: Any) -> int:
    args = getattr(model, "args", None)
    return int(getattr(args, "max_position_embeddings", 0) or 0) or 4096


def elapsed_ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0

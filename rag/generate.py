"""Text generation with an mlx-lm chat model, streamed, with Qwen3 thinking handled.

`Generator` is the seam (one required method, `stream`); `MLXGenerator` is the real implementation.
Thinking is OFF by default (`enable_thinking=False` in the Qwen3 chat template); when on, everything
between <think> and </think> is routed to `Piece.thinking` and never into the answer text, even when
a tag arrives split across tokens. This module knows nothing about sources or citations.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ingest import _blas
from ingest.errors import ModelLoadError
from ingest.models import cast_for_cpu, resolve_model

_blas.preload()

DEFAULT_MAX_TOKENS = 512
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


@dataclass(frozen=True)
class Piece:
    """A bit of streamed output: answer text and/or thinking text, plus running stats."""

    text: str = ""
    thinking: str = ""
    prompt_tokens: int = 0
    generated_tokens: int = 0
    prompt_tps: float = 0.0
    generation_tps: float = 0.0


@runtime_checkable
class Generator(Protocol):
    """Anything that streams a reply to chat messages."""

    def stream(
        self, messages: Sequence[dict[str, str]], *, max_tokens: int = ..., thinking: bool = ...
    ) -> Iterator[Piece]: ...


class MLXGenerator:
    """An mlx-lm chat model (Qwen3, Qwen2.5, Llama, SmolLM2, ...), greedy by default.

    Args:
        spec: hub id (e.g. "mlx-community/Qwen3-4B-4bit") or a local folder.
        temperature: 0.0 (default) is greedy, the most faithful choice for grounded answers.
    """

    def __init__(self, spec: str, temperature: float = 0.0) -> None:
        self.model, self.tokenizer = load_lm(spec, kind="chat model", env_var="RAG_LLM", flag="--llm")
        self.id = spec
        self.temperature = temperature

    def format(self, messages: Sequence[dict[str, str]], thinking: bool = False) -> str:
        """The prompt text for `messages` under the model's chat template."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                list(messages), add_generation_prompt=True, tokenize=False, enable_thinking=thinking
            )
        body = "\n\n".join(f"{m['role'].upper()}: {m['content']}" for m in messages)
        return body + "\n\nASSISTANT:"

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def stream(
        self, messages: Sequence[dict[str, str]], *, max_tokens: int = DEFAULT_MAX_TOKENS, thinking: bool = False
    ) -> Iterator[Piece]:
        """Stream the reply. With thinking on, reasoning arrives in `Piece.thinking` only."""
        from mlx_lm import stream_generate
        from mlx_lm.sample_utils import make_sampler

        prompt = self.format(messages, thinking)
        sampler = make_sampler(temp=self.temperature)
        split = ThinkSplitter()
        for r in stream_generate(self.model, self.tokenizer, prompt, max_tokens=max_tokens, sampler=sampler):
            text, thought = split.feed(r.text)
            if r.finish_reason is not None:
                more_text, more_thought = split.flush()
                text, thought = text + more_text, thought + more_thought
            stats = dict(
                prompt_tokens=r.prompt_tokens,
                generated_tokens=r.generation_tokens,
                prompt_tps=r.prompt_tps,
                generation_tps=r.generation_tps,
            )
            yield Piece(text=text, thinking=thought, **stats)


def load_lm(spec: str, *, kind: str, env_var: str, flag: str, example: str = "") -> tuple[Any, Any]:
    """Load an mlx-lm causal LM (model, tokenizer) from a hub id or folder, float32 on CPU.

    Any failure is one ModelLoadError naming the model and, via `env_var`/`flag`, how to point elsewhere."""
    folder = resolve_model(spec, kind=kind, env_var=env_var, flag=flag)
    try:
        from mlx_lm import load

        model, tokenizer = load(str(folder))
    except Exception as exc:
        hint = "it must be an mlx-lm model folder (config.json, *.safetensors, tokenizer files)"
        raise ModelLoadError(
            f"cannot load {kind} '{spec}': {exc}", hint + (f", e.g. {example}" if example else "")
        ) from exc
    cast_for_cpu(model)
    return model, tokenizer


class ThinkSplitter:
    """Separates <think>...</think> content from answer text in a stream of arbitrary pieces."""

    def __init__(self) -> None:
        self._buffer = ""
        self._inside = False

    def feed(self, piece: str) -> tuple[str, str]:
        """Returns (answer_text, thinking_text) that is certain so far."""
        self._buffer += piece
        answer, thought = [], []
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


def elapsed_ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0

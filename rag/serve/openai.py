"""The OpenAI wire format for `rag serve`: request models with their limits, and the JSON it sends back.

Requests are validated here (sizes, counts, ranges, and text that is valid Unicode: JSON can carry a lone
surrogate such as "\\ud800", which no tokenizer takes) so the routes in rag/serve/http.py only route. Fields of
the OpenAI API this server cannot honour (temperature, n, tools…) are accepted and ignored, so existing
clients work unchanged. Responses carry extra top-level fields: `sources` (each `cited` or not, and
`cited_by` "model" or "checker", the same notion as `rag ask`), `sentences` (each `supported` or not) and
`stopped_reason`. No I/O happens here.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import asdict
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

import rag

MAX_MESSAGES = 256
MAX_COMPLETION_TOKENS = 4096
MAX_INPUTS = 256  # texts per embeddings request
MAX_TEXT_CHARS = 32_000  # per question, search query or embeddings input
SNIPPET_CHARS = 240
# The fields of Source.to_dict() a source's JSON carries as they are (its score is rounded, a snippet added).
SOURCE_FIELDS = ("chunk_id", "path", "collection", "page", "heading", "location", "ocr")


def valid_unicode(text: str) -> str:
    """`text` if it can be encoded as UTF-8; a lone surrogate (JSON "\\ud800") is a ValueError."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"text is not valid Unicode: a lone surrogate at character {exc.start}") from None
    return text


Str = Annotated[str, AfterValidator(valid_unicode)]
Text = Annotated[Str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS)]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(_Lenient):
    type: Literal["text"]
    text: Str


class Message(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(_Lenient):
    include_usage: bool = False


class ChatRequest(_Lenient):
    """POST /v1/chat/completions. Extras beyond OpenAI's fields: `k` (chunks to retrieve), `thinking`."""

    model: Str
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=MAX_COMPLETION_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_COMPLETION_TOKENS)
    k: int | None = Field(None, ge=1, le=rag.MAX_K)
    thinking: bool = False

    def question(self) -> str | None:
        """The last user message (None if missing or too long)."""
        users = [m.text().strip() for m in self.messages if m.role == "user"]
        question = users[-1] if users else ""
        return question if 0 < len(question) <= MAX_TEXT_CHARS else None

    def history(self) -> list[tuple[str, str]]:
        """Earlier (user, assistant) exchanges before the last user message, for rewriting a follow-up."""
        pairs: list[tuple[str, str]] = []
        last_user = max((i for i, m in enumerate(self.messages) if m.role == "user"), default=0)
        for m in self.messages[:last_user]:
            if m.role == "user":
                pairs.append((m.text().strip(), ""))
            elif m.role == "assistant" and pairs:
                pairs[-1] = (pairs[-1][0], m.text().strip())
        return pairs

    def token_limit(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default


class EmbeddingsRequest(_Lenient):
    """POST /v1/embeddings: one text or a list of texts (token-id inputs are not supported)."""

    model: Str
    input: Text | list[Text] = Field(max_length=MAX_INPUTS)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class SearchRequest(_Lenient):
    """POST /v1/search: retrieval only, no LLM."""

    query: Text
    k: int | None = Field(None, ge=1, le=rag.MAX_K)
    collection: Str | None = None


# -- responses -------------------------------------------------------------------------------------


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def source_json(
    source: rag.Source, n: int | None = None, cited: bool | None = None, text: bool = False, cited_by: str | None = None
) -> dict:
    """A chunk as JSON: where it is, its score, a snippet (and its full text if `text`); for an answer's
    source, whether it is `cited` and by whom (`cited_by`: "model" wrote its [n], "checker" attributed it)."""
    data = source.to_dict()
    out: dict[str, Any] = {} if n is None else {"n": n}
    out |= {key: data[key] for key in SOURCE_FIELDS}
    out |= {"score": round(source.score, 4), "snippet": source.snippet(SNIPPET_CHARS)}
    if cited is not None:
        out["cited"] = cited
        out["cited_by"] = cited_by
    if text:
        out["text"] = data["text"]
    return out


def sources_json(answer: rag.Answer) -> list[dict]:
    return [
        source_json(s, n, n in answer.citations, cited_by=answer.cited_by(n)) for n, s in enumerate(answer.sources, 1)
    ]


def sentences_json(answer: rag.Answer) -> list[dict]:
    """Each sentence with the sources that back it and whether any does (`supported`)."""
    return [asdict(x) for x in answer.sentences]


def usage_json(answer: rag.Answer) -> dict:
    t = answer.timings
    return {
        "prompt_tokens": t.prompt_tokens,
        "completion_tokens": t.generated_tokens,
        "total_tokens": t.prompt_tokens + t.generated_tokens,
    }


def finish_reason(answer: rag.Answer, max_tokens: int) -> str:
    """ "length" for an answer cut at its token limit; "stop" otherwise (a looping reply cut at its
    repetition included: `stopped_reason` in the response says which)."""
    cut = answer.stopped_reason == "max_tokens" or answer.timings.generated_tokens >= max_tokens
    return "length" if cut and answer.stopped_reason != "repetition" else "stop"


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def completion_json(model: str, answer: rag.Answer, max_tokens: int, finish: str | None = None) -> dict:
    """A chat.completion; `finish` overrides the finish reason (an answer cut at the time limit: "length")."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.text}
    if answer.thinking:
        message["reasoning_content"] = answer.thinking
    return {
        "id": new_completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish or finish_reason(answer, max_tokens)}],
        "usage": usage_json(answer),
        "sources": sources_json(answer),
        "sentences": sentences_json(answer),
        "stopped_reason": answer.stopped_reason,
    }


class ChunkWriter:
    """Builds the `data:` lines of one streamed completion, all with the same id and timestamp."""

    def __init__(self, model: str) -> None:
        self.head = {"id": new_completion_id(), "object": "chat.completion.chunk", "created": int(time.time())}
        self.head["model"] = model

    def delta(self, delta: dict, finish: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return sse(self.head | {"choices": [choice]} | extra)

    def usage(self, answer: rag.Answer) -> str:
        return sse(self.head | {"choices": [], "usage": usage_json(answer)})


def sse(data: dict | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


def embeddings_json(model: str, vectors: np.ndarray, tokens: int, encoding: str) -> dict:
    def encode(v: np.ndarray) -> list[float] | str:
        if encoding == "base64":  # little-endian float32, what OpenAI clients decode
            return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()
        return [float(x) for x in v]

    data = [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)]
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def model_json(model_id: str, created: int, **extra: Any) -> dict:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "rag"} | extra

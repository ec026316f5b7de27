"""The seams other apps plug into: Embedder, Generator and Reranker declare every member the code uses,
optional ones have their defaults, and an object that doesn't fit is refused at `open_index`, by name.
A minimal custom embedder and generator answer end to end (real LanceDB), as examples/custom_models.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rag
from ingest.seams import declared

ROOT = Path(__file__).resolve().parents[1]


class WordsEmbedder(rag.Embedder):
    """The smallest real Embedder: one bucket per hashed word (deterministic across runs)."""

    id = fingerprint = "words-64"
    dim, max_tokens = 64, 128

    def embed(self, texts):
        out = np.full((len(texts), self.dim), 1e-3, dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, sum(word.encode()) % self.dim] += 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def token_spans(self, text):
        return [m.span() for m in re.finditer(r"\S+", text)]


class FirstSource(rag.Generator):
    """Answers with the first line of source [1], citing it."""

    def stream(self, messages, *, max_tokens=512, thinking=False):
        first = re.search(r"<source>\n(.+?)\n</source>", messages[-1]["content"], re.S)
        lines = [line for line in first.group(1).splitlines() if line.strip() and not line.startswith("#")]
        yield rag.Piece(text=lines[0].rstrip(".") + " [1].")


class LacksMethods:
    id = fingerprint = "half"
    dim, max_tokens = 8, 64


class DuckEmbedder:
    """Every member an Embedder has, but not a subclass of it."""

    id = fingerprint = "duck"
    dim, max_tokens, query_prefix = 8, 64, ""

    def embed(self, texts):
        return np.ones((len(texts), 8), dtype=np.float32) / np.sqrt(8)

    def token_spans(self, text):
        return [(0, len(text))]


def test_an_embedder_missing_members_is_refused_at_the_door_by_name(tmp_path):
    with pytest.raises(rag.RagError) as caught:
        rag.open_index(tmp_path / "idx", embed_model=LacksMethods())
    assert not isinstance(caught.value, rag.ModelLoadError)  # not taken for a model name
    assert "LacksMethods is not an Embedder: missing embed, token_spans" in str(caught.value)
    assert "subclass rag.Embedder" in caught.value.hint


def test_a_duck_typed_embedder_is_told_to_subclass(tmp_path):
    with pytest.raises(rag.RagError, match="DuckEmbedder is not an Embedder: it has the members but does not subclass"):
        rag.open_index(tmp_path / "idx", embed_model=DuckEmbedder())


def test_a_subclass_missing_a_required_attribute_is_refused_by_name(tmp_path):
    class NoDim(rag.Embedder):
        id = fingerprint = "no-dim"
        max_tokens = 64
        embed = DuckEmbedder.embed
        token_spans = DuckEmbedder.token_spans

    with pytest.raises(rag.RagError, match=r"NoDim is an incomplete Embedder: missing dim \("):
        rag.open_index(tmp_path / "idx", embed_model=NoDim())


def test_a_generator_or_reranker_that_does_not_fit_is_refused_by_name(tmp_path):
    class Chatty:
        def generate(self, prompt): ...

    with pytest.raises(rag.RagError, match=r"llm: Chatty is not a Generator: missing stream \(subclass rag.Generator"):
        rag.open_index(tmp_path / "idx", llm=Chatty())
    with pytest.raises(rag.RagError, match="reranker: Chatty is not a Reranker: missing score"):
        rag.open_index(tmp_path / "idx", reranker=Chatty())


def test_the_abstract_members_must_be_implemented():
    class NoSpans(rag.Embedder):
        def embed(self, texts): ...

    with pytest.raises(TypeError, match="token_spans"):
        NoSpans()


def test_each_seam_declares_what_it_requires_and_defaults_the_rest():
    assert declared(rag.Embedder) == (
        ["id", "fingerprint", "dim", "max_tokens", "embed", "token_spans"],
        ["query_prefix"],
    )
    assert declared(rag.Generator) == (["stream"], ["context_window", "count_tokens", "opening_logprob"])
    assert declared(rag.Reranker) == (["score"], [])
    assert WordsEmbedder().query_prefix == ""
    generator = FirstSource()
    assert generator.context_window is None and generator.count_tokens("x" * 30) == 11
    assert generator.opening_logprob([{"role": "user", "content": "hi"}], "no") is None  # can't tell: no check
    assert rag.Piece(text="hi").cached_tokens == 0
    assert issubclass(rag.MLXEmbedder, rag.Embedder) and issubclass(rag.MLXGenerator, rag.Generator)
    assert issubclass(rag.MLXReranker, rag.Reranker)


def test_a_lazy_property_is_not_called_at_the_door(tmp_path):
    class LazyDim(WordsEmbedder):
        @property
        def dim(self):
            raise AssertionError("dim was read at the door")

    index = rag.open_index(tmp_path / "idx", embed_model=LazyDim())
    assert isinstance(index.embedder, LazyDim)


def test_specs_are_still_model_names(tmp_path, minilm_path):
    index = rag.open_index(tmp_path / "idx", embed_model=minilm_path, llm="some/model", reranker=minilm_path)
    assert index.embedder.id == str(minilm_path)  # a PathLike is a folder, loaded on first use
    with pytest.raises(rag.ModelLoadError, match="reranker"):
        index.reranker  # noqa: B018 - a PathLike reranker is that folder (MiniLM is no chat LM), not the default


def test_a_minimal_custom_embedder_and_generator_answer_with_a_citation(tmp_path, docs):
    index = rag.open_index(tmp_path / "idx", embed_model=WordsEmbedder(), llm=FirstSource(), reranker=False)
    report = index.add(docs)
    assert len(report.added) == 3 and not report.failed
    assert index.status().embedder == "words-64" and index.status().dim == 64
    answer = index.ask("Where is the spare key hidden?", k=2)
    assert not answer.refused
    assert "flowerpot" in answer.text and answer.text.endswith("[1].")
    assert answer.cited_sources[0].path.endswith("house.md")


def test_the_custom_models_example_runs(tmp_path):
    cmd = [sys.executable, str(ROOT / "examples" / "custom_models.py"), str(ROOT / "examples" / "docs")]
    cmd += ["Where is the spare key hidden?", "--index", str(tmp_path / "idx")]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "indexed 3 new files" in run.stdout and "0 failed" in run.stdout
    assert "The spare key is hidden under the blue flowerpot on the back porch [1]." in run.stdout
    assert "[1] house-notes.md › House notes cited" in run.stdout

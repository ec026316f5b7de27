"""Shared fixtures: real models from ../shared/models (built by .ci/run), real data from ../shared/data.

Every test runs with RAG_HOME in a temp dir, no RAG_* settings inherited, and the model hub offline.
Tests that need a model or data set that is absent are skipped, not failed.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import rag
from rag import Embedder, Generator, Piece

# The test run owns its process, like the CLI: tune it for MLX before any test imports mlx.
rag.tune_cpu(os.environ.get("RAG_BLAS", "auto"))

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RAG_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"
MODELS = Path(os.environ.get("RAG_TEST_MODELS", Path.home() / ".cache" / "rag-test-models"))


def _model(name: str) -> Path:
    path = MODELS / name
    if not (path / "model.safetensors").is_file():
        pytest.skip(f"model {name} not built: run ../shared/models/build.sh")
    return path


def data_path(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data {path} is absent")
    return path


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    for name in list(os.environ):
        if name.startswith("RAG_") and name not in ("RAG_TEST_MODELS", "RAG_SHARED", "RAG_BLAS"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RAG_HOME", str(tmp_path_factory.mktemp("raghome")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    return _model("all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    return _model("SmolLM2-135M-Instruct")


@pytest.fixture(scope="session")
def qwen3_tiny_path() -> Path:
    return _model("qwen3-tiny-random")


@pytest.fixture(scope="session")
def twins(tmp_path_factory) -> dict[str, Path]:
    """Structural twins of the default Qwen3 models (tests/twins.py), built once per session (~7 s)."""
    from twins import TOKENIZER_DIR, build_twins

    if not (TOKENIZER_DIR / "tokenizer.json").is_file():
        pytest.skip(f"the Qwen3 tokenizer is absent: {TOKENIZER_DIR}")
    return build_twins(tmp_path_factory.mktemp("twins"))


@pytest.fixture(scope="session")
def embedder(minilm_path):
    """The real MiniLM embedder, loaded once per test session."""
    from rag import MLXEmbedder

    return MLXEmbedder(str(minilm_path))


@pytest.fixture(scope="session")
def smollm2(smollm2_path):
    from rag import MLXGenerator

    return MLXGenerator(str(smollm2_path))


@pytest.fixture(scope="session")
def qwen3_tiny(qwen3_tiny_path):
    from rag import MLXGenerator

    return MLXGenerator(str(qwen3_tiny_path))


@pytest.fixture
def docs(tmp_path) -> Path:
    """A small folder: Markdown with headings, a text file, and a real two-page PDF."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "house.md").write_text(
        "# House notes\n\n## Keys\n\nThe spare key is hidden under the blue flowerpot on the back porch.\n\n"
        "## Wifi\n\nThe wifi password is written on the fridge calendar.\n"
    )
    (folder / "recipes.txt").write_text(
        "Grandma's pancake recipe: two eggs, one cup of flour, one cup of milk, a pinch of salt.\n"
        "Whisk everything and rest the batter for ten minutes before frying.\n"
    )
    (folder / ".hidden.md").write_text("# Secret\n\nThis hidden file must never be indexed.\n")
    make_pdf(folder / "manual.pdf", ["The boiler reset button is red.", "Bleed the radiators every October."])
    return folder


def make_pdf(path: Path, pages: list[str]) -> Path:
    """Write a real PDF with one text line per page (pypdf can read it back page by page)."""
    escaped = [text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for text in pages]
    return pdf_from_content(path, [f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET" for text in escaped])


def pdf_from_content(path: Path, contents: list[str], font: str = "Helvetica") -> Path:
    """Write a real PDF with one page per content stream (PDF text operators using font /F1)."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    base = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject(f"/{font}"),
        }
    )
    font_ref = writer._add_object(base)
    for content in contents:
        page = writer.add_blank_page(width=612, height=792)
        stream = DecodedStreamObject()
        stream.set_data(content.encode())
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font_ref})}
        )
    with path.open("wb") as f:
        writer.write(f)
    return path


class HashEmbedder(Embedder):
    """The real MiniLM tokenizer for chunk sizes; vectors from a hash of each text (no model): for tests
    of indexing where the embedding model is not the point."""

    def __init__(self, minilm_path: Path, fail_on: str | None = None) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(minilm_path / "tokenizer.json"))
        self._tok.no_padding()
        self._tok.no_truncation()
        self.id = self.fingerprint = "hash-embedder"
        self.dim, self.max_tokens = 8, 256
        self.fail_on = fail_on

    def embed(self, texts):
        if self.fail_on and any(self.fail_on in t for t in texts):
            raise RuntimeError("the embedder choked")
        out = np.array([np.frombuffer(hashlib.sha256(t.encode()).digest()[:32], np.uint8)[:8] for t in texts], float)
        out = out.astype(np.float32) + 1
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def token_spans(self, text):
        return self._tok.encode(text, add_special_tokens=False).offsets


@pytest.fixture
def hash_embedder(minilm_path):
    return HashEmbedder(minilm_path)


class CountingEmbedder(Embedder):
    """The real embedder, counting what it is asked to embed (to assert exactly what was re-embedded)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.id, self.fingerprint, self.dim, self.max_tokens = inner.id, inner.fingerprint, inner.dim, inner.max_tokens
        self.query_prefix = inner.query_prefix
        self.texts: list[str] = []

    def embed(self, texts):
        self.texts.extend(texts)
        return self.inner.embed(texts)

    def token_spans(self, text):
        return self.inner.token_spans(text)


def assert_consistent(index_dir: Path) -> dict[tuple[str, str], int]:
    """Check an index folder opens and every document is whole: unique chunk ids, one content hash per
    (collection, path), chunk indexes 0..n-1 with no gap or duplicate. Returns chunks per document."""
    from ingest.store import ROW_FIELDS, Store

    store = Store.open(index_dir)
    table = store._scan(ROW_FIELDS)
    ids = table.column("id").to_pylist()
    assert len(ids) == len(set(ids)), "duplicate chunk ids"
    docs: dict[tuple[str, str], list] = {}
    for row in table.select(["collection", "path", "doc_hash", "chunk_index"]).to_pylist():
        docs.setdefault((row["collection"], row["path"]), []).append((row["doc_hash"], row["chunk_index"]))
    for key, chunks in docs.items():
        assert len({h for h, _ in chunks}) == 1, f"{key} has chunks of two versions"
        assert sorted(i for _, i in chunks) == list(range(len(chunks))), f"{key} is half-written"
    return {key: len(chunks) for key, chunks in docs.items()}


# -- a stand-in chat model and an indexed folder, for tests where the model is not the point ----------


class ScriptedGenerator(Generator):
    """A stand-in chat model: streams a fixed reply word by word and records the messages it was given.
    `count_tokens`/`context_window` are Generator's defaults unless given."""

    def __init__(self, reply: str = "", *, count_tokens=None, context_window: int | None = None) -> None:
        self.reply = reply
        self.calls: list[list[dict[str, str]]] = []
        self.context_window = context_window
        if count_tokens is not None:
            self.count_tokens = count_tokens  # e.g. a real model's: shadows the rough default

    def stream(self, messages: Sequence[dict[str, str]], *, max_tokens: int = 512, thinking: bool = False):
        self.calls.append([dict(m) for m in messages])
        pieces = re.findall(r"\s*\S+", self.reply)
        for i, piece in enumerate(pieces, 1):
            yield Piece(text=piece, prompt_tokens=100, generated_tokens=i, generation_tps=10.0)

    @property
    def user(self) -> str:
        """The user message of the last call."""
        return self.calls[-1][-1]["content"]


def index_folder(tmp_path: Path, folder: Path, embedder, llm):
    """`folder` indexed into tmp_path/idx with these models; asserts nothing failed."""
    import rag

    index = rag.open_index(tmp_path / "idx", embed_model=embedder, llm=llm)
    report = index.add(folder)
    assert not report.failed
    return index

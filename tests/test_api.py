"""The public surface: a curated `rag.__all__`, the example app, and the BLAS preload on Linux."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import rag

ROOT = Path(__file__).resolve().parents[1]


def test_public_api_is_curated_and_importable():
    assert sorted(rag.__all__) == sorted(
        "Answer ChunkConfig Conversation CorruptIndex DoneEvent Embedder EmbedderMismatch Event Evidence Generator Index IndexIncomplete "
        "IndexNotFound IndexReport IndexStatus LoadError MLXEmbedder MLXGenerator MLXReranker ModelLoadError "
        "NotInIndex Piece Progress RagError Reranker Sentence Source SourcesEvent ThinkingEvent Timings "
        "TokenEvent Turn UnsupportedFile collect open_index strip_markers".split()
        + "SetupCheck check_setup standalone_question".split()
        + rag.defaults.__all__
    )
    for name in rag.__all__:
        assert getattr(rag, name) is not None
    assert issubclass(rag.UnsupportedFile, ValueError) and issubclass(rag.ModelLoadError, rag.RagError)


def test_example_app_indexes_and_answers(docs, minilm_path, smollm2_path, tmp_path):
    cmd = [sys.executable, str(ROOT / "examples" / "embed_in_app.py"), str(docs), "Where is the spare key hidden?"]
    cmd += ["--index", str(tmp_path / "idx"), "--embed-model", str(minilm_path), "--llm", str(smollm2_path)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "indexed 3 new files" in run.stdout
    assert "flowerpot" in run.stdout.lower() and "[1] house.md" in run.stdout


def _blas_in_subprocess(env_extra: dict[str, str]) -> str:
    env = dict(os.environ, **env_extra)
    code = "import rag; from ingest import _blas; print(_blas.status())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="BLAS preload is Linux-only")
def test_fast_blas_is_preloaded_with_one_thread_and_can_be_turned_off():
    on = _blas_in_subprocess({"RAG_BLAS": "auto"})
    assert "libmkl_rt" in on and "1 thread" in on
    off = _blas_in_subprocess({"RAG_BLAS": "off"})
    assert "RAG_BLAS=off" in off and "libmkl_rt" not in off


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="BLAS preload is Linux-only")
def test_preloaded_blas_gives_the_same_embeddings(minilm_path):
    code = (
        "import rag, numpy as np, sys; e = rag.MLXEmbedder(sys.argv[1]); "
        "np.save(sys.stdout.buffer, e.embed(['The boiler reset button is red.', 'Bleed radiators in October.']))"
    )
    import io

    import numpy as np

    outs = []
    for blas in ("auto", "off"):
        run = subprocess.run(
            [sys.executable, "-c", code, str(minilm_path)],
            capture_output=True,
            env=dict(os.environ, RAG_BLAS=blas),
            check=True,
        )
        outs.append(np.load(io.BytesIO(run.stdout)))
    assert np.allclose(outs[0], outs[1], atol=1e-4)

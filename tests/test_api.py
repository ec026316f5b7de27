"""The public surface: a curated `rag.__all__`, the example app, and the BLAS preload on Linux."""

from __future__ import annotations

import os
import re
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
        "InvalidOption NotInIndex OcrLine OcrReader Piece Progress RagError RapidOCR Recognizer Reranker Sentence Source SourcesEvent ThinkingEvent Timings "
        "TokenEvent Turn UnsupportedFile collect open_index strip_markers".split()
        + "PageView best_snippet find_span has_pages".split()
        + "CpuTuningWarning SetupCheck check_setup cpu_status standalone_question tune_cpu".split()
        + "Cluster index_location is_remote".split()
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


def _in_subprocess(code: str, env_extra: dict[str, str] | None = None) -> str:
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout


def test_importing_the_library_changes_nothing_in_the_process():
    """No BLAS loaded, no thread counts set, malloc untouched, mlx not imported — until tune_cpu()."""
    code = (
        "import os, sys, json\n"
        "before = {k: os.environ.get(k) for k in ('MKL_NUM_THREADS', 'OMP_NUM_THREADS')}\n"
        "import rag, ingest, rag.cli\n"
        "libs = open('/proc/self/maps').read() if sys.platform.startswith('linux') else ''\n"
        "print(json.dumps({'env': {k: os.environ.get(k) for k in before}, 'before': before,\n"
        "  'mkl': 'libmkl_rt' in libs, 'mlx': 'mlx.core' in sys.modules, 'status': rag.cpu_status()}))"
    )
    import json

    env = {k: v for k, v in os.environ.items() if k not in ("MKL_NUM_THREADS", "OMP_NUM_THREADS")}
    got = json.loads(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    )
    assert got["env"] == got["before"] == {"MKL_NUM_THREADS": None, "OMP_NUM_THREADS": None}
    assert not got["mkl"] and not got["mlx"]
    assert got["status"].startswith("not tuned")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="BLAS preload is Linux-only")
def test_tune_cpu_loads_the_fast_blas_with_one_thread_and_can_be_turned_off():
    code = "import os, rag; print(rag.tune_cpu(os.environ['RAG_BLAS']))"
    on = _in_subprocess(code, {"RAG_BLAS": "auto"})
    assert "libmkl_rt" in on and "1 thread" in on and "malloc thresholds" in on
    off = _in_subprocess(code, {"RAG_BLAS": "off"})
    assert "RAG_BLAS=off" in off and "libmkl_rt" not in off


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="BLAS preload is Linux-only")
def test_tune_cpu_after_mlx_warns_once_and_says_so_in_the_status():
    code = (
        "import warnings, mlx.core, rag\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        "    rag.tune_cpu(); rag.tune_cpu()\n"
        "print(len([w for w in seen if issubclass(w.category, rag.CpuTuningWarning)]), rag.cpu_status())"
    )
    count, status = _in_subprocess(code, {"RAG_BLAS": "auto"}).split(" ", 1)
    assert count == "1" and "mlx was imported before rag.tune_cpu()" in status


def test_the_cli_tunes_its_process(tmp_path):
    code = "import sys; from rag.cli import app; sys.argv = ['rag', 'status']; app()"
    out = _in_subprocess(code, {"RAG_BLAS": "auto", "RAG_HOME": str(tmp_path)})
    blas_line = next(line for line in out.splitlines() if line.startswith("blas"))
    assert "not tuned" not in blas_line and "malloc" in blas_line


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="BLAS preload is Linux-only")
def test_preloaded_blas_gives_the_same_embeddings(minilm_path):
    code = (
        "import os, rag, numpy as np, sys; rag.tune_cpu(os.environ['RAG_BLAS']); e = rag.MLXEmbedder(sys.argv[1]); "
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


def test_the_readme_python_api_example_runs(tmp_path, docs, embedder, capsys):
    """The README's Python API block, run as written, on a real index (MiniLM); the chat model is a
    stand-in: the block is about the API, not about the model's words."""
    from conftest import ScriptedGenerator

    readme = (ROOT / "README.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if 'rag.open_index("~/my-index")' in b)
    code = code.replace('rag.open_index("~/my-index")', "rag.open_index(INDEX, embed_model=EMBEDDER, llm=LLM)")
    code = code.replace('index.add("~/Documents")', "index.add(DOCS)")
    llm = ScriptedGenerator("The spare key is under the blue flowerpot on the back porch [1].")
    namespace = {"INDEX": tmp_path / "idx", "EMBEDDER": embedder, "LLM": llm, "DOCS": docs}
    exec(compile(code, "README.md", "exec"), namespace)
    printed = capsys.readouterr().out
    assert namespace["report"].added and "flowerpot" in printed
    assert namespace["answer"].to_dict()["answer"] == namespace["answer"].text

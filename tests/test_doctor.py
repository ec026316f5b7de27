"""`rag doctor` on a working set-up and on broken ones: real models, a real index, the real CLI."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from rag.cli import app

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def doctor(monkeypatch, tmp_path):
    import rag.doctor

    monkeypatch.setattr(rag.doctor, "BENCH_SECONDS", 0.3)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty model-hub cache

    def run(*args: str):
        result = CliRunner().invoke(app, ["doctor", *args])
        checks = {}
        if "--json" in args:
            report = json.loads(result.stdout)
            checks = {c["name"]: c for c in report["checks"]}
        return result, checks

    return run


def test_a_working_set_up_passes_every_check(doctor, tmp_path, minilm_path, smollm2_path, embedder, docs):
    import rag

    rag.open_index(tmp_path / "idx", embed_model=embedder).add(docs)
    result, checks = doctor(
        "--index", str(tmp_path / "idx"), "--embed-model", str(minilm_path), "--llm", str(smollm2_path), "--json"
    )
    assert result.exit_code == 0, result.output
    assert all(c["ok"] is not False for c in checks.values()), checks
    assert {"platform", "mlx", "embedder", "chat model", "embed speed", "llm speed", "index", "provenance"} <= set(
        checks
    )
    assert "CPU backend" in checks["mlx"]["detail"]  # this machine has no GPU
    assert checks["embedder"]["detail"].startswith(f"{minilm_path} (flag, local folder)")
    assert "float32 weights (not quantized)" in checks["embedder"]["detail"]
    assert re.search(r"decode [\d.]+ tokens/s", checks["llm speed"]["detail"])
    assert re.search(r"[\d.]+ chunks/s", checks["embed speed"]["detail"])
    assert "3 documents" in checks["index"]["detail"]
    assert checks["text index"]["ok"] is True and checks["provenance"]["ok"] is True


def test_the_plain_report_has_one_line_per_check_with_marks(doctor, tmp_path, minilm_path, smollm2_path):
    result, _ = doctor("--index", str(tmp_path / "none"), "--embed-model", str(minilm_path), "--llm", str(smollm2_path))
    assert result.exit_code == 0, result.output
    lines = ANSI.sub("", result.stdout).strip().splitlines()
    assert lines[-1] == "All checks passed."
    assert all(line[:2] in ("✓ ", "· ") for line in lines[:-1]), lines
    assert any(line.startswith("· index        none yet at") for line in lines)


def test_offline_a_model_missing_from_the_cache_is_named_not_downloaded(doctor, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result, checks = doctor("--index", str(tmp_path / "none"), "--json")
    assert result.exit_code == 1
    for name, flag in (("embedder", "--embed-model"), ("chat model", "--llm")):
        check = checks[name]
        assert check["ok"] is False
        assert check["detail"].startswith("mlx-community/Qwen3-")
        assert "not in the local model-hub cache" in check["detail"] and flag in check["hint"]
    assert "speed" not in " ".join(checks)  # nothing loaded, nothing benchmarked
    assert not (tmp_path / "hf" / "hub").exists() or not any((tmp_path / "hf" / "hub").iterdir())


def test_a_broken_model_folder_and_a_corrupt_index_fail_with_hints(doctor, tmp_path, minilm_path, smollm2_path):
    broken = tmp_path / "broken-llm"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "qwen3"}')  # no weights, no tokenizer
    idx = tmp_path / "idx"
    idx.mkdir()
    (idx / "index.json").write_text("{not json")
    result, checks = doctor("--index", str(idx), "--embed-model", str(minilm_path), "--llm", str(broken), "--json")
    assert result.exit_code == 1
    assert checks["chat model"]["ok"] is False and "cannot load chat model" in checks["chat model"]["detail"]
    assert checks["chat model"]["hint"]
    assert checks["index"]["ok"] is False and "corrupt" in checks["index"]["detail"]
    assert checks["embedder"]["ok"] is True


def test_an_index_built_with_another_embedder_fails_the_provenance_check(
    doctor, tmp_path, minilm_path, smollm2_path, embedder, docs
):
    import rag

    rag.open_index(tmp_path / "idx", embed_model=embedder).add(docs)
    meta_path = tmp_path / "idx" / "index.json"
    meta = json.loads(meta_path.read_text())
    meta["embedder"] |= {"id": "some/other-embedder", "fingerprint": "0" * 16}
    meta_path.write_text(json.dumps(meta))
    result, checks = doctor(
        "--index", str(tmp_path / "idx"), "--embed-model", str(minilm_path), "--llm", str(smollm2_path), "--json"
    )
    assert result.exit_code == 1
    assert checks["provenance"]["ok"] is False and "some/other-embedder" in checks["provenance"]["detail"]


def test_the_default_model_twins_show_their_quantization_after_loading(doctor, tmp_path, twins):
    """The structural twins of the Qwen3 defaults: doctor reads the quantization from the config and the
    dtypes from the loaded model (on the CPU, scales become float32: the fast path)."""
    result, checks = doctor(
        "--index",
        str(tmp_path / "none"),
        "--embed-model",
        str(twins["embedder"]),
        "--llm",
        str(twins["llm"]),
        "--rerank-model",
        str(twins["reranker"]),
        "--rerank",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert "8-bit (group 64) weights, float32 scales" in checks["embedder"]["detail"]
    assert "4-bit (group 64) weights, float32 scales" in checks["chat model"]["detail"]
    assert "4-bit (group 64) weights, float32 scales" in checks["reranker"]["detail"]

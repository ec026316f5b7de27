"""Speed-ups over other packages' internals run only over the code they were tested with; otherwise the
plain path runs, with the same results, and `rag status` says which are on."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest

import rag
from ingest import fastpaths
from ingest.models import mlx_on_cpu

cpu_only = pytest.mark.skipif(not mlx_on_cpu(), reason="the fast paths are for MLX on the CPU")


@pytest.fixture
def changed(monkeypatch):
    """Make one fast path's tested digests not match the installed code (as a new release would)."""

    def change(name: str) -> None:
        path = fastpaths.FAST_PATHS[name]
        monkeypatch.setitem(fastpaths.FAST_PATHS, name, dataclasses.replace(path, digests=frozenset({"0" * 16})))
        fastpaths.check.cache_clear()

    yield change
    fastpaths.check.cache_clear()


def test_every_fast_path_finds_the_code_it_depends_on():
    for path in fastpaths.FAST_PATHS.values():
        assert len(fastpaths.digest(path.file, path.qualname)) == 16
    with pytest.raises(LookupError):
        fastpaths.digest("mlx_lm/models/cache.py", "NoSuchClass")


def test_a_changed_class_turns_its_fast_path_off_with_a_logged_reason(changed, caplog):
    changed("rerank-shared-prefix")
    with caplog.at_level(logging.WARNING, logger="rag.fastpaths"):
        ok, why = fastpaths.check("rerank-shared-prefix")
        fastpaths.check("rerank-shared-prefix")
    assert not ok and "differs from the tested code" in why and "mlx-lm" in why
    assert len([r for r in caplog.records if "rerank-shared-prefix" in r.message]) == 1  # logged once


@cpu_only
def test_an_unknown_bert_attention_falls_back_to_the_stock_model_with_the_same_vectors(changed, minilm_path):
    texts = ["The boiler shows fault E4 when the water pressure is below one bar.", "短い文"]
    fast = rag.MLXEmbedder(str(minilm_path))
    want = fast.embed(texts)
    assert fast.fast_cpu_kernels
    changed("bert-attention")
    plain = rag.MLXEmbedder(str(minilm_path))
    got = plain.embed(texts)
    assert not plain.fast_cpu_kernels
    assert (got * want).sum(axis=1).min() >= 0.9999


@cpu_only
def test_an_unknown_rope_is_left_in_place(changed, smollm2_path):
    import mlx.nn as nn

    from rag._rope import DecodeRoPE

    changed("decode-rope")
    generator = rag.MLXGenerator(str(smollm2_path))
    kinds = {type(m) for m in generator.model.modules()}
    assert nn.RoPE in kinds and DecodeRoPE not in kinds


def test_status_names_the_fast_paths_and_why_one_is_off(changed, tmp_path):
    on = rag.open_index(tmp_path / "idx").status().fast_paths
    assert set(on) == set(fastpaths.FAST_PATHS)
    if mlx_on_cpu():
        assert set(on.values()) == {"on"}
        changed("decode-rope")
        off = rag.open_index(tmp_path / "idx").status().fast_paths
        assert off["decode-rope"].startswith("off: mlx ") and "differs" in off["decode-rope"]
        assert off["bert-attention"] == "on"


def test_the_reranker_without_its_shared_prefix_scores_the_same(changed, smollm2_path):
    passages = ["The spare key is under the flowerpot.", "Pancakes need two eggs.", "Bleed radiators in October."]
    query = "Where is the spare key?"
    shared = rag.MLXReranker(str(smollm2_path))
    want = shared.score(query, passages)
    assert shared._share_head
    changed("rerank-shared-prefix")
    plain = rag.MLXReranker(str(smollm2_path))
    assert not plain._share_head
    np.testing.assert_allclose(plain.score(query, passages), want, atol=2e-3)

"""The CPU BERT fast path (fused exp, softmax, exact GELU) gives the stock model's outputs."""

from __future__ import annotations

import numpy as np
import pytest

import rag  # noqa: F401  (before mlx)
from ingest import embed as embed_module
from ingest.models import mlx_on_cpu

pytestmark = pytest.mark.skipif(not mlx_on_cpu(), reason="the fast path is for MLX on the CPU")


def test_fast_exp_softmax_and_gelu_match_mlx():
    import mlx.core as mx
    import mlx.nn as nn

    x = mx.array(np.random.default_rng(0).normal(0, 6, size=(4, 3, 50, 50)).astype(np.float32))
    edge = mx.array([0.0, -0.0, 1e-8, -1e-8, 0.5, -0.5, 5.0, -5.0, 40.0, -40.0, 1e4, -1e4])
    for value in (x, edge):
        got, want = np.array(embed_module.fast_gelu(value)), np.array(nn.gelu(value))
        assert np.all(np.abs(got - want) <= 1e-6 * np.maximum(1.0, np.abs(want)))
    clipped = mx.clip(x, -80, 80)
    rel = np.abs(np.array(embed_module.fast_exp(clipped)) / np.exp(np.array(clipped, dtype=np.float64)) - 1)
    assert rel.max() < 1e-6
    masked = x + mx.array(np.where(np.arange(50) < 30, 0.0, -10000.0).astype(np.float32))
    np.testing.assert_allclose(
        np.array(embed_module.fast_softmax(masked)), np.array(mx.softmax(masked, axis=-1, precise=True)), atol=1e-6
    )


def test_fast_bert_embeddings_match_the_stock_model(minilm_path, monkeypatch):
    texts = [
        "The boiler shows fault E4 when the water pressure is below one bar.",
        "tar -xzf archive.tar.gz extracts a gzipped tarball into the current folder. " * 12,
        "短い文",
        "x",
    ]
    fast = rag.MLXEmbedder(str(minilm_path))
    got = fast.embed(texts)
    assert fast.fast_cpu_kernels
    monkeypatch.setattr(embed_module, "_fast_cpu_bert", lambda model: False)
    stock = rag.MLXEmbedder(str(minilm_path))
    want = stock.embed(texts)
    assert not stock.fast_cpu_kernels
    assert (got * want).sum(axis=1).min() >= 0.9999

"""The default models' loading paths, through the public API, with their structural twins (tests/twins.py).

The twins have random weights, so outputs are gibberish: these tests check structure (shapes, norms,
dtypes, what text reaches the model, provenance, errors), never content.
"""

from __future__ import annotations

import json
import shutil

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from conftest import CountingEmbedder
from twins import TOKENIZER_DIR

import rag
from ingest.models import mlx_on_cpu
from rag.generate import load_lm
from rag.rerank import MLXReranker

# float32 on the CPU; on a GPU the twins run in their checkpoint's float16/bfloat16
ATOL = 2e-5 if mlx_on_cpu() else 3e-3
TEXTS = [
    "Boilers.",
    "The spare key is hidden under the blue flowerpot on the back porch.",
    "Bleed the radiators every October, starting with the one furthest from the boiler, and check the "
    "pressure gauge afterwards: it should read between one and two bar when the system is cold.",
    "Wifi?",
]


@pytest.fixture(scope="module")
def embedder(twins):
    return rag.MLXEmbedder(str(twins["embedder"]))


@pytest.fixture(scope="module")
def llm(twins):
    return rag.MLXGenerator(str(twins["llm"]))


@pytest.fixture(scope="module")
def reranker(twins):
    return MLXReranker(str(twins["reranker"]))


def _quantized(model) -> list[nn.Module]:
    return [m for _, m in model.named_modules() if isinstance(m, nn.QuantizedLinear | nn.QuantizedEmbedding)]


# -- the twins are what the converters write ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "bits", "dtype", "files"),
    [
        ("embedder", 8, "float16", ["model.safetensors"]),
        ("llm", 4, "bfloat16", ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]),
        ("reranker", 4, "bfloat16", ["model.safetensors"]),
    ],
)
def test_twins_have_the_published_layout(twins, name, bits, dtype, files):
    folder = twins[name]
    config = json.loads((folder / "config.json").read_text())
    assert config["quantization"] == config["quantization_config"] == {"group_size": 64, "bits": bits}
    assert config["model_type"] == "qwen3" and config["tie_word_embeddings"] is True
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert sorted(set(index["weight_map"].values())) == files == sorted(p.name for p in folder.glob("*.safetensors"))
    weights = {k: v for f in files for k, v in mx.load(str(folder / f)).items()}
    assert set(weights) == set(index["weight_map"])
    assert "lm_head.weight" not in weights  # tied
    assert weights["model.embed_tokens.weight"].dtype == mx.uint32
    assert {str(v.dtype) for k, v in weights.items() if k.endswith((".scales", ".biases"))} == {f"mlx.core.{dtype}"}


# -- index, search, ask, rerank end to end ---------------------------------------------------------


def test_index_search_ask_rerank_with_the_default_twins(tmp_path, docs, twins):
    index = rag.open_index(
        tmp_path / "idx", embed_model=str(twins["embedder"]), llm=str(twins["llm"]), reranker=str(twins["reranker"])
    )
    report = index.add(docs)
    assert not report.failed and len(report.added) == 3

    hits = index.search("Where is the spare key?", k=3, rerank=True)
    assert 1 <= len(hits) <= 3
    assert all(0.0 <= h.score <= 1.0 for h in hits)  # P("yes") from the 4-bit reranker twin
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)

    answer = index.ask("Where is the spare key?", k=2, max_tokens=6, allow_general=True)
    assert isinstance(answer.text, str) and answer.sources
    assert answer.timings.total_ms > 0

    meta = json.loads((tmp_path / "idx" / "index.json").read_text())["embedder"]
    assert meta["id"] == str(twins["embedder"]) and meta["dim"] == 64
    assert meta["max_tokens"] == 8192  # max_position_embeddings 32768, capped
    assert index.status().exists


# -- the Qwen3-Embedding path in mlx-embeddings ----------------------------------------------------


def test_last_token_pooling_is_the_final_hidden_state_of_the_appended_eos(twins, embedder):
    from mlx_embeddings.utils import load
    from tokenizers import Tokenizer

    from ingest.models import cast_for_cpu

    model, _ = load(str(twins["embedder"]))
    cast_for_cpu(model)
    tokenizer = Tokenizer.from_file(str(twins["embedder"] / "tokenizer.json"))
    for text in TEXTS[:2]:
        ids = tokenizer.encode(text).ids
        assert ids[-1] == 151643  # <|endoftext|>, appended by the tokenizer as in Qwen3-Embedding
        hidden = np.array(model.model(mx.array([ids])).astype(mx.float32))[0, -1]
        expected = hidden / np.linalg.norm(hidden)
        np.testing.assert_allclose(embedder.embed([text])[0], expected, atol=ATOL)


def test_a_conversion_whose_tokenizer_appends_no_eos_embeds_the_same(tmp_path, twins, embedder):
    # Qwen3-Embedding's tokenizer.json appends <|endoftext|> only since June 2025; older conversions don't
    folder = tmp_path / "old-tokenizer"
    shutil.copytree(twins["embedder"], folder)
    shutil.copyfile(TOKENIZER_DIR / "tokenizer.json", folder / "tokenizer.json")  # the chat models' one
    np.testing.assert_allclose(rag.MLXEmbedder(str(folder)).embed(TEXTS), embedder.embed(TEXTS), atol=ATOL)


def test_batched_equals_one_by_one_across_lengths(embedder):
    batched = embedder.embed(TEXTS)  # one padded batch: lengths 3 to ~45 tokens
    single = np.stack([embedder.embed([t])[0] for t in TEXTS])
    np.testing.assert_allclose(batched, single, atol=ATOL)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    assert batched.dtype == np.float32 and batched.shape == (len(TEXTS), embedder.dim) == (4, 64)


def test_the_qwen3_instruction_reaches_queries_and_never_documents(tmp_path, docs, embedder):
    # Qwen3-Embedding's own query prompt is "Instruct: {task}\nQuery:{query}" (no space after the colon)
    assert embedder.query_prefix.startswith("Instruct: ") and embedder.query_prefix.endswith("\nQuery:")
    counting = CountingEmbedder(embedder)
    index = rag.open_index(tmp_path / "idx", embed_model=counting, llm=None, reranker=False)
    index.add(docs)
    documents = list(counting.texts)
    assert documents and not any("Instruct:" in t for t in documents)
    index.search("Where is the spare key?", mode="vector")
    assert counting.texts[len(documents) :] == [embedder.query_prefix + "Where is the spare key?"]


# -- CPU: float32 scales (the fast path); GPU: the checkpoint as it is --------------------------------


@pytest.mark.skipif(not mlx_on_cpu(), reason="MLX computes on a GPU here")
def test_on_the_cpu_quantized_scales_become_float32(embedder, llm, reranker):
    embedder.embed(["load"])
    for model, bits in ((embedder._model, 8), (llm.model, 4), (reranker.model, 4)):
        layers = _quantized(model)
        assert layers and {(m.bits, m.group_size) for m in layers} == {(bits, 64)}
        assert {m.weight.dtype for m in layers} == {mx.uint32}  # still packed
        assert {m.scales.dtype for m in layers} == {m.biases.dtype for m in layers} == {mx.float32}


def test_a_gpu_is_the_default_device_even_without_metal(monkeypatch):
    from ingest.models import mlx_has_gpu, mlx_on_cpu

    monkeypatch.setattr(mx.metal, "is_available", lambda: False)  # MLX's CUDA backend
    monkeypatch.setattr(mx, "default_device", lambda: mx.Device(mx.gpu))
    assert mlx_has_gpu() and not mlx_on_cpu()
    monkeypatch.setattr(mx, "default_device", lambda: mx.Device(mx.cpu))
    assert not mlx_has_gpu() and mlx_on_cpu()


def test_with_a_gpu_models_keep_their_dtypes_and_the_stock_rope(monkeypatch, twins):
    import ingest.models
    from rag._rope import DecodeRoPE

    monkeypatch.setattr(ingest.models, "mlx_has_gpu", lambda: True)
    model, _ = load_lm(str(twins["llm"]), kind="chat model", env_var="RAG_LLM", flag="--llm")
    assert {m.scales.dtype for m in _quantized(model)} == {mx.bfloat16}
    assert model.model.norm.weight.dtype == mx.bfloat16
    ropes = [m for _, m in model.named_modules() if isinstance(m, nn.RoPE)]
    assert ropes and not any(isinstance(m, DecodeRoPE) for m in ropes)  # mx.fast.rope
    generator = rag.MLXGenerator(str(twins["llm"]))
    assert sum(p.generated_tokens > 0 for p in generator.stream([{"role": "user", "content": "hi"}], max_tokens=2))

    embedder = rag.MLXEmbedder(str(twins["embedder"]))
    vectors = embedder.embed(TEXTS[:2])
    assert {m.scales.dtype for m in _quantized(embedder._model)} == {mx.float16}
    assert embedder._streams() == [None] and not embedder.fast_cpu_kernels
    assert vectors.dtype == np.float32 and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)


# -- the chat model and the reranker -----------------------------------------------------------------


def test_the_chat_twin_uses_the_qwen3_template_with_thinking_off(llm):
    prompt = llm.format([{"role": "user", "content": "hi"}])
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert llm.context_window == 40960
    assert {151645, 151643} <= set(llm.tokenizer.eos_token_ids)  # generation_config.json's eos list


def test_the_reranker_scores_with_the_4bit_twin(reranker):
    tok = reranker.tokenizer
    assert (reranker.yes_id, reranker.no_id) == (tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no"))
    assert reranker._head is not None  # tied 4-bit embeddings as the LM head, checked against the full model
    passages = ["Under the blue flowerpot.", "Bananas are yellow and grow in bunches on tall plants.", "Keys."]
    scores = reranker.score("Where is the spare key?", passages)
    assert len(scores) == 3 and all(0.0 < s < 1.0 for s in scores)
    ids = reranker.prompt_ids("Where is the spare key?", passages[1])
    logits = reranker.model(mx.array([ids]))[0, -1, [reranker.no_id, reranker.yes_id]].astype(mx.float32)
    assert scores[1] == pytest.approx(mx.softmax(logits)[1].item(), abs=1e-4)  # batched, shared head == plain


# -- a broken twin is one clear error -------------------------------------------------------------------


def _config(folder, **fields):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | fields))
    return config


def _wrong_bits(folder):
    bits = 4 if _config(folder)["quantization"]["bits"] == 8 else 8
    _config(folder, quantization={"group_size": 64, "bits": bits}, quantization_config={"group_size": 64, "bits": bits})


def _extra_layer(folder):
    _config(folder, num_hidden_layers=3)  # weights for 2: mlx reports 18 missing parameters over 19 lines


def _no_tokenizer(folder):
    (folder / "tokenizer.json").unlink()  # transformers then builds a 26-token tokenizer from the config


def _load(name, folder):
    if name == "embedder":
        return rag.MLXEmbedder(str(folder)).embed(["x"])
    if name == "llm":
        return rag.MLXGenerator(str(folder))
    return MLXReranker(str(folder))


BROKEN = [
    ("embedder", _wrong_bits),
    ("embedder", _extra_layer),
    ("embedder", _no_tokenizer),
    ("llm", _extra_layer),
    ("llm", _no_tokenizer),
    ("reranker", _no_tokenizer),
]


@pytest.mark.parametrize(("name", "breakage"), BROKEN, ids=[f"{n}-{b.__name__[1:]}" for n, b in BROKEN])
def test_a_broken_twin_is_one_clear_model_load_error(tmp_path, twins, name, breakage):
    folder = tmp_path / twins[name].name
    shutil.copytree(twins[name], folder)
    breakage(folder)
    with pytest.raises(rag.ModelLoadError) as caught:
        _load(name, folder)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 600, message
    assert str(folder) in message and caught.value.hint, message


def test_mlx_lm_reads_the_bits_from_the_weights_when_the_config_is_wrong(tmp_path, twins):
    folder = tmp_path / "llm"
    shutil.copytree(twins["llm"], folder)
    _wrong_bits(folder)  # says 8; the packed weights are 4-bit: mlx-lm infers each layer's bits from shapes
    generator = _load("llm", folder)
    assert {m.bits for m in _quantized(generator.model)} == {4}
    assert sum(p.generated_tokens > 0 for p in generator.stream([{"role": "user", "content": "hi"}], max_tokens=2))

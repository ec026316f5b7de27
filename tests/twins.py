"""Structural twins of the default models, built offline: random weights at a tiny size, everything else
as the published mlx-community checkpoints have it.

    embedder   mlx-community/Qwen3-Embedding-0.6B-8bit  (mlx-embeddings; 8-bit, group 64, float16 scales)
    llm        mlx-community/Qwen3-4B-4bit (and -1.7B-4bit)  (mlx-lm; 4-bit, group 64, bf16; 2 shards)
    reranker   mlx-community/Qwen3-Reranker-0.6B-4bit  (mlx-lm; 4-bit, group 64, bf16)

Kept as published: model_type, architectures, vocabulary size, token ids, tied embeddings, explicit
head_dim (heads x head_dim != hidden, as in every Qwen3), rope_theta/rope_scaling,
max_position_embeddings, the `quantization`/`quantization_config` block, the dtype the converter leaves
(mlx-lm casts to the config's bfloat16; mlx-embeddings' convert to its float16 default), the safetensors
layout with `model.safetensors.index.json`, the real Qwen3 tokenizer and chat template, and for the
embedder the tokenizer's appended <|endoftext|> and the sentence-transformers files. Quantization is the
libraries' own (mlx_lm.utils.quantize_model, mlx_embeddings.convert.quantize_model); files are written by
their own savers. Shrunk: layers, hidden and MLP sizes, so a twin builds and loads in about a second.
Not reproduced: trained weights (outputs are gibberish) and anything Metal-specific.

Usage: python tests/twins.py OUT_DIR   (prints "NAME PATH" per twin)
This module only writes model folders; tests/test_defaults_twins.py uses them.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RAG_SHARED", ROOT.parent / "shared"))
TOKENIZER_DIR = SHARED / "models" / "qwen3-tokenizer"
GROUP_SIZE = 64

# Tiny sizes; head_dim is explicit and heads x head_dim (128) differs from hidden (64), as in Qwen3.
TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "max_window_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
}

# The fields every published Qwen3 config.json shares (Qwen/Qwen3-0.6B, -1.7B, -4B, -Embedding-0.6B,
# -Reranker-0.6B: transformers 4.51 configs).
_QWEN3 = {
    "architectures": ["Qwen3ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "model_type": "qwen3",
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000,
    "sliding_window": None,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.51.0",
    "use_cache": True,
    "use_sliding_window": False,
}
EMBEDDER = _QWEN3 | {"eos_token_id": 151643, "max_position_embeddings": 32768, "vocab_size": 151669}
LLM = _QWEN3 | {"eos_token_id": 151645, "max_position_embeddings": 40960, "vocab_size": 151936}
RERANKER = _QWEN3 | {"eos_token_id": 151645, "max_position_embeddings": 40960, "vocab_size": 151669}
# Qwen3-4B's generation_config.json (mlx-lm's converter copies it; its eos list is what mlx-lm stops on).
GENERATION = {
    "bos_token_id": 151643,
    "do_sample": True,
    "eos_token_id": [151645, 151643],
    "pad_token_id": 151643,
    "temperature": 0.6,
    "top_k": 20,
    "top_p": 0.95,
    "transformers_version": "4.51.0",
}
# Qwen3-Embedding's sentence-transformers files (copied by mlx-embeddings' converter with the *.json).
ST_CONFIG = {
    "prompts": {
        "query": "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:",
        "document": "",
    },
    "default_prompt_name": None,
    "similarity_fn_name": "cosine",
}
ST_MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]
ST_POOLING = {
    "word_embedding_dimension": 1024,
    "pooling_mode_cls_token": False,
    "pooling_mode_mean_tokens": False,
    "pooling_mode_max_tokens": False,
    "pooling_mode_mean_sqrt_len_tokens": False,
    "pooling_mode_weightedmean_tokens": False,
    "pooling_mode_lasttoken": True,
    "include_prompt": True,
}


def build_twins(out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write the three twins under `out_dir` (existing ones are rebuilt); returns {name: folder}."""
    out = Path(out_dir)
    return {
        "embedder": build_embedder(out / "Qwen3-Embedding-0.6B-8bit-twin"),
        "llm": build_lm(out / "Qwen3-4B-4bit-twin", LLM, shards=2, generation=GENERATION),
        "reranker": build_lm(out / "Qwen3-Reranker-0.6B-4bit-twin", RERANKER, shards=1),
    }


def build_lm(folder: Path, published: dict, *, shards: int, generation: dict | None = None, seed: int = 0) -> Path:
    """An mlx-lm Qwen3 the way `mlx_lm.convert --quantize` writes it: bf16, 4-bit group 64, tied."""
    import mlx.core as mx
    from mlx.utils import tree_map
    from mlx_lm import utils
    from mlx_lm.models import qwen3

    _fresh(folder)
    config = published | TINY
    mx.random.seed(seed)
    model = qwen3.Model(qwen3.ModelArgs.from_dict(config))
    # convert.py: floating params to the config's torch_dtype, then quantize_model
    model.update(
        tree_map(lambda v: v.astype(mx.bfloat16) if mx.issubdtype(v.dtype, mx.floating) else v, model.parameters())
    )
    with mock.patch("builtins.print"):  # quantize_model prints bits per weight
        model, config = utils.quantize_model(model, config, GROUP_SIZE, 4)
    config = _published_quantization(config, bits=4)
    with mock.patch.object(utils, "make_shards", lambda weights: _split(weights, shards)):
        utils.save_model(folder, model)
    utils.save_config(config, config_path=folder / "config.json")
    _tokenizer(folder)
    if generation:
        _write(folder / "generation_config.json", generation)
    return folder


def build_embedder(folder: Path, seed: int = 0) -> Path:
    """An mlx-embeddings Qwen3 the way `mlx_embeddings.convert --quantize --q-bits 8` writes it."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_embeddings import utils
    from mlx_embeddings.convert import quantize_model
    from mlx_embeddings.models import qwen3

    _fresh(folder)
    config = EMBEDDER | TINY
    mx.random.seed(seed)
    model = qwen3.Model(qwen3.ModelArgs.from_dict(config))
    # convert.py: every weight to its dtype argument (default float16), then quantize_model
    model.load_weights([(k, v.astype(mx.float16)) for k, v in tree_flatten(model.parameters())])
    with mock.patch("builtins.print"):
        weights, config = quantize_model(model, config, GROUP_SIZE, 8)
    utils.save_weights(folder, weights)
    _write(folder / "config_sentence_transformers.json", ST_CONFIG)
    _write(folder / "modules.json", ST_MODULES)
    (folder / "1_Pooling").mkdir()
    _write(folder / "1_Pooling" / "config.json", ST_POOLING | {"word_embedding_dimension": TINY["hidden_size"]})
    utils.save_config(_published_quantization(config, bits=8), config_path=folder / "config.json")
    _tokenizer(folder, append_eos=True)
    return folder


def _published_quantization(config: dict, bits: int) -> dict:
    """The quantization block as the 2025 mlx-community conversions carry it (no "mode" key, which
    newer converters add; both load the same)."""
    block = {"group_size": GROUP_SIZE, "bits": bits}
    return config | {"quantization": block, "quantization_config": dict(block)}


def _split(weights: dict, n: int) -> list[dict]:
    items = list(weights.items())
    size = -(-len(items) // n)
    return [dict(items[i : i + size]) for i in range(0, len(items), size)]


def _tokenizer(folder: Path, append_eos: bool = False) -> None:
    """The real Qwen3 tokenizer files. Qwen3-Embedding's tokenizer.json appends <|endoftext|> to every
    text (a TemplateProcessing post-processor, added upstream in June 2025); the chat models' do not."""
    shutil.copyfile(TOKENIZER_DIR / "tokenizer_config.json", folder / "tokenizer_config.json")
    tokenizer = json.loads((TOKENIZER_DIR / "tokenizer.json").read_text())
    if append_eos:
        eos = {"id": "<|endoftext|>", "type_id": 0}
        tokenizer["post_processor"] = {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": eos}],
            "pair": [
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": eos},
                {"Sequence": {"id": "B", "type_id": 1}},
                {"SpecialToken": {"id": "<|endoftext|>", "type_id": 1}},
            ],
            "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [151643], "tokens": ["<|endoftext|>"]}},
        }
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))


def _fresh(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def _write(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[-2])
    for name, path in build_twins(sys.argv[1]).items():
        print(name, path)

"""MLXReranker with real models: SmolLM2 for the scoring mechanics, the real Qwen3 tokenizer and chat
template for the prompt, Qwen2.5-0.5B (slow) for whether the answering passage actually ranks first.

SmolLM2-135M has no relevance signal in this yes/no format: a passage that answers the question and one
about bananas get P(yes) within ~0.01-0.03 of each other, in either direction, whatever the instruction.
So ranking is asserted with the 0.5B model only (margins 0.05-0.16 on these cases; it still misses
the spare-key answer, scoring it below a passage about bananas), and the SmolLM2 tests check what
must hold for any model.
"""

from __future__ import annotations

import json

import pytest
from conftest import _model

from rag.errors import ModelLoadError
from rag.rerank import MLXReranker, Reranker, answer_token_ids

QUERY = "What is the capital of France?"
PASSAGES = [
    "Paris is the capital and largest city of France.",
    "Bananas are a yellow fruit rich in potassium.",
    "Football is played by two teams of eleven players.",
    "The Eiffel Tower was finished in 1889.",
    "Giant pandas eat almost nothing but bamboo.",
]


@pytest.fixture(scope="module")
def smol_reranker(smollm2_path):
    return MLXReranker(str(smollm2_path), batch_size=3)


@pytest.fixture(scope="module")
def qwen3_reranker(qwen3_tiny_path):
    return MLXReranker(str(qwen3_tiny_path), max_passage_tokens=16)


@pytest.fixture(scope="module")
def qwen25_reranker():
    return MLXReranker(str(_model("Qwen2.5-0.5B-Instruct")))


def unbatched(reranker: MLXReranker, query: str, passage: str) -> float:
    """The reference: one whole prompt, no cache, no padding, softmax of the full last-position logits."""
    import mlx.core as mx  # after rag (imported above), so MLX gets the fast BLAS

    logits = reranker.model(mx.array([reranker.prompt_ids(query, passage)]))[0, -1]
    return mx.softmax(logits[mx.array([reranker.no_id, reranker.yes_id])], axis=-1)[1].item()


def test_scores_are_probabilities_in_order_and_deterministic(smol_reranker):
    assert isinstance(smol_reranker, Reranker)
    scores = smol_reranker.score(QUERY, PASSAGES)
    assert len(scores) == len(PASSAGES) and all(0.0 <= s <= 1.0 for s in scores)
    assert smol_reranker.score(QUERY, PASSAGES) == scores
    reversed_scores = smol_reranker.score(QUERY, PASSAGES[::-1])
    assert reversed_scores == pytest.approx(scores[::-1], abs=1e-4)
    assert smol_reranker.score(QUERY, []) == []


def test_batched_with_shared_prefix_equals_one_prompt_at_a_time(smol_reranker):
    passages = [*PASSAGES, "Short.", "A much longer passage " * 12]  # unequal lengths: padding in every batch
    batched = smol_reranker.score(QUERY, passages)
    assert batched == pytest.approx([unbatched(smol_reranker, QUERY, p) for p in passages], abs=1e-4)
    assert batched == pytest.approx([smol_reranker.score(QUERY, [p])[0] for p in passages], abs=1e-4)


def test_qwen3_prompt_ends_with_an_empty_think_block_and_answer_tokens_are_real(qwen3_reranker):
    tokenizer = qwen3_reranker.tokenizer
    ids = qwen3_reranker.prompt_ids(QUERY, PASSAGES[0])
    text = tokenizer.decode(ids)
    assert ids == tokenizer.encode(text, add_special_tokens=False)  # head|passage|tail split changes no token
    assert text.startswith("<|im_start|>system\nJudge whether the Document meets the requirements")
    assert f"<Query>: {QUERY}\n<Document>: {PASSAGES[0]}<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")  # the score is read right here
    assert tokenizer.convert_ids_to_tokens([qwen3_reranker.yes_id, qwen3_reranker.no_id]) == ["yes", "no"]
    assert qwen3_reranker.no_id != qwen3_reranker.yes_id


def test_long_passages_are_cut_to_max_passage_tokens_and_the_template_stays_whole(qwen3_reranker):
    long = " ".join(f"word{i}" for i in range(300))
    short_ids = qwen3_reranker.prompt_ids(QUERY, "word0")
    long_ids = qwen3_reranker.prompt_ids(QUERY, long)
    passage_tokens = len(qwen3_reranker.tokenizer.encode(" word0", add_special_tokens=False))
    assert len(long_ids) == len(short_ids) - passage_tokens + 16
    text = qwen3_reranker.tokenizer.decode(long_ids)
    assert "word0" in text and "word299" not in text
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")
    scores = qwen3_reranker.score(QUERY, [long, "word0"])
    assert scores == pytest.approx([unbatched(qwen3_reranker, QUERY, p) for p in (long, "word0")], abs=1e-4)


def test_unloadable_models_raise_model_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="no such folder"):
        MLXReranker(str(tmp_path / "missing"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    with pytest.raises(ModelLoadError, match="cannot load reranker .*broken"):
        MLXReranker(str(broken))


def test_a_tokenizer_without_yes_and_no_tokens_is_refused():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = models.WordLevel({c: i for i, c in enumerate("? abcdefghijklmnopqrstuvwxyz")}, unk_token="?")
    raw = Tokenizer(chars)
    raw.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")  # one token per character
    with pytest.raises(ModelLoadError, match="no single token for 'yes'"):
        answer_token_ids(PreTrainedTokenizerFast(tokenizer_object=raw), "char-model")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("query", "relevant", "others"),
    [
        (QUERY, PASSAGES[0], PASSAGES[1:3]),
        ("How many legs does a spider have?", "A spider has eight legs.", PASSAGES[1:3]),
        ("Who wrote Romeo and Juliet?", "Romeo and Juliet was written by William Shakespeare.", PASSAGES[1:3]),
        ("What is the boiling point of water?", "Water boils at 100 degrees Celsius at sea level.", PASSAGES[1:3]),
    ],
)
def test_a_real_chat_model_ranks_the_answering_passage_first(qwen25_reranker, query, relevant, others):
    scores = qwen25_reranker.score(query, [*others, relevant])
    assert scores[-1] == max(scores), scores

"""Decide, before generating, whether the retrieved sources are relevant enough to answer from.

Two signals, both measured on the sources the model would see:
- `similarity`: the best cosine similarity between the question and a source (the embedder's view);
- `coverage`: the largest share of the question's content words found in any one source (Chinese:
  character pairs between function characters; see `coverage`).
A logistic model turns them into P(the sources hold the answer); the question is refused when that is
below the threshold. Weights and threshold are calibrated on labelled questions (answerable ones and
the same questions with their gold passage removed from the index) by `calibrate`, choosing the
threshold that refuses at most a target share (default 5%) of answerable calibration questions; the
results live in calibration.json per embedder, with the data and command that produced them. An
embedder without a calibration uses the coverage-only model (calibrated the same way), because cosine
scales differ between embedders. The model may still refuse after this gate; see prompt.is_refusal.

`ReadCheck` is the second check, past the gate: the chat model reads the sources and the question in
the answer's own prompt, and the question is refused when its probability of replying "not found"
is above a threshold calibrated for that model (on questions whose paragraph stays but lost its answer
sentences, the case similarity can't see). This module does not retrieve or generate.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.citations import support, words
from rag.types import Source

CALIBRATION_FILE = Path(__file__).with_name("calibration.json")
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_HAN_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
_FUNCTION_HAN = re.compile("[如何的是么什怎吗呢了]+")  # question and grammar words: never what an answer is about
COVERAGE_ONLY = "coverage-only"
CHECKS = "read checks"  # calibration.json's table of ReadCheck thresholds, by chat model name


@dataclass(frozen=True)
class Gate:
    """P(answerable) = sigmoid(w_similarity * similarity + w_coverage * coverage + bias); refuse below
    `threshold`. `w_similarity` is 0 for the coverage-only gate."""

    name: str
    w_similarity: float
    w_coverage: float
    bias: float
    threshold: float
    calibrated_on: str = ""
    confident: float = 2.0  # P above which the sources surely hold an answer (2.0: never)
    k: int = 5  # the gate judges this many best sources, however many the model is then shown

    def probability(self, question: str, sources: Sequence[Source]) -> float:
        return self.probability_of(*features(question, sources))

    def probability_of(self, similarity: float, coverage: float) -> float:
        z = self.w_similarity * similarity + self.w_coverage * coverage + self.bias
        return 1.0 / (1.0 + math.exp(-z))

    def refuses(self, question: str, sources: Sequence[Source]) -> tuple[bool, str]:
        """(refuse?, a one-line reason with the numbers)."""
        if not sources:
            return True, "no sources were retrieved"
        sim, cov = features(question, sources)
        p = self.probability_of(sim, cov)
        why = f"relevance {p:.2f} < {self.threshold:.2f} (similarity {sim:.2f}, coverage {cov:.2f}; gate {self.name})"
        return p < self.threshold, why if p < self.threshold else ""


def features(question: str, sources: Sequence[Source]) -> tuple[float, float]:
    """(best cosine similarity, best share of the question's terms in one source)."""
    sims = [s.similarity for s in sources if s.similarity is not None]
    cov = max((coverage(question, s.text) for s in sources), default=0.0)
    return (max(sims) if sims else 0.0), cov


def coverage(question: str, text: str) -> float:
    """Share of the question's terms found in `text`: its content words, and for Chinese the character
    pairs of each run between function characters ("如何列出文件的内容" -> 列出, 文件, 内容). Single
    characters are too common to tell pages apart (any Chinese page holds most of a question's
    characters); for a question without Han characters this is citations.support."""
    latin = [w for w in words(question) if not _HAN.fullmatch(w)]
    runs = [r for run in _HAN_RUN.findall(question) for r in _FUNCTION_HAN.split(run) if r]
    han = [r[i : i + 2] for r in runs for i in range(max(len(r) - 1, 1))]
    if not han:
        return support(question, text)
    wanted, flat, present = set(latin) | set(han), text.lower(), set(words(text))
    return sum(w in present if w in latin else w in flat for w in wanted) / len(wanted)


def gate_for(embedder_id: str) -> Gate:
    """The calibrated gate for this embedder (matched by its folder/hub name), else coverage-only."""
    table = _calibrations()
    name = Path(str(embedder_id).rstrip("/")).name
    entry = table.get(name) or table.get(COVERAGE_ONLY)
    if entry is None:
        return Gate(COVERAGE_ONLY, 0.0, 0.0, 1.0, 0.0)  # uncalibrated: never refuses before generating
    fields = ("name", "w_similarity", "w_coverage", "bias", "threshold", "calibrated_on", "confident", "k")
    return Gate(**{key: entry[key] for key in fields if key in entry})


@dataclass(frozen=True)
class ReadCheck:
    """The second check, made by the chat model that reads the sources: refuse when the model's own
    probability of opening its reply with the "not found" sentence is above `threshold`, although its
    greedy reply may not be that sentence. The prompt is the answer's own, so the reply reuses its KV
    cache; the threshold is chat-model specific, calibrated per model (bench/answerability.py)."""

    model: str
    threshold: float  # P(reply opens with "not found") above which the question is refused
    calibrated_on: str = ""

    def refuses(self, logprob: float | None) -> tuple[bool, str]:
        if logprob is None:
            return False, ""
        p = math.exp(logprob)
        return (
            p > self.threshold,
            f"the model reads the sources as not holding the answer (P(not found) {p:.2f} > {self.threshold:.2f})",
        )


def check_for(llm_id: str | None) -> ReadCheck | None:
    """The calibrated read check for this chat model (matched by its folder/hub name); None when the model
    has none (thresholds don't carry over between models, so an uncalibrated one is not checked)."""
    if not llm_id:
        return None
    table = _calibrations()
    entry = table.get(CHECKS, {}).get(Path(str(llm_id).rstrip("/")).name)
    return None if entry is None else ReadCheck(entry["model"], entry["threshold"], entry.get("calibrated_on", ""))


def _calibrations() -> dict:
    """calibration.json's content ({} when the file is absent)."""
    return json.loads(CALIBRATION_FILE.read_text()) if CALIBRATION_FILE.is_file() else {}


def calibrate(
    answerable: Sequence[tuple[float, float]],
    unanswerable: Sequence[tuple[float, float]],
    *,
    name: str,
    use_similarity: bool = True,
    false_refusal: float = 0.05,
    calibrated_on: str = "",
    k: int = 5,
) -> Gate:
    """Fit the gate to (similarity, coverage) pairs of answerable and unanswerable questions: logistic
    regression by gradient descent (balanced classes), threshold at the `false_refusal` quantile of the
    answerable questions' probabilities, and `confident` at the 95th percentile of the unanswerable
    questions' probabilities (above it, a model's "not in the sources" is asked again)."""
    pos, neg = np.asarray(answerable, dtype=np.float64), np.asarray(unanswerable, dtype=np.float64)
    x = np.concatenate([pos, neg])
    if not use_similarity:
        x[:, 0] = 0.0
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    weight = np.where(y == 1, 0.5 / len(pos), 0.5 / len(neg))
    design = np.column_stack([x, np.ones(len(x))])
    w = np.zeros(3)
    for _ in range(5000):
        p = 1.0 / (1.0 + np.exp(-design @ w))
        w -= 2.0 * design.T @ ((p - y) * weight)
    probs = 1.0 / (1.0 + np.exp(-design @ w))
    threshold = float(np.quantile(probs[: len(pos)], false_refusal))
    confident = float(np.quantile(probs[len(pos) :], 0.95))
    return Gate(name, float(w[0]), float(w[1]), float(w[2]), threshold, calibrated_on, confident, k)

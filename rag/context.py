"""Turn ranked chunks into the sources an LLM sees: diversified, optionally widened, merged.

- diversify: at most `per_document` chunks from one document while other relevant documents remain,
  so five chunks of one page don't crowd out the rest (the skipped ones fill any remaining slots);
- widen: add each hit's neighbouring chunks (±`widen`) from the same document, for context;
- merge: adjacent or overlapping chunks of the same document and page become one source (the chunk
  overlap is removed using the character offsets), ranked by its best chunk;
- budget: keep the best sources whose text fits the model's context budget (counted by its tokenizer);
- whole document: find the indexed document a question names ("summarise boiler-manual.pdf"), so the
  caller can give the model that whole document when it fits.
This module does not search; it reshapes what retrieve.py returns.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import PurePath

from ingest.store import Store
from rag.retrieve import source_from_row
from rag.types import Source

DEFAULT_PER_DOCUMENT = 2


def assemble(
    ranked: Sequence[Source],
    k: int,
    *,
    store: Store | None = None,
    widen: int = 0,
    per_document: int = DEFAULT_PER_DOCUMENT,
) -> list[Source]:
    """The k sources to show a model, from `ranked` (best first)."""
    chosen = diversify(ranked, k, per_document)
    if widen and store is not None:
        chosen = [n for s in chosen for n in _with_neighbours(store, s, widen)]
    return merge_adjacent(chosen)


def diversify(ranked: Sequence[Source], k: int, per_document: int = DEFAULT_PER_DOCUMENT) -> list[Source]:
    """Top k, taking at most `per_document` chunks per document before taking more from any one."""
    taken: list[Source] = []
    held: list[Source] = []
    counts: dict[tuple[str, str], int] = {}
    for source in ranked:
        key = (source.collection, source.path)
        if counts.get(key, 0) < per_document:
            counts[key] = counts.get(key, 0) + 1
            taken.append(source)
        else:
            held.append(source)
        if len(taken) == k:
            return taken
    order = {s.chunk_id: i for i, s in enumerate(ranked)}
    return sorted(taken + held[: k - len(taken)], key=lambda s: order[s.chunk_id])


def merge_adjacent(sources: Sequence[Source]) -> list[Source]:
    """Merge chunks of the same document and page whose chunk indexes are consecutive; keep rank order
    by each merged group's best (first-ranked) chunk."""
    rank: dict[str, int] = {}
    for i, s in enumerate(sources):
        rank.setdefault(s.chunk_id, i)
    groups: dict[tuple, list[Source]] = {}
    for s in sources:
        groups.setdefault((s.collection, s.path, s.page), []).append(s)
    merged: list[tuple[int, Source]] = []
    for members in groups.values():
        run: list[Source] = []
        for s in sorted({m.chunk_id: m for m in members}.values(), key=lambda m: m.chunk_index):
            if run and s.chunk_index > run[-1].chunk_index + 1:
                merged.append(_merge(run, rank))
                run = []
            run.append(s)
        merged.append(_merge(run, rank))
    return [s for _, s in sorted(merged, key=lambda pair: pair[0])]


def _merge(run: list[Source], rank: dict[str, int]) -> tuple[int, Source]:
    best = min(run, key=lambda s: rank.get(s.chunk_id, len(rank)))
    text, end = run[0].text, run[0].char_end
    for s in run[1:]:
        overlap = _overlap(text, s.text, end - s.char_start)
        text += s.text[overlap:] if 0 < overlap < len(s.text) else ("" if overlap >= len(s.text) else "\n" + s.text)
        end = max(end, s.char_end)
    score = max(s.score for s in run)
    similarity = max((s.similarity for s in run if s.similarity is not None), default=None)
    merged = replace(
        best,
        text=text,
        char_start=run[0].char_start,
        char_end=end,
        chunk_index=run[0].chunk_index,
        score=score,
        similarity=similarity,
    )
    return rank.get(best.chunk_id, len(rank)), merged


def _overlap(text: str, following: str, hint: int) -> int:
    """How many leading characters of `following` repeat the end of `text`. `hint` comes from the
    chunks' offsets into the original text; normalisation (a ligature spelled out, a dropped control
    character) can shift it by a few characters, so the nearest length at which the texts agree wins."""
    if not 0 < hint < len(following) or text.endswith(following[:hint]):
        return hint
    for delta in range(1, 33):
        for k in (hint - delta, hint + delta):
            if 0 < k < len(following) and text.endswith(following[:k]):
                return k
    return hint


def _with_neighbours(store: Store, source: Source, widen: int) -> list[Source]:
    indexes = range(source.chunk_index - widen, source.chunk_index + widen + 1)
    rows = store.neighbours(source.collection, source.path, indexes)
    # a neighbour is shown with the hit's score: it is there as the hit's context
    return [source if row.id == source.chunk_id else source_from_row(row, source.score) for row in rows] or [source]


def fit_budget(sources: Sequence[Source], count_tokens, budget: int, per_source_overhead: int = 16) -> list[Source]:
    """The best-first prefix of `sources` whose texts (counted with the model's tokenizer) fit in `budget`
    tokens; a source that doesn't fit is left out and later, smaller ones still get their chance. If not
    even the best one fits, it is cut to the budget (approximately, by its character share)."""
    kept: list[Source] = []
    used = 0
    for s in sources:
        need = count_tokens(f"{s.location}\n{s.text}") + per_source_overhead  # the prompt labels each source
        if used + need <= budget:
            kept.append(s)
            used += need
    if not kept and sources and budget > per_source_overhead:
        best = sources[0]
        share = (budget - per_source_overhead) / max(count_tokens(best.text), 1)
        kept = [replace(best, text=best.text[: max(1, int(len(best.text) * share * 0.95))])]
    return kept


def named_document(question: str, paths: Sequence[str]) -> str | None:
    """The indexed document the question names, if exactly one longest match exists: by its file name
    with extension ("summarise boiler-manual.pdf"), or by a stem of several words ("summarize the boiler
    manual"). A one-word stem alone ("time" for time.md) is too common a word to count."""
    flat = _normal(question)
    found: dict[str, int] = {}
    for path in paths:
        name = PurePath(path).name
        stem = _normal(PurePath(name).stem)
        forms = {_normal(name)} | ({stem} if " " in stem else set())
        for form in forms:
            if len(form) >= 4 and re.search(rf"(?<!\w){re.escape(form)}(?!\w)", flat):
                found[path] = max(found.get(path, 0), len(form))
    if not found:
        return None
    best = max(found.values())
    winners = [p for p, n in found.items() if n == best]
    return winners[0] if len(winners) == 1 else None


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[-_.]+", " ", text.lower()).split())

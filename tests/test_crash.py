"""Crash safety on real parts: a real `rag index` subprocess killed with SIGKILL at several moments leaves
an index that opens, holds only whole documents (never a duplicate or half-written one), and the next run
finishes exactly the remaining work. A reader in another process sees whole commits while a writer runs.

The folder is ~80 real abstracts (SciFact): most short (one chunk), every 16th long enough for 2+ chunks,
written with --batch-chunks 8 so a run makes ~11 commits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import assert_consistent, data_path

import rag
from ingest.store import META_FILE, Store

N_DOCS = 80
SHORT_WORDS = 30
LONG_EVERY = 16  # every 16th document is a long one
READ_SECONDS = 6  # how long the reader reads while the clean run writes
RUN_TIMEOUT = 120  # seconds; a whole run takes ~10 s on a 2-core CPU
Sizes = dict[tuple[str, str], int]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """80 .txt abstracts; every 16th is a full abstract of 260+ words (2+ chunks), the rest are short."""
    folder = tmp_path_factory.mktemp("crash") / "abstracts"
    folder.mkdir()
    long_docs, short_docs = [], []
    with data_path("scifact", "corpus.jsonl").open() as f:
        for line in f:
            doc = json.loads(line)
            words = doc["text"].split()
            if len(words) > 260 and len(long_docs) < N_DOCS // LONG_EVERY:
                long_docs.append(f"{doc['title']}\n\n{doc['text']}\n")
            elif len(words) > SHORT_WORDS and len(short_docs) < N_DOCS - N_DOCS // LONG_EVERY:
                short_docs.append(f"{doc['title']}\n\n{' '.join(words[:SHORT_WORDS])}\n")
            if len(long_docs) + len(short_docs) == N_DOCS:
                break
    assert len(long_docs) + len(short_docs) == N_DOCS
    for i in range(N_DOCS):
        text = long_docs.pop() if i % LONG_EVERY == 0 else short_docs.pop()
        (folder / f"abstract{i:03d}.txt").write_text(text)
    return folder


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_") or k in ("RAG_TEST_MODELS", "RAG_SHARED")}
    return env | {"RAG_HOME": str(home), "HF_HUB_OFFLINE": "1"}


class Runner:
    """Starts real `rag index FOLDER --index IDX` processes; their output goes to log files."""

    def __init__(self, folder: Path, minilm_path: Path, workdir: Path) -> None:
        self.folder, self.minilm_path, self.workdir = folder, minilm_path, workdir
        self.runs = 0

    def command(self, idx: Path, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-c",
            "from rag.cli import app; app()",
            "index",
            str(self.folder),
            "--index",
            str(idx),
            "--embed-model",
            str(self.minilm_path),
            "--batch-chunks",
            "8",
            *extra,
        ]

    def start(self, idx: Path, *extra: str) -> subprocess.Popen:
        self.runs += 1
        out, err = self.workdir / f"run{self.runs}.out", self.workdir / f"run{self.runs}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(
                self.command(idx, *(extra or ("--quiet",))),
                env=_env(self.workdir / "home"),
                stdout=stdout,
                stderr=stderr,
            )
        proc.out, proc.err = out, err  # type: ignore[attr-defined]
        return proc

    def complete(self, idx: Path) -> dict:
        """Run to completion (exit 0); returns the run's report (--json)."""
        done = subprocess.run(
            self.command(idx, "--json"),
            env=_env(self.workdir / "home"),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)


@pytest.fixture(scope="module")
def runner(corpus, minilm_path, tmp_path_factory) -> Runner:
    workdir = tmp_path_factory.mktemp("runs")
    (workdir / "home").mkdir()
    return Runner(corpus, minilm_path, workdir)


@dataclass
class CleanRun:
    sizes: Sizes  # chunks per document at the end
    snapshots: list[tuple[Sizes, list[str]]]  # what the reader saw meanwhile: chunks per document, hit paths
    reader_error: str | None


@pytest.fixture(scope="module")
def clean(runner, tmp_path_factory, embedder) -> CleanRun:
    """A clean, never-killed run. While it runs, this process reads the index as a second reader would:
    open it, check it, search it (what it saw is checked in test_reader_sees_whole_commits_while_a_writer_runs).
    Sharing the run saves a whole index run of test time."""
    idx = tmp_path_factory.mktemp("clean") / "idx"
    snapshots: list[tuple[Sizes, list[str]]] = []
    reader_error = None
    proc = runner.start(idx, "--json")
    try:
        _wait_for(lambda: _stored_chunks(idx) > 0, proc, RUN_TIMEOUT, "the first commit")
        deadline = time.monotonic() + READ_SECONDS
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                sizes = assert_consistent(idx)
                with warnings.catch_warnings():  # between the first commit and the text index: vector only
                    warnings.simplefilter("ignore", rag.IndexIncomplete)
                    hits = rag.open_index(idx, embed_model=embedder).search("cerebral white matter in newborns", k=3)
            except Exception:  # reported by the reader test, not as an error of every test here
                reader_error = traceback.format_exc()
                break
            snapshots.append((sizes, [h.path for h in hits]))
        assert proc.wait(timeout=RUN_TIMEOUT) == 0, proc.err.read_text()
    finally:
        _kill(proc)
    report = json.loads(proc.out.read_text())
    sizes = assert_consistent(idx)
    assert len(report["added"]) == len(sizes) == N_DOCS and report["failed"] == []
    assert sum(sizes.values()) == report["chunks"] and max(sizes.values()) >= 2
    return CleanRun(sizes, snapshots, reader_error)


def _stored_chunks(idx: Path) -> int:
    """Chunks committed so far, or -1 while there is no readable index yet (it is being created)."""
    if not (idx / META_FILE).is_file() or not (idx / "chunks.lance").is_dir():
        return -1  # don't let this poller be the one creating the table
    try:
        return Store.open(idx).count_chunks()
    except Exception:  # transient while the writer creates the index; asserted on afterwards
        return -1


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the writer exited ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def _assert_whole_documents(sizes: Sizes, clean: Sizes) -> None:
    """Every stored document is one the clean run has, with exactly as many chunks (none half-written)."""
    for key, n in sizes.items():
        assert key in clean, f"unexpected document {key}"
        assert n == clean[key], f"{key} has {n} of its {clean[key]} chunks"


def _finish_and_compare(runner: Runner, idx: Path, clean: Sizes, before: Sizes) -> None:
    """The next run adds exactly the missing documents, re-doing none of the committed ones."""
    report = runner.complete(idx)
    assert (idx / META_FILE).is_file()
    assert assert_consistent(idx) == clean
    assert sorted(report["added"]) == sorted(path for (_, path) in clean if ("default", path) not in before)
    assert sorted(report["unchanged"]) == sorted(path for (_, path) in before)
    assert report["chunks"] == sum(clean.values()) - sum(before.values())
    assert report["updated"] == report["removed"] == report["failed"] == []


def test_kill_early_before_the_first_commit_then_rerun_completes(runner, clean, tmp_path):
    idx = tmp_path / "idx"
    expected = clean.sizes
    total = sum(expected.values())

    proc = runner.start(idx)  # killed ~1 s in: the embedding model is still loading
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=1.0)
    finally:
        _kill(proc)
    assert proc.returncode == -signal.SIGKILL
    if (idx / META_FILE).exists():
        assert sum(assert_consistent(idx).values()) == 0

    proc = runner.start(idx)  # killed the moment the index folder appears: creating the store, no commit yet
    try:
        _wait_for(lambda: (idx / META_FILE).exists(), proc, RUN_TIMEOUT, "the index folder appeared")
    finally:
        _kill(proc)
    assert proc.returncode == -signal.SIGKILL, proc.err.read_text()
    before = assert_consistent(idx)  # it opens (an index.json without a table is fine)
    _assert_whole_documents(before, expected)
    assert sum(before.values()) < total

    _finish_and_compare(runner, idx, expected, before)


@pytest.mark.parametrize(
    "when, threshold",
    [("after the first commits", 0.0), ("late, past half of the work", 0.5)],
    ids=["after-first-commit", "late"],
)
def test_kill_mid_run_leaves_whole_documents_and_rerun_completes(runner, clean, tmp_path, when, threshold):
    idx = tmp_path / "idx"
    expected = clean.sizes
    total = sum(expected.values())
    proc = runner.start(idx)
    try:
        _wait_for(lambda: _stored_chunks(idx) > total * threshold, proc, RUN_TIMEOUT, when)
    finally:
        _kill(proc)
    assert proc.returncode == -signal.SIGKILL, proc.err.read_text()

    before = assert_consistent(idx)
    _assert_whole_documents(before, expected)
    assert total * threshold < sum(before.values()) < total, "the kill did not land mid-run"

    _finish_and_compare(runner, idx, expected, before)


def test_reader_sees_whole_commits_while_a_writer_runs(clean):
    assert clean.reader_error is None, clean.reader_error
    seen = [sum(sizes.values()) for sizes, _ in clean.snapshots]
    assert len(seen) >= 3, f"too few reads while the writer ran: {seen}"
    assert len(set(seen)) >= 2 and seen[0] < sum(clean.sizes.values()), f"the reader did not overlap the writer: {seen}"
    assert seen == sorted(seen), f"a reader saw the index shrink: {seen}"
    for sizes, hits in clean.snapshots:
        _assert_whole_documents(sizes, clean.sizes)  # only whole documents, in every snapshot
        assert hits and all(("default", path) in clean.sizes for path in hits)

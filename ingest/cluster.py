"""An index run spread over a Ray cluster: the same run as pipeline.py, with its heavy work on the workers.

The driver (the machine running `rag index --ray`) discovers the files and decides what each needs exactly
as a local run does (pipeline._Run: unchanged files skipped by size and mtime, touched, renamed, failures
not retried until something that decides them changed); then
- loading (with OCR) and chunking run as Ray tasks, one per file, a bounded number in flight;
- embedding runs on a pool of Ray actors, each of which loads the embedder once (one per GPU, or a
  configured CPU share each) and writes the Lance fragment of the batch it embedded, in parallel;
- the driver commits each batch's fragments, together with the removal of the documents' old chunks, in
  ONE Lance commit (store.commit_fragments). So a document is whole or absent after a crash at any
  moment, as in a local run; a batch holds `batch_chunks` chunks (default WRITE_BATCH_CHUNKS per worker).
A worker that dies is restarted by Ray and its task retried (max_restarts, max_task_retries); fragments a
killed worker wrote but nobody committed are never read (Lance's cleanup removes such files). If the
driver dies, the index keeps its last commit and the next run does what is left.

Every worker must see the files at the paths the driver sees (a shared file system) and the same
embedding model at the same folder or hub id: each actor checks the model's fingerprint against the
index's. Ray (and pylance, which writes and commits fragments) come with the optional `[cluster]`
extra and are imported only here, only when a run asks for a cluster.
This module decides nothing about which files need work: pipeline._Run does, as for a local run.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ingest.chunking import ChunkConfig
from ingest.embed import Embedder, MLXEmbedder
from ingest.errors import RagError, UnsupportedFile
from ingest.ocr import DEFAULT_MODE, Reader
from ingest.pipeline import WRITE_BATCH_CHUNKS, IndexReport, Progress, _Job, _reason, _Run, load_and_chunk
from ingest.store import DEFAULT_COLLECTION, ChunkRow, Store, arrow_rows

IN_FLIGHT_PER_WORKER = 4  # load tasks queued per embedding actor: enough to keep the actors fed


@dataclass(frozen=True)
class Cluster:
    """Where and how wide an index run spreads.

    Args:
        address: a running cluster ("auto": the one `ray start` made on this machine; "ray://host:10001";
            "host:6379"), or None to start a local cluster for this run (and stop it after).
        workers: embedding actors. Default: one per GPU in the cluster, else one per `embed_cpus` of
            its CPUs less one CPU for loading.
        embed_cpus: CPUs each embedding actor reserves where there is no GPU. Default 1.
    """

    address: str | None = None
    workers: int | None = None
    embed_cpus: float = 1.0


def index_paths_ray(
    paths: Iterable[str | os.PathLike[str]],
    store: Store,
    embedder: Embedder,
    chunking: ChunkConfig = ChunkConfig(),
    *,
    cluster: Cluster = Cluster(),
    collection: str = DEFAULT_COLLECTION,
    password: str | None = None,
    progress: Callable[[Progress], None] | None = None,
    batch_chunks: int | None = None,
    on_wait: Callable[[str], None] | None = None,
    ocr: str = DEFAULT_MODE,
) -> IndexReport:
    """`pipeline.index_paths` on a Ray cluster: same arguments, same report, same index afterwards (the
    same chunk ids; vectors equal to float tolerance). `embedder` must be an MLXEmbedder (the workers
    load it again by its id)."""
    if not isinstance(embedder, MLXEmbedder):
        raise RagError("a cluster run needs an MLX embedding model named by hub id or folder",
                       "pass embed_model as a string, not an Embedder object")  # fmt: skip
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        _start(ray, cluster)
    try:
        workers = cluster.workers or _default_workers(ray, cluster)
        tell = progress or (lambda _progress: None)
        reader = Reader(ocr, cache=store.ocr_cache)
        with store.write_lock(on_wait):
            run = _ClusterRun(store, embedder, chunking, collection, password, [str(p) for p in paths], reader)
            run.batch_chunks = batch_chunks or WRITE_BATCH_CHUNKS * workers
            try:
                run.start(ray, workers, cluster, tell)
                return run.go()
            finally:
                run.stop()  # the actors give their CPUs (or GPUs) back to a cluster that keeps running
    finally:
        if started:
            ray.shutdown()


def _import_ray():
    try:
        with _quiet_fork_warnings():
            import lance  # noqa: F401 - fragments are written and committed with pylance
            import ray
    except ImportError as exc:
        raise RagError(
            f"a cluster run needs Ray and pylance ({exc.name} is not installed)",
            "pip install 'rag-ondevice[cluster]'",
        ) from None
    return ray


def _start(ray, cluster: Cluster) -> None:
    """Connect to `cluster.address`, or start a local cluster with room for the actors and a loader."""
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if not cluster.address:
        workers = cluster.workers or 1
        options["num_cpus"] = max(os.cpu_count() or 1, int(np.ceil(workers * cluster.embed_cpus)) + 1)
    with _quiet_fork_warnings():
        ray.init(address=cluster.address, **options)


@contextmanager
def _quiet_fork_warnings():
    """Lance and LanceDB warn when a process that loaded them forks; Ray's start-up forks only to exec
    its own programs (raylet, GCS), which never touch Lance state, so those warnings don't apply."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*fork", category=RuntimeWarning)
        warnings.filterwarnings("ignore", message=".*fork-safe", category=UserWarning)
        yield


def _default_workers(ray, cluster: Cluster) -> int:
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return gpus
    return max(1, int((resources.get("CPU", 1) - 1) // cluster.embed_cpus))


class _ClusterRun(_Run):
    """pipeline._Run with loading on Ray tasks and embedding + fragment writing on Ray actors."""

    actors: list = []

    def stop(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []

    def start(self, ray, workers: int, cluster: Cluster, tell: Callable[[Progress], None]) -> None:
        self.ray, self.tell = ray, tell
        self.schema = self.store.prepare_writes()
        gpu = bool(ray.cluster_resources().get("GPU", 0))
        actor = ray.remote(_EmbedWorker).options(
            num_gpus=1 if gpu else 0, num_cpus=0 if gpu else cluster.embed_cpus, max_restarts=3, max_task_retries=3
        )
        self.actors = [actor.remote(self.embedder.id, cluster.embed_cpus) for _ in range(workers)]
        fingerprints = ray.get([a.fingerprint.remote() for a in self.actors])
        if any(f != self.store.meta["embedder"]["fingerprint"] for f in fingerprints):
            raise RagError(
                f"a cluster worker's embedding model '{self.embedder.id}' is not the one that built this index",
                "give every machine the same model at the same folder (or hub id)",
            )
        self.load_task = ray.remote(max_retries=3)(_load_task)
        self.in_flight = IN_FLIGHT_PER_WORKER * workers

    def go(self) -> IndexReport:
        from ingest.discover import discover

        self.tell(Progress("", 0, 0, 0, 0, "discovering"))
        files = list(discover(self.given))
        self.plan_removals({str(f) for f in files})
        total, done = len(files), 0
        running: dict[Any, _Job] = {}
        options = (self.embedder.id, self.chunking, self.password, self.ocr.mode, self.ocr.cache)
        for path in files:
            stat = None
            try:
                stat = self.stat(path)
                job = self.plan(path, stat)
            except Exception as exc:  # noqa: BLE001 - containment: one file never aborts the run
                self.contain(path, str(path), stat, exc)
                job = None
            if job is None:
                done += 1
                self.tell(self.progress(path, done, total, "done"))
                continue
            running[self.load_task.remote(str(path), *options)] = job
            while len(running) >= self.in_flight:
                done += self._collect(running, total, done)
        while running:
            done += self._collect(running, total, done)
        last = files[-1] if files else Path("")  # the last batch is embedded and written after the last file
        self.on_phase = lambda phase: self.tell(self.progress(last, total, total, phase))
        return self.finish()

    def _collect(self, running: dict, total: int, done: int) -> int:
        """Take the next finished load task: its chunks join the pending batch (flushed when full)."""
        [ref], _ = self.ray.wait(list(running), num_returns=1)
        job = running.pop(ref)
        kind, value, problems, pages, calls = self.ray.get(ref)
        self.ocr.pages += pages
        self.ocr.calls += calls
        if kind == "ok":
            self.accept(job, value, problems)
        else:
            exc: Exception = UnsupportedFile(value) if kind == "unsupported" else _Failure(value)
            self.contain(job.path, job.key, job.stat, exc)
        self.on_phase = lambda phase: self.tell(self.progress(job.path, done, total, phase))
        self.on_phase("loading")
        if self.pending_chunks >= self.batch_chunks:
            self.flush()
        self.tell(self.progress(job.path, done + 1, total, "done"))
        return 1

    def flush(self) -> None:
        """Embed the pending documents on the actors, each writing its share as a Lance fragment, and
        commit all the fragments with the removal of the documents' old chunks, in one commit."""
        if not self.pending:
            return
        cache = self.store.cached_vectors(r.text_hash for p in self.pending for r in p.rows)
        self.on_phase("embedding")
        shares: list[list[tuple[int, list[ChunkRow], np.ndarray, np.ndarray]]] = [[] for _ in self.actors]
        loads = [0] * len(self.actors)
        for n, p in enumerate(self.pending):
            if not p.rows:
                continue
            vectors = np.zeros((len(p.rows), self.store.dim), dtype=np.float32)
            have = np.zeros(len(p.rows), dtype=bool)
            for i, row in enumerate(p.rows):
                known = p.known.get(i, cache.get(row.text_hash))
                if known is not None:
                    vectors[i], have[i] = known, True
            least = loads.index(min(loads))  # the actor with the least to embed gets the next document
            shares[least].append((n, p.rows, vectors, have))
            loads[least] += int((~have).sum()) + 1
        calls = [
            actor.write.remote(share, self.store.table_uri, self.store.storage_options, self.schema)
            for actor, share in zip(self.actors, shares, strict=True)
            if share
        ]
        fragments, failed = [], {}
        embedded = 0
        for written, count, lost in self.ray.get(calls):
            fragments += written
            embedded += count
            failed.update(lost)
        self.report.embedded += embedded
        self.on_phase("writing")
        pending, self.pending = self.pending, []
        for n, reason in failed.items():  # embedding failed: a failure, and its old chunks go
            self._fail(pending[n].doomed[-1], reason, pending[n].stat)
        kept = [p for n, p in enumerate(pending) if n not in failed]
        self.report.reused += sum(len(p.rows) - len(p.known) for p in kept) - embedded  # cache hits, as locally
        kept += self.pending
        self.store.commit_fragments(self.collection, [d for p in kept for d in p.doomed], fragments)
        chunks = sum(len(p.rows) for p in kept)
        if chunks and not self.text_index_seen:
            self.store.ensure_text_index()
            self.text_index_seen = True
        for p in kept:
            p.outcome[0].append(p.outcome[1])
        self.report.chunks += chunks
        self.pending = []


class _Failure(RagError):
    """A file's failure as a load task reported it (its one-line reason, kept as it is)."""


def _load_task(path: str, spec: str, chunking: ChunkConfig, password, ocr_mode: str, cache) -> tuple:
    """Load and chunk one file on a worker: ("ok", chunks, problems, pages, calls), or ("unsupported" or
    "failed", reason, [], pages, calls). Never raises for the file's own faults."""
    _tune()
    reader = Reader(ocr_mode, engine=_WORKER.get("ocr"), cache=cache)
    try:
        spans = _tokenizer(spec)
        chunks, problems = load_and_chunk(Path(path), spans, chunking, password, reader)
        result: tuple[str, Any, list[str]] = ("ok", chunks, problems)
    except UnsupportedFile as exc:
        result = ("unsupported", str(exc), [])
    except Exception as exc:  # noqa: BLE001 - containment: the driver records it as the file's failure
        result = ("failed", _reason(exc), [])
    _WORKER["ocr"] = reader.engine  # loaded once per worker process
    return (*result, reader.pages, reader.calls)


_WORKER: dict[str, Any] = {}  # per worker process: the chunker's tokenizer, the OCR engine


def _tune() -> None:
    """The CPU tuning `rag` does for itself (an optimized BLAS before MLX loads), in a worker process."""
    from ingest.cpu import tune_cpu

    tune_cpu(blas=os.environ.get("RAG_BLAS", "auto"))


def _tokenizer(spec: str) -> Callable[[str], list[tuple[int, int]]]:
    if _WORKER.get("spec") != spec:
        _WORKER["spec"], _WORKER["embedder"] = spec, MLXEmbedder(spec)
    return _WORKER["embedder"].token_spans


class _EmbedWorker:
    """A Ray actor: the embedder, loaded once; embeds its share of a batch and writes it as a fragment."""

    def __init__(self, spec: str, cpus: float) -> None:
        _tune()
        self.embedder = MLXEmbedder(spec)
        self.embedder.cpu_streams = max(1, int(cpus))  # its CPU share, not every core of the machine

    def fingerprint(self) -> str:
        return self.embedder.fingerprint

    def pid(self) -> int:
        return os.getpid()

    def write(self, share, uri: str, storage_options: dict[str, str], schema) -> tuple[list, int, dict]:
        """Fill the missing vectors of each document in `share` ((index, rows, vectors, have)), write
        the documents as Lance fragments (uncommitted), and return (fragments, texts embedded,
        {index: reason} of the documents the embedder failed on)."""
        import lance

        share = [(n, rows, np.array(vectors), have) for n, rows, vectors, have in share]  # Ray's are read-only
        lost: dict[int, str] = {}
        try:
            embedded = self._embed(share)
        except Exception:  # noqa: BLE001 - find the documents the embedder can't take, one at a time
            embedded = 0
            for item in share:
                try:
                    embedded += self._embed([item])
                except Exception as exc:  # noqa: BLE001
                    lost[item[0]] = _reason(exc)
        kept = [item for item in share if item[0] not in lost]
        if not kept:
            return [], embedded, lost
        rows = [r for _, doc_rows, _, _ in kept for r in doc_rows]
        vectors = np.concatenate([v for _, _, v, _ in kept])
        table = arrow_rows(rows, vectors, vectors.shape[1]).select(schema.names).cast(schema)
        fragments = lance.fragment.write_fragments(table, uri, schema=schema, storage_options=storage_options or None)
        return list(fragments), embedded, lost

    def _embed(self, share) -> int:
        """Embed the rows of `share` that have no vector yet (each text once); the count embedded."""
        missing: dict[str, str] = {}
        for _, rows, _, have in share:
            for row, ok in zip(rows, have, strict=True):
                if not ok:
                    missing.setdefault(row.text_hash, row.text)
        found = dict(zip(missing, self.embedder.embed(list(missing.values())), strict=True)) if missing else {}
        for _, rows, vectors, have in share:
            for i, row in enumerate(rows):
                if not have[i]:
                    vectors[i] = found[row.text_hash]
        return len(missing)

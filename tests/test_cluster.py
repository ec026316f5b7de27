"""An index run on a Ray cluster, on real parts: a real local Ray cluster, real LanceDB in tmp_path, the real
MiniLM embedder, real files, and the real `rag` command in another process.

A cluster run ends with the index a local run builds (the same chunk ids and rows, vectors equal to float
tolerance) and makes the same incremental decisions (added, updated, renamed, removed, unchanged, failed and
not retried). An embedding worker killed with SIGKILL mid-run is replaced and the index still ends whole; a
driver killed with SIGKILL (and the local cluster it started with it) leaves only whole documents, and the
next run finishes the work. Without Ray the error is one line that says what to install.

The tests that need Ray share one local cluster this module starts (a cluster run uses a running one and
leaves it running). Skipped when Ray and pylance (the `cluster` extra) or the MiniLM model are absent."""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, assert_consistent, make_pdf

import rag
from ingest.store import DEFAULT_COLLECTION, TABLE, ChunkRow, Store

CLI = [sys.executable, "-c", "from rag.cli import app; app()"]
CLI_TIMEOUT = 300  # seconds for one `rag index --ray` process (a 2-core CPU: Ray's start-up, two model loads)
BATCH = 32  # chunks per commit in the equivalence runs: the corpus makes several batches


# -- fixtures ------------------------------------------------------------------------------------------


@contextmanager
def _isolated(home: Path) -> Iterator[None]:
    """What conftest's per-test isolation gives, for fixtures wider than one test: no RAG_* or RAY_ADDRESS
    settings inherited, RAG_HOME at `home`, the model hub offline."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if (name.startswith("RAG_") and name not in ("RAG_TEST_MODELS", "RAG_SHARED", "RAG_BLAS")) or (
                name == "RAY_ADDRESS"
            ):
                mp.delenv(name)
        mp.setenv("RAG_HOME", str(home))
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def ray():
    """The ray module (skips without the `cluster` extra); nothing started."""
    module = pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[cluster]')")
    pytest.importorskip("lance", reason="pylance is not installed (pip install -e '.[cluster]')")
    return module


@pytest.fixture(scope="module")
def ray_cluster(ray, tmp_path_factory):
    """A local Ray cluster for this module's cluster runs (they use it and leave it running), stopped at
    the end of the module. Three CPUs: two embedding actors and one loader."""
    from ingest.cluster import _quiet_fork_warnings

    assert not ray.is_initialized()
    with _isolated(tmp_path_factory.mktemp("raghome")), _quiet_fork_warnings():
        ray.init(address="local", num_cpus=3, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Real files: examples/docs (a PDF, two Markdown files) and this project's smaller Python sources,
    ~100 chunks in all."""
    folder = tmp_path_factory.mktemp("cluster") / "corpus"
    shutil.copytree(ROOT / "examples" / "docs", folder)
    for source in sorted((ROOT / "ingest").glob("*.py")):
        if source.stat().st_size < 10_000:
            shutil.copy2(source, folder / source.name)
    return folder


@dataclass(frozen=True)
class Built:
    path: Path
    report: rag.IndexReport


@pytest.fixture(scope="module")
def local(corpus, embedder, tmp_path_factory) -> Built:
    """`corpus` indexed by a plain local run: what every cluster run of it must end with."""
    path = tmp_path_factory.mktemp("local") / "idx"
    with _isolated(tmp_path_factory.mktemp("raghome")):
        report = rag.Index(path, embed_model=embedder).add(corpus, batch_chunks=BATCH)
    assert not report.failed and report.chunks >= 100, report.summary()
    return Built(path, report)


# -- helpers -------------------------------------------------------------------------------------------


def _on_ray(index: Path, folder: Path, embedder, **options) -> rag.IndexReport:
    """`folder` indexed into `index` by a cluster run of two embedding workers on the module's cluster."""
    return rag.Index(index, embed_model=embedder).add(folder, cluster=rag.Cluster(workers=2), **options)


def _files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def _contents(index: Path) -> dict[str, tuple[ChunkRow, np.ndarray]]:
    """Every chunk of the index by id, with its vector; asserts no id is stored twice."""
    store = Store.open(index)
    paths = [d["path"] for d in store.document_list()]
    rows, vectors = store.rows(DEFAULT_COLLECTION, paths)
    assert len(rows) == store.count_chunks(), "chunks outside the documents' list"
    by_id = {r.id: (r, v) for r, v in zip(rows, vectors, strict=True)}
    assert len(by_id) == len(rows), "duplicate chunk ids"
    return by_id


def _assert_same_index(index: Path, expected: Path) -> None:
    """The same chunks (ids, text, page, position, everything stored) and vectors to float tolerance."""
    got, want = _contents(index), _contents(expected)
    assert sorted(got) == sorted(want)
    for chunk_id, (row, vector) in got.items():
        want_row, want_vector = want[chunk_id]
        assert (row.text, row.page, row.chunk_index) == (want_row.text, want_row.page, want_row.chunk_index)
        assert row == want_row
        np.testing.assert_allclose(vector, want_vector, atol=1e-4, err_msg=f"{row.path} chunk {row.chunk_index}")
    assert_consistent(index)


def _report_fields(report: rag.IndexReport) -> dict:
    """What a run decided, independent of the order the files were done in."""
    return {
        "added": sorted(report.added),
        "updated": sorted(report.updated),
        "renamed": sorted(report.renamed),
        "removed": sorted(report.removed),
        "unchanged": sorted(report.unchanged),
        "failed": sorted(report.failed),
        "skipped": sorted(report.skipped),
        "chunks": report.chunks,
        "embedded": report.embedded,
        "reused": report.reused,
    }


def _processes(title: str, session: int, *, mine: bool = False) -> list:
    """Live processes of `session` whose title (Ray sets it to "ray::<actor or task>") starts with `title`;
    with `mine`, only those this process started (the module's cluster: its raylet's workers)."""
    import psutil  # vendored with Ray (ray/thirdparty_files): importable once the `ray` fixture imported it

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if os.getsid(proc.pid) != session or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if mine and os.getpid() not in {p.pid for p in proc.parents()}:
                continue
            if " ".join(proc.info["cmdline"] or []).strip().startswith(title):
                found.append(proc)
        except (OSError, psutil.Error):
            continue
    return found


def _kill_session(session: int, timeout: float = 30) -> list[str]:
    """SIGKILL every process left in `session` (the `rag` process's own); what was found left."""
    import psutil

    left = [f"{p.pid} {' '.join(p.info['cmdline'] or [])[:60]}" for p in _processes("", session) if p.pid != session]
    for proc in _processes("", session):
        try:
            proc.kill()
        except psutil.Error:
            pass
    deadline = time.monotonic() + timeout
    while _processes("", session) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _processes("", session), "processes of the killed run survive SIGKILL"
    return left


def _committed(index: Path) -> int:
    """Chunks committed so far, or -1 while there is no table yet (read with LanceDB: Store.open would
    create the table)."""
    import lancedb

    try:
        db = lancedb.connect(str(index))
        if TABLE not in db.list_tables().tables:
            return -1
        return db.open_table(TABLE).count_rows()
    except Exception:  # noqa: BLE001 - transient while the writer creates the index; asserted on afterwards
        return -1


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the run exited ({proc.returncode}) before {what}: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _env(home: Path, minilm_path: Path) -> dict[str, str]:
    """The environment of a `rag` process: this one's, no RAG_* settings and no RAY_ADDRESS (so it starts
    a local cluster of its own)."""
    home.mkdir(exist_ok=True)
    keep = ("RAG_TEST_MODELS", "RAG_SHARED", "RAG_BLAS")
    env = {k: v for k, v in os.environ.items() if not (k.startswith("RAG_") and k not in keep) and k != "RAY_ADDRESS"}
    return env | {"RAG_HOME": str(home), "RAG_EMBED_MODEL": str(minilm_path), "HF_HUB_OFFLINE": "1"}


# -- the same index as a local run ---------------------------------------------------------------------


def test_a_cluster_run_builds_the_index_a_local_run_builds(ray_cluster, corpus, local, embedder, tmp_path):
    phases: list[str] = []
    report = _on_ray(tmp_path / "idx", corpus, embedder, batch_chunks=BATCH, progress=lambda p: phases.append(p.phase))
    assert ray_cluster.is_initialized()  # the module's cluster was used, and is left running

    files = _files(corpus)
    assert sorted(report.added) == sorted(local.report.added) == files
    assert report.failed == report.updated == report.removed == report.unchanged == report.renamed == []
    assert report.chunks == local.report.chunks
    assert report.embedded == local.report.embedded == report.chunks  # no chunk text twice in this corpus
    assert phases[0] == "discovering" and phases[-1] == "indexing"
    assert phases.count("writing") >= 3  # several batches, each its own commit

    _assert_same_index(tmp_path / "idx", local.path)
    store = Store.open(tmp_path / "idx")
    assert sorted(d["path"] for d in store.document_list()) == files
    assert store.count_chunks() == report.chunks

    for query in ("Where is the spare key?", "chunk size and overlap in tokens"):
        got = rag.Index(tmp_path / "idx", embed_model=embedder).search(query, k=3)
        want = rag.Index(local.path, embed_model=embedder).search(query, k=3)
        assert got and [h.path for h in got] == [h.path for h in want], query
        assert got[0].text == want[0].text
    hit = rag.Index(tmp_path / "idx", embed_model=embedder).search("Where is the spare key?", k=1)[0]
    assert hit.path == str(corpus / "house-notes.md") and "flowerpot" in hit.text


# -- incremental runs decide what a local run decides --------------------------------------------------


def _broken_pdf(path: Path) -> Path:
    path.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\nthis is not a PDF any more\n")
    return path


def _small_folder(folder: Path) -> Path:
    folder.mkdir()
    shutil.copy2(ROOT / "examples" / "docs" / "house-notes.md", folder / "keep.md")
    shutil.copy2(ROOT / "examples" / "docs" / "travel.md", folder / "gone.md")
    shutil.copy2(ROOT / "ingest" / "chunking.py", folder / "edited.py")  # several chunks: most are kept
    (folder / "old-name.txt").write_text(
        "The garage door opener is in the kitchen drawer, next to the torch and the spare fuses.\n"
    )
    (folder / "touched.md").write_text("# Bins\n\nThe recycling goes out on Tuesday night.\n")
    make_pdf(folder / "manual.pdf", ["The boiler reset button is red.", "Bleed the radiators every October."])
    return folder


def test_incremental_cluster_runs_decide_what_local_runs_decide(ray_cluster, embedder, tmp_path):
    folder = _small_folder(tmp_path / "docs")
    on_ray, here = tmp_path / "ray-idx", tmp_path / "local-idx"

    def both(phases: list[str] | None = None) -> tuple[rag.IndexReport, rag.IndexReport]:
        tell = (lambda p: phases.append(p.phase)) if phases is not None else None
        cluster = _on_ray(on_ray, folder, embedder, progress=tell)
        plain = rag.Index(here, embed_model=embedder).add(folder)
        assert _report_fields(cluster) == _report_fields(plain)
        _assert_same_index(on_ray, here)
        return cluster, plain

    first, _ = both()
    assert sorted(first.added) == _files(folder) and not first.failed
    before = {r.path: r for r, _ in _contents(on_ray).values()}

    edited = folder / "edited.py"
    edited.write_text(edited.read_text() + "\n# A new last paragraph: the cluster run embeds only this text.\n")
    (folder / "gone.md").unlink()
    (folder / "old-name.txt").rename(folder / "new-name.txt")
    (folder / "new.md").write_text("# Garden\n\nThe hose reel is behind the shed, next to the compost bin.\n")
    _broken_pdf(folder / "manual.pdf")
    stat = (folder / "touched.md").stat()
    os.utime(folder / "touched.md", ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # same bytes

    second, _ = both()
    f = lambda name: str(folder / name)  # noqa: E731
    assert second.added == [f("new.md")]
    assert second.updated == [f("edited.py")]
    assert second.renamed == [(f("old-name.txt"), f("new-name.txt"))]
    assert sorted(second.removed) == [f("gone.md"), f("manual.pdf")]  # a file turned unreadable loses its chunks
    assert sorted(second.unchanged) == [f("keep.md"), f("touched.md")]
    assert [path for path, _ in second.failed] == [f("manual.pdf")]
    assert second.failed[0][1].startswith("corrupt PDF"), second.failed
    edited_chunks = sum(1 for r, _ in _contents(on_ray).values() if r.path == f("edited.py"))
    assert edited_chunks >= 5
    assert 1 <= second.embedded <= 3  # new.md, and the edited file's changed last chunk(s)
    assert second.reused >= edited_chunks - 2 + 1  # the edited file's other chunks and the renamed file's
    moved = [r for r, _ in _contents(on_ray).values() if r.path == f("new-name.txt")]
    assert [r.text for r in moved] == [before[f("old-name.txt")].text]

    phases: list[str] = []
    third, _ = both(phases)
    assert third.embedded == third.chunks == 0
    assert sorted(third.unchanged) == sorted(set(_files(folder)) - {f("manual.pdf")})
    assert third.failed == second.failed  # reported again with its reason ...
    assert "loading" not in phases and "embedding" not in phases  # ... without a load task: not retried
    assert third.added == third.updated == third.removed == third.renamed == []


# -- what a cluster run leaves: the reasons a local run gives, and the cluster as it was -----------------


def test_a_failure_on_a_worker_reads_as_it_does_locally(ray_cluster, embedder, tmp_path):
    """The reason a load task sends back is the file's reason, as it is: not wrapped in another type's name
    (it once read '_Failure: corrupt PDF: …', and a password given later never retried an encrypted PDF)."""
    folder = tmp_path / "docs"
    folder.mkdir()
    _broken_pdf(folder / "broken.pdf")
    (folder / "note.md").write_text("# Note\n\nThe spare fuses are in the box under the stairs.\n")
    cluster = _on_ray(tmp_path / "ray-idx", folder, embedder)
    plain = rag.Index(tmp_path / "idx", embed_model=embedder).add(folder)
    assert [path for path, _ in plain.failed] == [str(folder / "broken.pdf")]
    assert plain.failed[0][1].startswith("corrupt PDF")
    assert cluster.failed == plain.failed
    assert Store.open(tmp_path / "ray-idx").failures() == Store.open(tmp_path / "idx").failures()


def _free_cpus(ray) -> float:
    return ray.available_resources().get("CPU", 0.0)


def test_a_finished_cluster_run_gives_its_workers_back(ray_cluster, embedder, tmp_path):
    """On a cluster that keeps running, a run's embedding actors go when it ends (they once lived on, holding
    their CPUs or GPUs, until Python's cyclic garbage collector happened to free the run's objects)."""
    total = ray_cluster.cluster_resources()["CPU"]
    deadline = time.monotonic() + 30
    while _free_cpus(ray_cluster) < total and time.monotonic() < deadline:  # earlier runs' actors are gone
        time.sleep(0.1)
    assert _free_cpus(ray_cluster) == total, "the earlier tests' runs still hold CPUs of the cluster"
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "note.md").write_text("# Note\n\nThe spare fuses are in the box under the stairs.\n")
    gc.disable()  # no collection by chance: what frees the actors is the run itself, or nothing
    try:
        report = rag.Index(tmp_path / "idx", embed_model=embedder).add(folder, cluster=rag.Cluster(workers=2))
        assert report.added == [str(folder / "note.md")]
        deadline = time.monotonic() + 5
        while _free_cpus(ray_cluster) < total and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _free_cpus(ray_cluster) == total, "the run's embedding actors still hold their CPUs"
        while _processes("ray::_EmbedWorker", os.getsid(0), mine=True) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _processes("ray::_EmbedWorker", os.getsid(0), mine=True), "the run's actors still run"
    finally:
        gc.enable()
        gc.collect()


# -- an embedding worker killed mid-run ----------------------------------------------------------------


def test_an_embedding_worker_killed_mid_run_is_replaced_and_the_index_ends_whole(
    ray_cluster, corpus, local, embedder, tmp_path
):
    session = os.getsid(0)
    killed: list[int] = []
    commits_before: list[int] = []  # batches committed when the worker was killed
    stop = threading.Event()

    def kill_a_busy_worker() -> None:
        """SIGKILL the first embedding actor seen in the middle of a write (embedding its share)."""
        while not (stop.is_set() or killed):
            for proc in _processes("ray::_EmbedWorker.write", session, mine=True):
                proc.kill()
                killed.append(proc.pid)
                commits_before.append(len(batches))
                break
            time.sleep(0.005)

    killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
    batches: list[int] = []

    def progress(p: rag.Progress) -> None:
        if p.phase == "writing":
            batches.append(p.chunks)
            if len(batches) == 1:  # one batch committed: kill a worker in one of the many still to come
                killer.start()

    try:
        report = _on_ray(tmp_path / "idx", corpus, embedder, batch_chunks=8, progress=progress)
    finally:
        stop.set()
        if killer.is_alive() or killed:
            killer.join(timeout=10)
    assert len(killed) == 1, "no embedding worker was seen mid-write to kill"
    assert 1 <= commits_before[0] < len(batches) - 1, (commits_before, batches)  # killed mid-run
    assert not any(p.pid == killed[0] for p in _processes("ray::", session, mine=True))

    assert report.failed == [], report.failed
    assert sorted(report.added) == _files(corpus)
    assert report.chunks == local.report.chunks
    assert report.embedded == local.report.embedded  # the killed write's share counted once, by its retry
    _assert_same_index(tmp_path / "idx", local.path)
    assert Store.open(tmp_path / "idx").count_chunks() == len(_contents(local.path))


# -- the driver killed mid-run -------------------------------------------------------------------------


@pytest.mark.slow
def test_kill_9_of_the_driver_leaves_whole_documents_and_a_rerun_completes(ray, corpus, local, minilm_path, tmp_path):
    index = tmp_path / "idx"
    env = _env(tmp_path / "home", minilm_path)
    command = [*CLI, "index", "--ray", "--workers", "1", "--batch-chunks", "16", "--index", str(index), str(corpus)]
    log = tmp_path / "killed.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "--quiet"], env=env, cwd=tmp_path, stdout=out, stderr=out, start_new_session=True
        )
    try:
        _wait_for(lambda: _committed(index) > 0, proc, CLI_TIMEOUT, "the first commit", log)
        os.killpg(proc.pid, signal.SIGKILL)  # the driver, and the local cluster it started in its group
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        _kill_session(proc.pid)  # Ray's workers run in process groups of their own
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]

    files = _files(corpus)
    before = assert_consistent(index)  # opens; every document whole, no duplicate id
    store = Store.open(index)
    stored = sorted(path for _, path in before)
    assert 0 < len(stored) < len(files), f"not killed mid-run: {len(stored)} of {len(files)} documents stored"
    assert sum(before.values()) == store.count_chunks()
    want = _contents(local.path)
    for chunk_id, (row, vector) in _contents(index).items():  # each survivor is the local run's document
        assert row == want[chunk_id][0]
        np.testing.assert_allclose(vector, want[chunk_id][1], atol=1e-4)

    rerun = subprocess.Popen(
        [*command, "--json"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = rerun.communicate(timeout=CLI_TIMEOUT)
    finally:
        if rerun.poll() is None:
            rerun.kill()
            rerun.communicate(timeout=30)
        deadline = time.monotonic() + 20  # a run that started its own cluster stops it on the way out
        while _processes("", rerun.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _kill_session(rerun.pid)
    assert rerun.returncode == 0, stderr[-3000:]
    assert left == [], f"the finished run left its cluster running: {left}"
    report = json.loads(stdout)
    assert report["failed"] == [] and report["updated"] == [] and report["removed"] == []
    assert sorted(report["unchanged"]) == stored  # no committed document was done again
    assert sorted(report["added"]) == sorted(set(files) - set(stored))
    _assert_same_index(index, local.path)


# -- without Ray ---------------------------------------------------------------------------------------


def test_without_ray_a_cluster_run_is_one_clear_error(docs, embedder, minilm_path, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from rag.cli import app

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if it were not installed
    with pytest.raises(rag.RagError) as caught:
        rag.Index(tmp_path / "idx", embed_model=embedder).add(docs, cluster=rag.Cluster())
    assert "ray is not installed" in caught.value.message
    assert caught.value.hint == "pip install 'rag-ondevice[cluster]'"

    args = ["index", "--ray", "--index", str(tmp_path / "cli-idx"), "--embed-model", str(minilm_path), str(docs)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ") and "pip install 'rag-ondevice[cluster]'" in lines[-1], result.stderr
    assert "Traceback" not in result.output


def test_import_rag_does_not_import_ray():
    check = "import rag, sys; print('ray' in sys.modules, 'lance' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]

"""An index in object storage, on real parts: a real S3 server (moto's, on loopback), real LanceDB, the real
MiniLM embedder, and the real `rag` command in other processes. The index's state (provenance, failures)
lives in the store, not on this machine's disk: a fresh Index, or a second process, sees what the first wrote.
A writer killed with SIGKILL mid-run leaves only whole documents, and the next run finishes the work.

Skipped when moto (the `test` extra) or the MiniLM model is absent."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import ROOT

import rag
from ingest.state import STATE_TABLE, connect
from ingest.store import TABLE, Store

pytest.importorskip("moto.server", reason="moto is not installed (pip install -e '.[test]')")
boto3 = pytest.importorskip("boto3", reason="boto3 is not installed (pip install -e '.[test]')")

BUCKET = "rag-test"
REGION = "us-east-1"
CLI = [sys.executable, "-c", "from rag.cli import app; app()"]
CLI_TIMEOUT = 180  # seconds for one `rag` process (a 2-core CPU: ~5 s of it is imports and model loading)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class S3:
    endpoint: str
    client: object  # a boto3 S3 client

    @property
    def options(self) -> dict[str, str]:
        """LanceDB's storage options for this server (credentials come from the AWS_* variables)."""
        return {"aws_endpoint": self.endpoint, "allow_http": "true"}

    def uri(self, prefix: str) -> str:
        return f"s3://{BUCKET}/{prefix}"

    def keys(self, prefix: str) -> list[str]:
        """Every object key under `prefix/`."""
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/"):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return keys


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _moto_command(port: int) -> list[str]:
    script = Path(sys.executable).parent / "moto_server"
    base = [str(script)] if script.is_file() else [sys.executable, "-m", "moto.server"]
    return [*base, "-H", "127.0.0.1", "-p", str(port)]


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> Iterator[S3]:
    """A moto S3 server on a free loopback port with one bucket; dummy AWS credentials in the environment
    of this process and of every process it starts. The server is stopped at the end of the module."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("AWS_"):
                mp.delenv(name)
        mp.setenv("AWS_ACCESS_KEY_ID", "test")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "test")
        mp.setenv("AWS_REGION", REGION)
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        log = tmp_path_factory.mktemp("moto") / "server.log"
        port = _free_port()
        endpoint = f"http://127.0.0.1:{port}"
        with log.open("wb") as out:
            server = subprocess.Popen(_moto_command(port), stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None, f"moto_server exited: {log.read_text()}"
                try:
                    with urllib.request.urlopen(endpoint, timeout=2) as reply:
                        if reply.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                assert time.monotonic() < deadline, f"moto_server did not answer: {log.read_text()}"
                time.sleep(0.1)
            client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION)
            client.create_bucket(Bucket=BUCKET)
            yield S3(endpoint, client)
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)


def _prefix(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def _broken_pdf(path: Path) -> Path:
    path.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\nthis is not a PDF any more\n")
    return path


def _example_docs(folder: Path) -> Path:
    """A copy of examples/docs (a PDF and two Markdown files) plus a broken PDF that fails to index."""
    shutil.copytree(ROOT / "examples" / "docs", folder)
    _broken_pdf(folder / "broken.pdf")
    return folder


def _home(tmp_path: Path, s3: S3) -> Path:
    """A RAG_HOME whose config.toml names the S3 server in its [storage] table."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(f'[storage]\naws_endpoint = "{s3.endpoint}"\nallow_http = true\n')
    return home


def _env(home: Path, minilm_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a `rag` process: this one's (AWS_* credentials included), no RAG_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_") or k in ("RAG_TEST_MODELS", "RAG_SHARED")}
    return env | {"RAG_HOME": str(home), "RAG_EMBED_MODEL": str(minilm_path), "HF_HUB_OFFLINE": "1"} | extra


def _rag(*args: str, env: dict[str, str], cwd: Path, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _plain(text: str) -> str:
    return ANSI.sub("", text)


def _no_local_index(*folders: Path) -> None:
    """Nothing of an index was written under these folders (nor a relative "s3:" folder in the cwd)."""
    assert not (Path.cwd() / "s3:").exists()
    assert not (ROOT / "s3:").exists()
    artifacts = {f"{TABLE}.lance", f"{STATE_TABLE}.lance", "ocr_cache.lance", "index.json", "failures.json",
                 "skipped.json", "catalog.json", "write.lock", "ocr-cache", "s3:"}  # fmt: skip
    for folder in folders:
        found = [p for p in folder.rglob("*") if p.name in artifacts]
        assert not found, f"index files on the local disk: {found}"


@dataclass(frozen=True)
class Indexed:
    uri: str
    prefix: str
    folder: Path
    report: rag.IndexReport


@pytest.fixture(scope="module")
def indexed(s3, embedder, tmp_path_factory) -> Indexed:
    """examples/docs plus a broken PDF, indexed once into s3://rag-test/docs-…, for the readers below."""
    folder = _example_docs(tmp_path_factory.mktemp("shared") / "docs")
    prefix = _prefix("docs")
    uri = s3.uri(prefix)
    report = rag.Index(uri, embed_model=embedder, storage_options=s3.options).add(folder)
    assert len(report.added) == 3 and len(report.failed) == 1, report
    return Indexed(uri, prefix, folder, report)


# -- indexing, re-indexing, state in the store ----------------------------------------------------------


def test_index_and_reindex_in_s3_keep_state_in_the_store_and_nothing_on_disk(s3, minilm_path, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # a relative path written by mistake would land here
    folder = _example_docs(tmp_path / "docs")
    prefix = _prefix("reindex")
    uri = s3.uri(prefix)
    names = ("boiler-manual.pdf", "house-notes.md", "travel.md")

    idx = rag.Index(uri, embed_model=str(minilm_path), storage_options=s3.options)
    assert not idx.status().exists
    first = idx.add(folder)
    assert sorted(first.added) == [str(folder / n) for n in names]
    assert [path for path, _ in first.failed] == [str(folder / "broken.pdf")]
    assert first.failed[0][1].startswith("corrupt PDF")
    assert first.updated == first.removed == first.unchanged == first.renamed == []
    assert first.chunks >= 4  # two PDF pages, two Markdown files

    st = idx.status()
    assert (st.exists, st.documents, st.chunks) == (True, 3, first.chunks)
    assert st.path == uri and st.dim == 384 and st.embedder == str(minilm_path)
    keys = s3.keys(prefix)
    assert any(k.startswith(f"{prefix}/{TABLE}.lance/") for k in keys), keys
    assert any(k.startswith(f"{prefix}/{STATE_TABLE}.lance/") for k in keys), keys

    with (folder / "house-notes.md").open("a") as f:
        f.write("\n## Bins\n\nThe recycling goes out on Tuesday night, the garden waste every other Friday.\n")
    (folder / "travel.md").unlink()
    (folder / "garden.md").write_text("# Garden\n\nThe hose reel is behind the shed, next to the compost bin.\n")
    second = rag.Index(uri, embed_model=str(minilm_path), storage_options=s3.options).add(folder)
    assert second.added == [str(folder / "garden.md")]
    assert second.updated == [str(folder / "house-notes.md")]
    assert second.removed == [str(folder / "travel.md")]
    assert second.unchanged == [str(folder / "boiler-manual.pdf")]
    assert second.renamed == []
    assert [path for path, _ in second.failed] == [str(folder / "broken.pdf")]

    fresh = rag.Index(uri, storage_options=s3.options)  # no embedder, nothing cached: all from the store
    st = fresh.status()
    assert st.exists and st.documents == 3
    assert list(st.failures) == [str(folder / "broken.pdf")]
    assert st.failures[str(folder / "broken.pdf")]["reason"].startswith("corrupt PDF")
    assert sorted(d["path"] for d in Store.open(uri, s3.options).document_list()) == sorted(
        str(folder / n) for n in ("boiler-manual.pdf", "garden.md", "house-notes.md")
    )
    hits = rag.Index(uri, embed_model=str(minilm_path), storage_options=s3.options).search("recycling bins", k=1)
    assert hits[0].path == str(folder / "house-notes.md") and "Tuesday" in hits[0].text

    assert list(cwd.iterdir()) == []
    _no_local_index(tmp_path, cwd)
    assert not any(Path("/tmp").glob(f"{prefix}*"))


def test_an_empty_prefix_is_no_index_and_reading_it_writes_nothing(s3, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prefix = _prefix("empty")
    uri = s3.uri(prefix)
    assert Store.exists(uri, s3.options) is False
    st = rag.Index(uri, storage_options=s3.options).status()
    assert st.exists is False and st.documents == 0 and st.path == uri
    with pytest.raises(rag.IndexNotFound, match="no index at"):
        Store.open(uri, s3.options)
    assert s3.keys(prefix) == []  # asking wrote nothing
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_state_row_is_reported_never_reset(s3, embedder, tmp_path):
    import lancedb
    from typer.testing import CliRunner

    from rag.cli import app

    uri = s3.uri(_prefix("corrupt"))
    meta = {"id": embedder.id, "fingerprint": embedder.fingerprint, "dim": embedder.dim}
    store = Store.open_or_create(uri, meta, {"max_tokens": 254, "overlap_tokens": 32}, s3.options)
    store.set_failures("default", {"/docs/a.pdf": {"reason": "corrupt PDF", "size": 1, "mtime_ns": 1}})
    assert Store.open(uri, s3.options).failures() == {
        "/docs/a.pdf": {"reason": "corrupt PDF", "size": 1, "mtime_ns": 1}
    }

    table = lancedb.connect(uri, storage_options=s3.options).open_table(STATE_TABLE)
    key = "failures.json/default"
    garbage = pa.table({"key": [key], "body": ["{not json"], "written_ns": [time.time_ns()]}, schema=table.schema)
    table.merge_insert("key").when_matched_update_all().when_not_matched_insert_all().execute(garbage)

    def body() -> str:
        rows = table.search().where(f"key = '{key}'").select(["body"]).limit(None).to_arrow().to_pylist()
        assert len(rows) == 1
        return rows[0]["body"]

    with pytest.raises(rag.CorruptIndex, match=re.escape(key)):
        Store.open(uri, s3.options).failures()
    with pytest.raises(rag.CorruptIndex, match=re.escape(key)):
        rag.Index(uri, storage_options=s3.options).status()

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nA note about the attic ladder.\n")
    with pytest.raises(rag.CorruptIndex, match=re.escape(key)):  # a writer does not overwrite it either
        rag.Index(uri, embed_model=embedder, storage_options=s3.options).add(folder)
    assert body() == "{not json"

    home = Path(os.environ["RAG_HOME"])
    (home / "config.toml").write_text(f'[storage]\naws_endpoint = "{s3.endpoint}"\nallow_http = "true"\n')
    result = CliRunner().invoke(app, ["status", "--index", uri])
    assert result.exit_code == 1, result.output
    line = _plain(result.stderr).strip()
    assert line.startswith("Error: ") and key in line and "corrupt" in line, result.stderr
    assert body() == "{not json"
    assert Store.open(uri, s3.options).count_chunks() == 0  # the table itself is fine


# -- a second process reads what the first wrote ---------------------------------------------------


def test_rag_search_and_status_in_another_process(s3, indexed, minilm_path, tmp_path):
    env = _env(_home(tmp_path, s3), minilm_path)
    result = _rag("search", "--index", indexed.uri, "spare key", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert hits[0]["path"] == str(indexed.folder / "house-notes.md")
    assert "flowerpot" in hits[0]["text"]

    result = _rag("status", "--index", indexed.uri, "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["exists"] is True and status["path"] == indexed.uri
    assert (status["documents"], status["chunks"]) == (3, indexed.report.chunks)
    assert list(status["failures"]) == [str(indexed.folder / "broken.pdf")]
    assert status["failures"][str(indexed.folder / "broken.pdf")]["reason"].startswith("corrupt PDF")
    assert status["embedder"] == str(minilm_path)
    assert not (tmp_path / "s3:").exists()
    _no_local_index(tmp_path)


def test_rag_search_in_another_process_with_the_endpoint_from_aws_variables(s3, indexed, minilm_path, tmp_path):
    """No [storage] table: LanceDB reads AWS_ENDPOINT_URL and AWS_ALLOW_HTTP itself."""
    home = tmp_path / "home"
    home.mkdir()
    env = _env(home, minilm_path, AWS_ENDPOINT_URL=s3.endpoint, AWS_ALLOW_HTTP="true")
    result = _rag("search", "--index", indexed.uri, "Where are the passports?", "-k", "2", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = _plain(result.stdout).splitlines()
    assert lines[0].startswith("1. ") and "travel.md" in lines[0], result.stdout
    assert "green folder" in lines[1]


def test_rag_ask_in_another_process(s3, indexed, minilm_path, smollm2_path, tmp_path):
    env = _env(_home(tmp_path, s3), minilm_path)
    question = "Where is the spare key hidden?"
    result = _rag("ask", "--index", indexed.uri, question, "--llm", str(smollm2_path), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _answer, found, sources = _plain(result.stdout).partition("Sources")
    assert found, result.stdout
    source_lines = [line for line in sources.splitlines() if re.match(r"^[ *+]\[\d+\] ", line)]
    assert source_lines, result.stdout
    assert any(str(indexed.folder / "house-notes.md") in line for line in source_lines), result.stdout
    _no_local_index(tmp_path / "home")


# -- a writer killed mid-run -----------------------------------------------------------------------

WORDS = (
    "boiler radiator garden ladder attic kettle window shutter drawer pantry cellar chimney lantern "
    "passport ticket harbour ferry station platform luggage receipt invoice warranty manual filter "
    "battery charger cable router printer scanner folder binder shelf cupboard hallway porch gate "
    "fence hedge compost shed bicycle helmet tyre pump valve gauge meter thermostat schedule"
).split()
N_FILES = 40


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """40 text files of 2 to 8 paragraphs (every one distinct), some long enough for 3+ chunks."""
    folder = tmp_path_factory.mktemp("corpus") / "notes"
    folder.mkdir()
    rng = random.Random(7)
    for i in range(N_FILES):
        paragraphs = []
        for p in range(2 + i % 7):
            sentences = [
                f"Note {i}.{p}.{s}: the " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 14))) + "."
                for s in range(4)
            ]
            paragraphs.append(" ".join(sentences))
        (folder / f"note{i:02d}.txt").write_text("\n\n".join(paragraphs) + "\n")
    return folder


def _committed(uri: str, options: dict[str, str]) -> int:
    """Chunks committed so far, or -1 while there is no table yet (this poller must not create it)."""
    try:
        if not Store.exists(uri, options) or TABLE not in connect(uri, options).list_tables().tables:
            return -1
        return Store.open(uri, options).count_chunks()
    except Exception:  # noqa: BLE001 - transient while the writer creates the index; asserted on afterwards
        return -1


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the writer exited ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _whole_documents(store: Store) -> dict[str, int]:
    """Every stored document is whole: chunk indexes exactly 0..n-1, no duplicate, one version. Returns
    chunks per document."""
    sizes = {}
    for doc in store.document_list():
        chunks = store.document_chunks(doc["path"], doc["collection"])
        indexes = [c.chunk_index for c in chunks]
        assert sorted(indexes) == list(range(len(chunks))), f"{doc['path']} is half-written: {indexes}"
        assert len({c.id for c in chunks}) == len(chunks), f"{doc['path']} has duplicate chunks"
        assert len({c.doc_hash for c in chunks}) == 1, f"{doc['path']} has chunks of two versions"
        assert doc["chunks"] == len(chunks)
        sizes[doc["path"]] = len(chunks)
    return sizes


def test_kill_9_mid_index_leaves_whole_documents_and_a_rerun_completes(s3, corpus, embedder, minilm_path, tmp_path):
    prefix = _prefix("killed")
    uri = s3.uri(prefix)
    env = _env(_home(tmp_path, s3), minilm_path)
    command = [*CLI, "index", "--index", uri, str(corpus), "--batch-chunks", "6"]
    log = tmp_path / "killed.err"
    with log.open("wb") as stderr:
        proc = subprocess.Popen([*command, "--quiet"], env=env, cwd=tmp_path, stdout=stderr, stderr=stderr)
    try:
        _wait_for(lambda: _committed(uri, s3.options) > 0, proc, CLI_TIMEOUT, "the first commit")
        first = _committed(uri, s3.options)
        _wait_for(lambda: _committed(uri, s3.options) > first, proc, CLI_TIMEOUT, "a second commit")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, log.read_text()

    store = Store.open(uri, s3.options)
    before = _whole_documents(store)
    assert 0 < len(before) < N_FILES, f"not killed mid-run: {len(before)} of {N_FILES} documents stored"
    assert sum(before.values()) == store.count_chunks()
    reader = rag.Index(uri, embed_model=embedder, storage_options=s3.options)
    some = sorted(before)[0]
    query = Path(some).read_text().split("\n\n")[0]
    hits = reader.search(query, k=3, mode="vector")
    assert hits and hits[0].path == some
    with warnings.catch_warnings():  # the killed run may not have built the full-text index yet
        warnings.simplefilter("ignore", rag.IndexIncomplete)
        assert reader.search(query, k=3)[0].path == some

    done = subprocess.run(
        [*command, "--json"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=CLI_TIMEOUT
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    files = sorted(str(p) for p in corpus.iterdir())
    assert report["failed"] == [] and report["updated"] == [] and report["removed"] == []
    assert sorted(report["unchanged"]) == sorted(before)  # no committed document was done again
    assert sorted(report["added"]) == sorted(set(files) - set(before))

    after = _whole_documents(Store.open(uri, s3.options))
    assert sorted(after) == files
    assert {path: after[path] for path in before} == before  # each survivor was whole, not a part
    assert max(after.values()) >= 3  # the long notes really have several chunks
    assert rag.Index(uri, storage_options=s3.options).status().failures == {}
    hits = reader.search(Path(files[-1]).read_text().split("\n\n")[-1], k=1, mode="text")
    assert hits[0].path == files[-1]
    _no_local_index(tmp_path)

"""The web app's endpoints (rag/serve/web.py) on a real server: real MiniLM, real SmolLM2, real LanceDB, a
real PDF and a real scanned PDF read by OCR. The browser tests are in test_web_browser.py."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from conftest import DATA, ScriptedGenerator, pdf_from_content
from test_server import running

import rag
from rag import Piece
from rag.serve.http import create_app
from rag.serve.web import CSP, session_token

SCAN = DATA / "pdfs" / "pdfminer-samples" / "nonfree" / "175.pdf"  # a scanned service bulletin, no text layer
KEY = "web-s3cret"
MANUAL_LINES = [
    "Boiler manual",
    "The boiler reset button is red and sits behind the front cover.",
    "Press it for five seconds after a power cut.",
    "Bleed the radiators every October, starting upstairs.",
]
NOTES = (
    "# House notes\n\n## Keys\n\nThe spare key is hidden under the blue flowerpot on the back porch.\n\n"
    "## Wifi\n\nThe wifi password is written on the fridge calendar.\n"
)


def write_manual(path: Path) -> Path:
    """A one-page PDF with four lines of Helvetica text, 20 pt apart, from y = 720 down."""
    body = " T* ".join(f"({line}) Tj" for line in MANUAL_LINES)
    return pdf_from_content(path, [f"BT /F1 12 Tf 20 TL 72 720 Td {body} ET"])


def build_docs(folder: Path, scan: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "house.md").write_text(NOTES)
    write_manual(folder / "manual.pdf")
    (folder / "page.html").write_text("<html><body><h1>Hello</h1><p>An HTML page about hedgehogs.</p></body></html>")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a PDF")
    if scan and SCAN.is_file():
        shutil.copy(SCAN, folder / "bulletin.pdf")
    return folder


@pytest.fixture(scope="module")
def index(tmp_path_factory, embedder, smollm2):
    docs = build_docs(tmp_path_factory.mktemp("web") / "docs")
    idx = rag.open_index(tmp_path_factory.mktemp("idx") / "index", embed_model=embedder, llm=smollm2)
    report = idx.add(docs)
    assert [path for path, _ in report.failed] == [str(docs / "broken.pdf")]
    return idx


@pytest.fixture(scope="module")
def url(index):
    with running(create_app(index, max_tokens=48)) as base:
        yield base


@pytest.fixture
def http(url):
    with httpx.Client(base_url=url, timeout=120) as client:
        yield client


def events(response: httpx.Response) -> list[tuple[str, dict]]:
    """The (event, data) pairs of an SSE body."""
    out, name = [], "message"
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            out.append((name, json.loads(line.removeprefix("data: "))))
    return out


def hit(http: httpx.Client, query: str, name: str) -> dict:
    hits = http.post("/api/search", json={"query": query, "k": 10}).json()["hits"]
    return next(h for h in hits if Path(h["path"]).name == name)


def page_png(http: httpx.Client, image_url: str, width: int):
    from PIL import Image

    response = http.get(f"{image_url}&width={width}")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(response.content)).convert("L")


def ink(image, box) -> float:
    """Share of dark pixels of `image` inside `box` (fractions of the image)."""
    w, h = image.size
    crop = np.asarray(image.crop((box[0] * w, box[1] * h, box[2] * w, box[3] * h)))
    return float((crop < 128).mean()) if crop.size else 0.0


# -- the page and its assets -----------------------------------------------------------------------------


def test_the_app_page_loads_only_from_this_server(http):
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CSP and "frame-ancestors 'none'" in CSP
    assert page.headers["x-content-type-options"] == "nosniff"
    for asset in ("/static/app.js", "/static/app.css", "/static/icon.svg"):
        response = http.get(asset)
        assert response.status_code == 200, asset
        text = response.text
        # the SVG names its XML namespace; nothing else may name another origin
        assert "//" not in text.replace("http://www.w3.org/2000/svg", "").replace("// ", ""), asset
    assert "http" not in page.text and "<script>" not in page.text  # no inline script, no external URL


def test_static_files_are_a_fixed_list(http):
    for name in ["app.py", "..%2F..%2Fpyproject.toml", "%2e%2e%2fweb.py", "index.html"]:
        assert http.get(f"/static/{name}").status_code == 404, name


# -- asking -------------------------------------------------------------------------------------------------


def test_an_answer_streams_in_events_and_what_streamed_is_the_answer(http):
    with http.stream("POST", "/api/ask", json={"question": "Where is the spare key hidden?"}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        got = events(response)
    names = [name for name, _ in got]
    assert names[:2] == ["question", "sources"] and names[-1] == "done" and "token" in names
    assert got[0][1] == {
        "question": "Where is the spare key hidden?",
        "searched": "Where is the spare key hidden?",
        "rewritten": False,
    }
    streamed = "".join(data["text"] for name, data in got if name == "token")
    answer = got[-1][1]["answer"]
    assert streamed.rstrip() == answer["answer"] and "flowerpot" in answer["answer"].lower()
    assert not answer["refused"] and answer["evidence"]
    cited = {s["n"]: s for s in answer["sources"]}[answer["evidence"][0]["n"]]
    assert Path(cited["path"]).name == "house.md" and cited["chunk_id"]
    assert "text" not in cited and cited["snippet"]  # the panel fetches the text


def test_a_follow_up_is_rewritten_and_the_rewrite_is_shown(tmp_path, embedder):
    # the rewrite is a model call: a scripted model here, since the plumbing is what this test is about
    docs = build_docs(tmp_path / "docs", scan=False)
    llm = ScriptedGenerator("Where is the spare key of the house hidden?")
    idx = rag.open_index(tmp_path / "idx", embed_model=embedder, llm=llm)
    idx.add(docs)
    with running(create_app(idx)) as base, httpx.Client(base_url=base, timeout=60) as http:
        body = {"question": "and the key?", "history": [["What is the wifi password?", "On the calendar [1]."]]}
        with http.stream("POST", "/api/ask", json=body) as response:
            got = events(response)
    assert got[0] == (
        "question",
        {"question": "and the key?", "searched": "Where is the spare key of the house hidden?", "rewritten": True},
    )
    assert "What is the wifi password?" in llm.calls[0][-1]["content"]  # the history reached the rewrite
    assert got[-1][0] == "done" and got[-1][1]["answer"]["question"] == "Where is the spare key of the house hidden?"


def test_a_refusal_comes_as_such_with_the_closest_sources(http):
    with http.stream("POST", "/api/ask", json={"question": "What is the capital of Mongolia?"}) as response:
        got = events(response)
    answer = got[-1][1]["answer"]
    assert got[-1][0] == "done" and answer["refused"] and answer["refusal_reason"]
    assert answer["sources"] and all(s["best"] for s in answer["sources"]) and not answer["evidence"]


class Thinker(ScriptedGenerator):
    """Thinks a sentence first, as Qwen3 does with thinking on, then replies."""

    def stream(self, messages, *, max_tokens=512, thinking=False):
        if thinking:
            yield Piece(thinking="The notes mention a flowerpot. ", prompt_tokens=100, generated_tokens=1)
        yield from super().stream(messages, max_tokens=max_tokens, thinking=thinking)


def test_thinking_streams_apart_from_the_answer(tmp_path, embedder):
    docs = build_docs(tmp_path / "docs", scan=False)
    idx = rag.open_index(tmp_path / "idx", embed_model=embedder, llm=Thinker("It is under the blue flowerpot [1]."))
    idx.add(docs)
    with running(create_app(idx)) as base, httpx.Client(base_url=base, timeout=60) as http:
        body = {"question": "Where is the spare key hidden?", "thinking": True}
        with http.stream("POST", "/api/ask", json=body) as response:
            got = events(response)
    thought = "".join(d["text"] for name, d in got if name == "thinking")
    streamed = "".join(d["text"] for name, d in got if name == "token")
    answer = got[-1][1]["answer"]
    assert thought == "The notes mention a flowerpot. " and got[-1][1]["thinking"] == thought.strip()
    assert streamed.strip() == answer["answer"] == "It is under the blue flowerpot [1]."


def test_asking_an_unknown_collection_is_a_404_before_any_stream(http):
    response = http.post("/api/ask", json={"question": "Where is the key?", "collection": "nope"})
    assert response.status_code == 404 and "nope" in response.json()["error"]["message"]
    assert http.post("/api/ask", json={"question": ""}).status_code == 400


# -- the citation panel ------------------------------------------------------------------------------------


def test_a_pdf_passage_has_its_sentence_marked_and_its_boxes_on_the_page(http):
    found = hit(http, "boiler reset button", "manual.pdf")
    sentence = "The boiler reset button is red and sits behind the front cover."
    passage = http.get("/api/passage", params={"chunk": found["chunk_id"], "quote": sentence}).json()
    text = passage["source"]["text"]
    start, end = passage["highlight"]
    assert text[start:end] == sentence
    page = passage["page"]
    assert page["kind"] == "text" and len(page["boxes"]) == 1
    (x0, y0, x1, y1) = page["boxes"][0]
    # the line was drawn at y = 700 of 792 pt from the bottom, x from 72 pt: its box sits there
    assert abs(x0 - 72 / 612) < 0.01 and 0.1 < y0 < (792 - 700) / 792 < y1 < 0.14 and x1 > 0.5
    image = page_png(http, page["image"], 612)
    assert image.size == (612, 792)
    assert ink(image, page["boxes"][0]) > 0.1  # the box covers the printed line ...
    assert ink(image, (x1 + 0.02, y0, min(x1 + 0.3, 1), y1)) < 0.01  # ... and ends where the line ends
    assert passage["file"] == f"/api/file?path={quote(found['path'], safe='')}"


def test_a_scanned_page_has_its_passage_boxed_from_ocr(http):
    if not SCAN.is_file():
        pytest.skip(f"no {SCAN}")
    found = hit(http, "the extended nose fork must be installed in conjunction", "bulletin.pdf")
    assert found["ocr"] is not None and found["ocr"] > 0.9 and found["page"] == 1
    sentence = "The 6.00X6 tires and the extended nose fork (702067-501) must be installed in conjunction."
    passage = http.get("/api/passage", params={"chunk": found["chunk_id"], "quote": sentence}).json()
    page = passage["page"]
    assert page["kind"] == "ocr" and len(page["boxes"]) == 2  # the sentence wraps onto a second line
    image = page_png(http, page["image"], 850)
    (x0, y0, x1, y1), (u0, v0, u1, v1) = page["boxes"]
    assert 0.55 < y0 < y1 < v1 < 0.7 and x1 > 0.8 and u1 < 0.4  # where it is printed, on the page's lower half
    assert all(ink(image, box) > 0.04 for box in page["boxes"])  # each box lies on printed text


def test_a_markdown_passage_comes_with_its_neighbours_and_no_page(http):
    found = hit(http, "wifi password", "house.md")
    passage = http.get(
        "/api/passage", params={"chunk": found["chunk_id"], "quote": "written on the fridge calendar"}
    ).json()
    assert passage["page"] is None
    start, end = passage["highlight"]
    assert passage["source"]["text"][start:end] == "written on the fridge calendar"
    assert passage["before"] + passage["source"]["text"] + passage["after"]


def test_a_passage_not_on_the_page_gives_no_boxes_not_a_guess(http):
    found = hit(http, "boiler reset button", "manual.pdf")
    passage = http.get(
        "/api/passage", params={"chunk": found["chunk_id"], "quote": "penguins migrate in winter"}
    ).json()
    assert passage["highlight"] is None and passage["page"]["boxes"] == [] and passage["page"]["kind"] == ""


def test_find_span_matches_across_extraction_differences():
    text = "The boiler re-\nset button is ﬁtted RED, behind the cover."
    start, end = rag.find_span(text, "boiler reset button is fitted red")
    assert text[start:end] == "boiler re-\nset button is ﬁtted RED"
    near = rag.find_span("Press it for five seconds after a power cut.", "Press it for 5 seconds after a power cut")
    assert near is not None and near[0] == 0
    assert rag.find_span("Completely different words here.", "boiler reset button") is None
    # the sentence a source without evidence is marked by: never a heading's bare "#"
    assert rag.best_snippet("# Travel\n\n## Contacts\n\nThe plumber is Jana.\n", "spare key") == "The plumber is Jana."


# -- documents: only what the index holds --------------------------------------------------------------


def test_files_and_pages_are_served_only_for_indexed_documents(http, index, tmp_path):
    manual = next(d["path"] for d in index.documents() if d["path"].endswith("manual.pdf"))
    assert http.get("/api/file", params={"path": manual}).headers["content-type"] == "application/pdf"
    secret = tmp_path / "secret.txt"
    secret.write_text("not indexed")
    folder = str(Path(manual).parent)
    tries = [
        str(secret),
        "/etc/passwd",
        f"{folder}/../../../../etc/passwd",
        f"{manual}/../house.md",
        f"{folder}/./manual.pdf",
        f"{folder}//manual.pdf",
        "manual.pdf",
        "",
        manual + "\x00.png",
        manual.replace("/", "\\"),
    ]
    for path in tries:
        for endpoint in ("/api/file", "/api/page"):
            response = http.get(endpoint, params={"path": path})
            assert response.status_code in (400, 404), (endpoint, path, response.status_code)
    # encoded by hand: once, twice, and with encoded dots and slashes
    encoded = quote(f"{folder}/../../../../etc/passwd", safe="")
    for raw in [encoded, quote(encoded, safe=""), encoded.replace("..", "%2e%2e"), "%2e%2e%2f%2e%2e%2fetc%2fpasswd"]:
        for endpoint in ("/api/file", "/api/page"):
            assert http.get(f"{endpoint}?path={raw}").status_code == 404, (endpoint, raw)


def test_an_indexed_html_file_is_shown_as_text_never_run(http, index):
    page = next(d["path"] for d in index.documents() if d["path"].endswith("page.html"))
    response = http.get("/api/file", params={"path": page})
    assert response.status_code == 200 and response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-security-policy"].startswith("sandbox")
    no_page = http.get("/api/page", params={"path": page})
    assert no_page.status_code == 404 and "no page images" in no_page.json()["error"]["message"]


# -- status -------------------------------------------------------------------------------------------------


def test_status_lists_documents_failures_models_and_location(http, index):
    st = http.get("/api/status").json()
    assert st["exists"] and st["documents"] == len(index.documents()) and st["chunks"] > 0
    failed = next(path for path in st["failures"] if path.endswith("broken.pdf"))
    assert st["failures"][failed]["reason"].startswith("corrupt PDF")
    assert st["path"] == str(index.path.resolve()) and st["llm"] and st["embedder"]
    assert st["collections"]["default"]["documents"] == st["documents"]
    assert st["ocr_pages"] == (2 if SCAN.is_file() else 0)


# -- who may call -----------------------------------------------------------------------------------------


def test_other_pages_and_foreign_hosts_are_refused(http, url):
    port = url.rsplit(":", 1)[1]
    ask = {"question": "Where is the spare key hidden?"}
    refused = [
        {"Origin": "http://127.0.0.1:1"},  # another app on this machine: loopback, but not this server
        {"Origin": "http://localhost:3000"},
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Host": "evil.example"},  # DNS rebinding
        {"Host": f"evil.example:{port}"},
    ]
    for headers in refused:
        assert http.post("/api/ask", json=ask, headers=headers).status_code == 403, headers
        assert http.get("/api/status", headers=headers).status_code == 403, headers
    ours = {"Origin": url, "Sec-Fetch-Site": "same-origin"}
    assert http.get("/api/status", headers=ours).status_code == 200
    assert http.get("/", headers={"Sec-Fetch-Site": "none"}).status_code == 200


def test_with_an_api_key_the_app_asks_once_and_keeps_a_cookie(index):
    with running(create_app(index, api_key=KEY)) as base, httpx.Client(base_url=base, timeout=60) as http:
        assert http.get("/").status_code == 200  # the page itself holds no data
        assert http.get("/api/status").status_code == 401
        assert http.post("/api/session", json={"key": "wrong"}).status_code == 401
        login = http.post("/api/session", json={"key": KEY})
        assert login.status_code == 200
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and KEY not in cookie
        assert http.cookies["rag_session"] == session_token(KEY)
        assert http.get("/api/status").status_code == 200  # the cookie, sent back
        http.cookies.clear()
        assert http.get("/api/status", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert http.get("/api/status", cookies={"rag_session": "forged"}).status_code == 401
        assert http.get("/v1/models", cookies={"rag_session": session_token(KEY)}).status_code == 401  # /v1: the key


# -- rag ui -------------------------------------------------------------------------------------------------


def test_rag_ui_opens_the_browser_on_a_free_port_when_the_asked_one_is_taken(
    tmp_path, index, minilm_path, smollm2_path
):
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    script = Path(sys.executable).with_name("rag")
    launcher = [str(script)] if script.is_file() else [sys.executable, "-c", "from rag.cli import app; app()"]
    env = os.environ | {"RAG_EMBED_MODEL": str(minilm_path), "RAG_LLM": str(smollm2_path), "BROWSER": str(browser)}
    ui = subprocess.Popen(
        [*launcher, "ui", "--index", str(index.path), "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not opened.exists():
            assert ui.poll() is None and time.monotonic() < deadline, ui.stderr.read() if ui.stderr else ""
            time.sleep(0.2)
        url = opened.read_text().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/") and f":{port}/" not in url
        assert "<title>rag</title>" in httpx.get(url, timeout=10).text
    finally:
        ui.terminate()
        _, err = ui.communicate(timeout=60)
        taken.close()
    assert f"Port {port} is taken: using another one." in err and f"Serving the app at {url}" in err


def test_a_passage_shows_the_text_around_it_without_the_chunks_overlap(tmp_path, embedder):
    sections = [
        f"## Part {i}\n\n" + " ".join(f"Sentence {i}.{j} about topic {i} goes here." for j in range(30))
        for i in range(6)
    ]
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "long.md").write_text("# Long\n\n" + "\n\n".join(sections) + "\n")
    idx = rag.open_index(tmp_path / "idx", embed_model=embedder, llm=ScriptedGenerator())
    idx.add(folder)
    chunks = idx.get_document(str(folder / "long.md"))
    assert len(chunks) >= 5
    middle = chunks[2]
    assert [c.chunk_id for c in idx.neighbours(middle)] == [c.chunk_id for c in chunks[1:4]]
    assert [c.chunk_id for c in idx.neighbours(chunks[0])] == [c.chunk_id for c in chunks[:2]]
    with running(create_app(idx)) as base, httpx.Client(base_url=base, timeout=60) as http:
        passage = http.get("/api/passage", params={"chunk": middle.chunk_id}).json()
    assert passage["before"] and passage["after"]
    before, after, prev, nxt, text = passage["before"], passage["after"], chunks[1].text, chunks[3].text, middle.text
    assert before in prev and after in nxt
    overlap = prev[prev.index(before) + len(before) :].strip()  # what was cut: the start of this chunk
    assert text.lstrip().startswith(overlap)
    repeated = nxt[: nxt.index(after)].strip()  # what was cut: the end of this chunk
    assert text.rstrip().endswith(repeated)
    assert overlap or repeated  # chunks overlap here, and the panel shows that text once

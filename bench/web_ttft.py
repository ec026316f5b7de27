"""Time to first token as a user feels it: the web app in a real browser vs `rag ask`, same questions.

    python bench/web_ttft.py [--runs 5] [--embed-model PATH] [--llm PATH] [--docs DIR]

Indexes --docs (default examples/docs) into a temporary index (not timed), starts a real `rag serve`,
and drives Debian's chromium (Selenium, system chromedriver) through the app: for each question, Enter
in the question box to the first answer token on the page (the app's own `data-ttft-ms`, taken with
performance.now()). In the same run, alternating with the browser, `rag ask` answers the same question
in a fresh process: its own "first token" (question to first token, models already loaded) and the wall
time from starting the command to its first answer character (what a terminal user waits, model loading
included). Each browser question starts a new conversation, so no follow-up rewrite runs. Medians are
printed; run it alone on the machine (2 cores: anything else running changes every number).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAG = str(Path(sys.executable).with_name("rag"))
MODELS = Path(os.environ.get("RAG_TEST_MODELS", Path.home() / ".cache" / "rag-test-models"))
QUESTIONS = [
    "Where is the spare key hidden?",
    "What does fault code E4 mean?",
    "Where are the passports?",
    "Where is the boiler?",
    "Who is the plumber?",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rag_ask(question: str, env: dict, max_tokens: int) -> tuple[float, float] | None:
    """(`rag ask`'s own first-token time, wall seconds from the command's start to its first answer
    character on stdout), in a fresh process; None if it refused (no answer generated)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [RAG, "ask", question, "--max-tokens", str(max_tokens)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    first = proc.stdout.read(1)
    wall = time.perf_counter() - start
    _, err = proc.communicate(timeout=600)
    if proc.returncode != 0 or not first:
        raise SystemExit(f"rag ask failed: {err.decode()[-2000:]}")
    found = re.search(r"first token ([\d.]+) s", err.decode())
    if "no answer generated" in err.decode():
        return None
    if found is None:
        raise SystemExit(f"no first-token time in rag ask's output: {err.decode()[-1000:]}")
    return float(found.group(1)), wall


def browser_ask(driver, question: str) -> float | None:
    """Seconds from Enter in the question box to the first answer token shown (the app's measurement);
    None for a refusal."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    driver.find_element(By.ID, "reset").click()
    box = driver.find_element(By.ID, "question")
    box.send_keys(question)
    box.send_keys(Keys.ENTER)
    WebDriverWait(driver, 600).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".turn[data-state='done'], .turn[data-state='error']")
    )
    turn = driver.find_element(By.CSS_SELECTOR, ".turn")
    if turn.get_attribute("data-state") != "done":
        raise SystemExit(f"the browser got no answer: {turn.text}")
    if "refused" in (turn.get_attribute("class") or "") or not turn.get_attribute("data-ttft-ms"):
        return None
    return int(turn.get_attribute("data-ttft-ms")) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--embed-model", default=str(MODELS / "all-MiniLM-L6-v2"))
    parser.add_argument("--llm", default=str(MODELS / "SmolLM2-135M-Instruct"))
    parser.add_argument("--docs", default=str(ROOT / "examples" / "docs"))
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from chromium import new_browser  # the browser the tests use: headless chromium, the system driver

    with tempfile.TemporaryDirectory() as tmp:
        env = os.environ | {"RAG_EMBED_MODEL": args.embed_model, "RAG_LLM": args.llm, "RAG_INDEX": f"{tmp}/index"}
        env |= {"RAG_HOME": f"{tmp}/home", "RAG_LOG": "off", "HF_HUB_OFFLINE": "1"}
        subprocess.run([RAG, "index", args.docs, "--quiet"], env=env, check=True)
        port = free_port()
        serve_cmd = [RAG, "serve", "--port", str(port), "--max-tokens", str(args.max_tokens)]
        server = subprocess.Popen(serve_cmd, env=env, stderr=subprocess.PIPE, text=True)
        assert server.stderr is not None
        started = time.perf_counter()
        for line in server.stderr:
            if "Serving the app at" in line:
                break
        ready = time.perf_counter() - started
        driver = new_browser()
        try:
            driver.get(f"http://127.0.0.1:{port}/")
            browser_ask(driver, "warm-up question")  # the first answer after start-up compiles kernels
            web, own, wall, refused = [], [], [], 0
            for i in range(args.runs):
                question = QUESTIONS[i % len(QUESTIONS)]
                shown, asked = browser_ask(driver, question), rag_ask(question, env, args.max_tokens)
                if shown is None or asked is None:  # a refusal streams no answer: no first token to time
                    refused += 1
                    print(f"run {i + 1}: refused (browser {shown}, rag ask {asked})  {question}")
                    continue
                web.append(shown)
                own.append(asked[0])
                wall.append(asked[1])
                print(
                    f"run {i + 1}: browser {web[-1]:.2f} s · rag ask {own[-1]:.2f} s (wall {wall[-1]:.2f} s)  {question}"
                )
        finally:
            driver.quit()
            server.terminate()
            server.wait(60)
    med = statistics.median
    if not web:
        raise SystemExit("every question was refused: nothing to time")
    print(f"\nllm {Path(args.llm).name}, embedder {Path(args.embed_model).name}, {len(web)} answered questions")
    print(f"({refused} refused, not timed), medians:")
    print(f"  rag serve ready (models loaded)        {ready:6.2f} s, once")
    print(f"  browser: Enter -> first token shown    {med(web):6.2f} s")
    print(
        f"  rag ask: its own first token           {med(own):6.2f} s   (browser / rag ask: {med(web) / med(own):.2f}x)"
    )
    print(
        f"  rag ask: command start -> first token  {med(wall):6.2f} s   (browser / this: {med(web) / med(wall):.2f}x)"
    )


if __name__ == "__main__":
    main()

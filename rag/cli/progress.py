"""How the CLI shows index runs: a live progress bar on a terminal, plain log lines elsewhere, and the
end-of-run report. Rendering only: no indexing logic lives here."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.markup import escape

import rag

LOG_EVERY_S = 5.0  # off a terminal: a line after a file at most this often
MAX_SKIPPED_SHOWN = 20  # skipped files (types we don't read) named after a run; --json has them all
HEARTBEAT_S = 30.0  # ... and at least this often while one file takes longer


@contextmanager
def progress_reporter(console: Console) -> Iterator[Callable[[rag.Progress], None]]:
    """Yield a progress callback: a rich bar on a terminal, else a log line every few seconds, and one at
    least every `HEARTBEAT_S` while a single big file keeps the run busy."""
    if console.is_terminal:
        with _bar(console) as update:
            yield update
    else:
        with _logger(console) as update:
            yield update


@contextmanager
def _bar(console: Console) -> Iterator[Callable[[rag.Progress], None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    columns = (
        TextColumn("{task.fields[phase]:<11}"),
        TextColumn("files"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[chunks]} chunks · {task.fields[rate]:.1f} chunks/s"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[ocr]}[dim]{task.fields[file]}"),
    )
    started = time.perf_counter()
    with Bar(*columns, console=console, transient=True) as bar:
        task = bar.add_task("index", total=None, chunks=0, rate=0.0, file="", phase="starting", ocr="")
        pages = _PageRate()

        def update(p: rag.Progress) -> None:
            rate = p.chunks / max(time.perf_counter() - started, 1e-9)
            total = p.total or None  # unknown while discovering: the bar pulses instead of "0/0"
            bar.update(
                task,
                completed=p.done,
                total=total,
                chunks=p.chunks,
                rate=rate,
                file=escape(_short(p.path)),
                phase=p.phase,
                ocr=pages.text(p.ocr_pages),
            )

        yield update


@contextmanager
def _logger(console: Console) -> Iterator[Callable[[rag.Progress], None]]:
    started = time.perf_counter()
    last = [started]  # when the last line was printed
    seen: list[rag.Progress] = []  # the latest progress, once there is one
    lock = threading.Lock()
    pages = _PageRate()

    def line(p: rag.Progress, now: float) -> None:
        last[0] = now
        rate = p.chunks / max(now - started, 1e-9)
        where = f" — {p.path}" if p.path else ""
        ocr = pages.text(p.ocr_pages)
        console.print(
            f"[{p.done}/{p.total} files] {p.phase or 'working'}: {p.chunks} chunks, {rate:.1f} chunks/s{ocr}{where}",
            markup=False,
            highlight=False,
        )

    def update(p: rag.Progress) -> None:
        with lock:
            seen[:] = [p]
            now = time.perf_counter()
            if now - last[0] >= LOG_EVERY_S or (p.done == p.total and p.phase == "done"):
                line(p, now)

    stop = threading.Event()

    def heartbeat() -> None:  # a 600-page PDF is one file: say it is still being worked on
        while not stop.wait(HEARTBEAT_S / 4):
            with lock:
                now = time.perf_counter()
                if seen and now - last[0] >= HEARTBEAT_S:
                    line(seen[0], now)

    ticker = threading.Thread(target=heartbeat, name="rag-progress", daemon=True)
    ticker.start()
    try:
        yield update
    finally:
        stop.set()
        ticker.join()


class _PageRate:
    """ " · OCR 12 pages, 0.8 pages/s" once a run has OCR'd a page (the rate counts from the first one)."""

    def __init__(self) -> None:
        self.first: tuple[float, int] | None = None

    def text(self, pages: int) -> str:
        if not pages:
            return ""
        now = time.perf_counter()
        if self.first is None:
            self.first = (now, pages)
        since, base = self.first
        rate = f", {(pages - base) / (now - since):.2f} pages/s" if now - since > 1.0 else ""
        return f" · OCR {pages} page{'s' if pages != 1 else ''}{rate} "


def print_report(report: rag.IndexReport, out: Console, err: Console, quiet: bool = False) -> None:
    """Failures and lost pages (always, on stderr), then the summary line unless `quiet`."""
    for path, reason in report.failed:
        err.print(f"[red]failed[/red] {escape(path)}: {escape(reason)}")
    for path, reason in report.warnings:
        err.print(f"[yellow]incomplete[/yellow] {escape(path)}: {escape(reason)}")
    if quiet:
        return
    for path, reason in report.skipped[:MAX_SKIPPED_SHOWN]:
        err.print(f"[dim]skipped[/dim] {escape(path)}: {escape(reason)}")
    if len(report.skipped) > MAX_SKIPPED_SHOWN:
        err.print(f"[dim]… and {len(report.skipped) - MAX_SKIPPED_SHOWN} more skipped (--json lists them all)[/dim]")
    skipped = f", {len(report.skipped)} skipped (unsupported type)" if report.skipped else ""
    cached = report.ocr_pages - report.ocr_read
    ocr = f"; {report.ocr_pages} pages read by OCR" if report.ocr_pages else ""
    ocr += f" ({cached} from its cache)" if report.ocr_pages and cached else ""
    out.print(
        f"{report.summary()}{skipped} — {report.chunks} chunks written ({report.embedded} embedded, "
        f"{report.reused} reused){ocr} in {report.seconds:.1f}s",
        markup=False,
    )


def _short(path: str, width: int = 40) -> str:
    name = Path(path).name
    return name if len(name) <= width else name[: width - 1] + "…"

"""A thread that runs model calls one at a time, in arrival order.

A chat model has one generation in it at a time, so `rag serve` and `rag mcp` hand model work to
`ModelWorker`s: concurrent requests wait in a queue instead of racing on one model. They keep two, one
for searches and one for answers (rag/serve/serving.py), so a search never waits behind an answer. A streamed answer runs on the worker while the caller's event loop
consumes it; it stops at its next item when the caller goes away, sets `stop`, or has run `seconds`,
and the worker moves on. This module knows nothing about HTTP, MCP or models.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
_END = object()


class ModelWorker:
    """A single daemon thread executing submitted jobs in order. `pending` counts queued + running jobs."""

    def __init__(self, name: str = "rag-model-worker") -> None:
        self._jobs: queue.SimpleQueue[tuple[Future, Callable[[], Any]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending = 0
        self._closed = False
        self._idle = threading.Event()  # set once closed and every queued job has run
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        return self._pending

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Queue `fn(*args, **kwargs)`; the Future resolves when the worker has run it."""
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("this ModelWorker is closed")
            self._pending += 1
            self._jobs.put((future, lambda: fn(*args, **kwargs)))
        return future

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Await `fn(*args, **kwargs)` run on the worker."""
        return await asyncio.wrap_future(self.submit(fn, *args, **kwargs))

    async def stream(
        self, make: Callable[[], Iterator[T]], stop: threading.Event | None = None, seconds: float | None = None
    ) -> AsyncIterator[T]:
        """Iterate `make()` on the worker, yielding its items here as they come.

        The iteration ends early, at its next item, once `stop` is set or it has run for `seconds`; closing
        this async iterator (a client disconnect) sets `stop`. The underlying iterator is then closed on
        the worker, which frees it for the next job. A stream stopped before it started never starts.
        """
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[Any] = asyncio.Queue()
        stop = stop or threading.Event()

        def produce() -> None:
            iterator = None
            try:
                if stop.is_set():
                    return
                deadline = None if seconds is None else time.monotonic() + seconds
                iterator = make()
                for item in iterator:
                    loop.call_soon_threadsafe(items.put_nowait, item)
                    if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                        break
            except BaseException as exc:  # re-raised in the consumer
                loop.call_soon_threadsafe(items.put_nowait, _Failure(exc))
            finally:
                getattr(iterator, "close", lambda: None)()  # a generator's cleanup runs here, on this thread
                loop.call_soon_threadsafe(items.put_nowait, _END)

        job = self.submit(produce)
        try:
            while (item := await items.get()) is not _END:
                if isinstance(item, _Failure):
                    raise item.exc
                yield item
        finally:
            stop.set()  # a running stream stops at its next item
            job.cancel()  # one still waiting in the queue never starts

    def close(self, wait: float = 0.0) -> bool:
        """Take no more jobs; those already queued still run. Waits up to `wait` seconds for them and
        says whether they are done: a process that exits while MLX runs on a worker aborts.

        The thread itself never ends; once idle it parks until the process exits. MLX (0.32) aborts the
        process at exit ("terminate called without an active exception") if a thread that ran MLX work
        has ended, so a worker's thread must not."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._jobs.put(None)
        return self._idle.wait(wait)

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            self._run(job)
        self._idle.set()
        threading.Event().wait()  # parked for good: see close()

    def _run(self, job: tuple[Future, Callable[[], Any]]) -> None:
        future, call = job
        running = future.set_running_or_notify_cancel()  # False: cancelled while it waited
        result, error = None, None
        if running:
            try:
                result = call()
            except BaseException as exc:  # delivered to whoever awaits the future
                error = exc
        with self._lock:
            self._pending -= 1  # before the result: whoever wakes up sees the right count
        if running and error is not None:
            future.set_exception(error)
        elif running:
            future.set_result(result)


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

"""One thread that runs every model call of a server, one at a time, in arrival order.

MLX evaluation is not safe from several threads at once, and a 4B chat model has one generation in it
at a time anyway, so `rag serve` and `rag mcp` hand all model work (embedding, search, answering) to a
`ModelWorker`: concurrent requests wait in its queue instead of crashing. A streamed answer runs on the
worker while the caller's event loop consumes it; if the caller goes away the stream is closed and the
worker moves on. This module knows nothing about HTTP or MCP.
"""

from __future__ import annotations

import asyncio
import queue
import threading
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
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        return self._pending

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Queue `fn(*args, **kwargs)`; the Future resolves when the worker has run it."""
        future: Future[T] = Future()
        with self._lock:
            self._pending += 1
        self._jobs.put((future, lambda: fn(*args, **kwargs)))
        return future

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Await `fn(*args, **kwargs)` run on the worker."""
        return await asyncio.wrap_future(self.submit(fn, *args, **kwargs))

    async def stream(self, make: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
        """Iterate `make()` on the worker, yielding its items here as they come.

        Closing this async iterator early (a client disconnect) closes the underlying iterator at its
        next item, which frees the worker for the next job.
        """
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def produce() -> None:
            iterator = None
            try:
                iterator = make()
                for item in iterator:
                    loop.call_soon_threadsafe(items.put_nowait, item)
                    if stop.is_set():
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

    def close(self) -> None:
        """Stop the thread after the jobs already queued."""
        self._jobs.put(None)

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
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

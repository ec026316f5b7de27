"""Keep an index in sync with folders: watch for file changes and re-run an incremental index.

File-system events come from watchfiles (inotify/FSEvents, in Rust). A burst of events (an editor's
save, a `git checkout`, a copied folder) is debounced and batched into ONE call of `sync`, which is an
incremental index run: it skips unchanged files cheaply, so re-running it is always correct and never
loses an event's effect. Hidden files and folders are ignored, as in `discover`.
This module does not index anything itself: the caller's `sync` does.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

DEFAULT_DEBOUNCE_MS = 1000


def watch_paths(
    paths: Iterable[str | os.PathLike[str]],
    sync: Callable[[], object],
    *,
    on_report: Callable[[Any], None] | None = None,
    stop: threading.Event | None = None,
    debounce_ms: int = DEFAULT_DEBOUNCE_MS,
) -> None:
    """Run `sync()` once, then again after every debounced batch of changes, until `stop` is set.

    Ctrl-C (KeyboardInterrupt) ends the loop cleanly between runs; an index run in progress commits
    whole documents only, so stopping never corrupts the index.
    """
    from watchfiles import watch

    targets = [str(Path(p).expanduser()) for p in paths]
    events = watch(
        *targets, watch_filter=_visible, debounce=debounce_ms, stop_event=stop, rust_timeout=500, yield_on_timeout=True
    )
    try:
        next(events, None)  # start watching BEFORE the first sync, so files saved during it are not missed
        _run(sync, on_report)
        for changes in events:
            if changes:  # empty sets are the watcher's timeouts, which let `stop` be noticed
                _run(sync, on_report)
    except KeyboardInterrupt:
        return


def _run(sync: Callable[[], object], on_report: Callable[[object], None] | None) -> None:
    report = sync()
    if on_report:
        on_report(report)


def _visible(_change: object, path: str) -> bool:
    return not any(part.startswith(".") for part in Path(path).parts[1:])

"""Find the files to index under the paths a user gives.

Walks folders without following directory symlinks (no loops), skips hidden files and folders (names
starting with "."), and sorts the result so runs are repeatable. A path named explicitly is always
returned, even if hidden. This module does not open files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from ingest.errors import RagError


def discover(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Yield absolute file paths under `paths` (files or folders), sorted within each folder."""
    for given in paths:
        path = Path(given).expanduser()
        if path.is_file():
            yield path.resolve()
        elif path.is_dir():
            yield from _walk(path.resolve())
        else:
            raise RagError(f"no such file or folder: {given}", "check the path")


def _walk(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(folder) / name

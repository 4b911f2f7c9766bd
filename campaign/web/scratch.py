"""The console's scratch folders: one request's uploaded files, imports and downloads.

    scratch_of(app.state).folder("uploads") ─► data_dir/uploads/<random>/ (made, remembered)

Each request removes its own folder when it is done with it; what one could not remove (a
client gone before a download's cleanup ran, a request cut off by the shutdown) goes when
the console stops (`Scratch.close`, from the lifespan). Only this console's folders go
then (two consoles may share a data_dir); folders older than a day found at start-up (a
console that crashed) are removed on first use.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Any

STALE_SECONDS = 24 * 3600
KINDS = ("uploads", "work")  # the folders of data_dir that only hold scratch folders
PRUNE_AT = 256  # remembered folders before the ones already removed are forgotten
_LOCK = threading.Lock()


class Scratch:
    """The scratch folders this console made (app.state.scratch)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._made: set[Path] = set()
        self._prune_at = PRUNE_AT
        self._lock = threading.Lock()
        for kind in KINDS:
            _remove_stale(data_dir / kind)

    def folder(self, kind: str) -> Path:
        """A new empty folder data_dir/<kind>/<random>/, removed at the latest on close."""
        if kind not in KINDS:
            raise ValueError(f"no scratch folder kind {kind!r}")
        path = self.data_dir / kind / secrets.token_urlsafe(16)
        path.mkdir(parents=True)
        with self._lock:
            self._made.add(path)
            if len(self._made) > self._prune_at:  # forget those their requests removed
                self._made = {p for p in self._made if p.exists()}
                self._prune_at = max(PRUNE_AT, 2 * len(self._made))
        return path

    def close(self) -> None:
        """Remove every folder this console made that is still there."""
        with self._lock:
            made, self._made = self._made, set()
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
        for kind in KINDS:
            remove_if_empty(self.data_dir / kind)

    def __len__(self) -> int:
        return len(self._made)


def scratch_of(state: Any) -> Scratch:
    """The app's Scratch (made on first use)."""
    found = getattr(state, "scratch", None)
    if found is None:
        with _LOCK:
            found = getattr(state, "scratch", None)
            if found is None:
                found = Scratch(Path(state.data_dir))
                state.scratch = found
    return found


def remove_if_empty(folder: Path) -> None:
    """Remove `folder` when nothing is in it (another console's files stay)."""
    with contextlib.suppress(OSError):
        os.rmdir(folder)


def _remove_stale(folder: Path) -> None:
    if not folder.is_dir():
        return
    limit = time.time() - STALE_SECONDS
    for child in folder.iterdir():
        try:
            if child.is_dir() and child.stat().st_mtime < limit:
                shutil.rmtree(child, ignore_errors=True)
        except OSError:
            continue


__all__ = ["KINDS", "Scratch", "remove_if_empty", "scratch_of"]

"""The files a nightly job reads: its contact lists, found by the job's glob, never an
Excel/WPS owner file or a hidden file (jobs.py runs the job; jobs_check.py checks its
config before anything, and lists the files it would plan)."""

from __future__ import annotations

import glob
from pathlib import Path

CONTACT_SUFFIXES = (".csv", ".xlsx", ".xls")


def contact_files(pattern: str) -> list[Path]:
    paths = [Path(p) for p in sorted(glob.glob(pattern))]
    return [
        p
        for p in paths
        if p.is_file() and p.suffix.lower() in CONTACT_SUFFIXES and not is_lock_or_hidden(p)
    ]


def is_lock_or_hidden(path: Path) -> bool:
    """Excel/WPS owner files ("~$list.xlsx", present while the list is open) and hidden files
    are not lists: never planned, imported or moved."""
    return path.name.startswith(("~$", "."))


__all__ = ["CONTACT_SUFFIXES", "contact_files", "is_lock_or_hidden"]

"""Another commit's code beside this tree's, for before/after benchmarks in one run."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def git_archive(commit: str, dest: Path, *paths: str) -> Path:
    """Extract `paths` (all of it if none) of `commit` into the existing folder `dest`."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, *paths], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest

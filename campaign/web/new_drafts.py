"""Uploads that could not be planned yet: kept until the sender says how to read them.

A contact file whose mobile column, header row or sheet cannot be found is not a plan
(`PlanCache.add` refuses it and keeps nothing). The new-campaign flow keeps such an
upload here as a draft, under data_dir/drafts/<draft_id>/, and shows its map step
(/new/<draft_id>/map); once the choices read it, the draft becomes a plan and is removed.

    Drafts.add(user, files, problem) ─► draft_id
    Drafts.linked(draft) ─► fresh links of its files for one PlanCache.add attempt
    Drafts.remove(draft_id)

A draft belongs to the user who uploaded it (anyone else: "no such plan"); at most
`capacity` drafts are kept (the oldest leave first, their files removed), and folders
older than a day found at start-up (a console that stopped) are removed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from campaign.errors import NotFoundError
from campaign.web.plans import STALE_SECONDS, PlanChoices, harmless_name, place_files

#: The template a plan is made with before the sender wrote one (never sent: the preview
#: and the send need a template written on the template page).
DRAFT_TEMPLATE = "(no template yet)"


@dataclass
class Draft:
    draft_id: str
    user: str
    folder: Path
    files: tuple[tuple[Path, str], ...]  # (path on disk, name as uploaded)
    problem: str  # why it could not be planned (the last attempt)
    choices: PlanChoices = field(default_factory=lambda: PlanChoices(DRAFT_TEMPLATE))
    created: float = field(default_factory=time.time)


class Drafts:
    def __init__(self, folder: Path, *, capacity: int = 20) -> None:
        self.folder, self.capacity = folder, capacity
        self._drafts: OrderedDict[str, Draft] = OrderedDict()
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale(folder)

    def add(self, user: str, files: Sequence[tuple[Path, str]], problem: str = "") -> Draft:
        """Keep uploaded files (moved here) as a draft of `user`."""
        draft_id = secrets.token_urlsafe(16)
        home = self.folder / draft_id
        paths = place_files(files, home / "files")
        draft = Draft(draft_id, user, home, tuple(zip(paths, (n for _, n in files), strict=True)),
                      problem)  # fmt: skip
        with self._lock:
            self._drafts[draft_id] = draft
            evicted = []
            while len(self._drafts) > self.capacity:
                evicted.append(self._drafts.popitem(last=False)[1])
        for old in evicted:
            shutil.rmtree(old.folder, ignore_errors=True)
        return draft

    def get(self, draft_id: str, user: str) -> Draft:
        with self._lock:
            draft = self._drafts.get(draft_id)
            if draft is None or draft.user != user:
                raise NotFoundError("no such draft")
            self._drafts.move_to_end(draft_id)
            return draft

    def find(self, draft_id: str, user: str) -> Draft | None:
        try:
            return self.get(draft_id, user)
        except NotFoundError:
            return None

    def linked(self, draft: Draft) -> list[tuple[Path, str]]:
        """Links (copies where links are not possible) of the draft's files in a fresh
        folder of it: PlanCache.add moves what it is given, and removes it on failure."""
        attempt = draft.folder / f"try-{secrets.token_urlsafe(6)}"
        found = []
        for index, (path, name) in enumerate(draft.files, start=1):
            target = attempt / str(index) / harmless_name(name, index)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, target)
            except OSError:
                shutil.copyfile(path, target)
            found.append((target, name))
        return found

    def tidy(self, draft: Draft) -> None:
        """Remove the attempts' leftovers (empty folders, files not moved)."""
        for child in draft.folder.glob("try-*"):
            shutil.rmtree(child, ignore_errors=True)

    def remove(self, draft_id: str) -> None:
        with self._lock:
            draft = self._drafts.pop(draft_id, None)
        if draft is not None:
            shutil.rmtree(draft.folder, ignore_errors=True)

    def close(self) -> None:
        with self._lock:
            gone = list(self._drafts.values())
            self._drafts.clear()
        for draft in gone:
            shutil.rmtree(draft.folder, ignore_errors=True)


def _remove_stale(folder: Path) -> None:
    limit = time.time() - STALE_SECONDS
    for child in folder.iterdir():
        try:
            if child.is_dir() and child.stat().st_mtime < limit:
                shutil.rmtree(child, ignore_errors=True)
        except OSError:
            continue


__all__ = ["DRAFT_TEMPLATE", "Draft", "Drafts"]

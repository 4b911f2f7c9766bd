"""The console's plans: contact files uploaded and planned, kept until they are sent.

    upload ─► PlanCache.add (files moved into data_dir/plans/<plan_id>/, planned) ─► plan_id
    map / template pages ─► PlanCache.revise (same plan_id, same files, a new revision;
                            a new template replans the contacts kept: no file read)
    preview ─► PlanEntry.to_json, problem_rows, PlanCache.preview_file (`plan --out`)
    confirm / POST /api/v1/campaigns ─► PlanCache.create_campaign: exactly once per plan

A plan lives in this process's memory with its contacts as read (least recently used
first out: at most `capacity` plans and `max_rows` input rows in all); its files stay on
disk until it leaves, each under its uploaded name made harmless (no folders, no control
characters) in a folder of its own, so a plan's `source` reads as the file the user chose.
A plan belongs to the user who made it: anyone else gets "no such plan".

`create_campaign` runs under the plan's lock and remembers the campaign: a double click,
a resubmitted form or a retried API call gets the same campaign, never a second one (also
after the plan itself has left the cache, within the last `remembered` plans).
"""

from __future__ import annotations

import secrets
import shutil
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from campaign.errors import InputError, NotFoundError
from campaign.outcomes import Outcome

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy import Engine

    from campaign.config import Settings
    from campaign.workflow import PlanResult
    from campaign.workflow_queue import ScheduleResult

#: Problem rows (not ready) shown with a plan.
PROBLEMS_SHOWN = 200
#: Longest file name kept (characters, the extension included).
MAX_NAME = 120
#: Plan folders older than this found at start-up belong to no running console.
STALE_SECONDS = 24 * 3600


class PlanUsedError(InputError):
    """The plan was already sent as a campaign: it cannot be changed any more."""


class PlanChangedError(InputError):
    """The plan was revised after the revision the caller confirmed."""


@dataclass(frozen=True)
class PlanChoices:
    """What a plan was made with: the template and how the files are read."""

    template: str
    name: str | None = None
    sheet: str | None = None
    header_row: int | None = None
    mobile_column: str | None = None


@dataclass
class PlanEntry:
    """One plan of the cache (mutable: a revision replaces `planned` and `choices`)."""

    plan_id: str
    planned: PlanResult
    folder: Path  # the plan's own folder: its files and previews
    files: tuple[Path, ...]  # the contact files on disk, under their (made harmless) names
    uploaded_names: tuple[str, ...]  # the names as uploaded (metadata, for showing)
    choices: PlanChoices
    user: str
    created: float  # time.time()
    revision: int = 1
    campaign_id: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def rows(self) -> int:
        return int(self.planned.summary["rows"])

    def to_json(self, problems: int = PROBLEMS_SHOWN) -> dict[str, Any]:
        """The keys of `plan --json` with plan_id, revision, campaign_id and `problems`
        (the first non-ready rows: source, source_row, mobile, outcome, reason)."""
        data = self.planned.figures()
        if self.choices.name:
            data["name"] = self.choices.name
        return {
            **data,
            "plan_id": self.plan_id,
            "revision": self.revision,
            "campaign_id": self.campaign_id,
            "problems": problem_rows(self.planned, limit=problems)[1],
        }


@dataclass(frozen=True)
class CreatedCampaign:
    """The campaign of a plan: `created` False when it existed already (a repeat)."""

    campaign_id: int
    created: bool
    result: ScheduleResult | None = None


def problem_rows(
    planned: PlanResult,
    *,
    outcome: str | None = None,
    offset: int = 0,
    limit: int = PROBLEMS_SHOWN,
) -> tuple[int, list[dict[str, Any]]]:
    """(how many rows are not ready [with that outcome], those of the page): source,
    source_row, mobile (the normalized number, else the cell as given), outcome, reason."""
    rows = planned.plan.rows
    frame = planned.plan.contacts.frame
    wanted = rows["outcome"] != Outcome.READY
    if outcome:
        wanted &= rows["outcome"] == outcome
    positions = wanted.to_numpy(dtype=bool).nonzero()[0]
    page = positions[max(offset, 0) : max(offset, 0) + max(limit, 0)]
    picked, cells = rows.iloc[page], frame.iloc[page]
    found = []
    for normalized, raw, source, source_row, what, reason in zip(
        picked["normalized_mobile"].tolist(),
        cells["_mobile_raw"].tolist(),
        cells["_source"].tolist(),
        cells["_source_row"].tolist(),
        picked["outcome"].tolist(),
        picked["reason"].tolist(),
        strict=True,
    ):
        found.append(
            {
                "source": str(source),
                "source_row": int(source_row),
                "mobile": _text(normalized) or _text(raw),
                "outcome": str(what),
                "reason": _text(reason),
            }
        )
    return len(positions), found


def _text(value: Any) -> str:
    return "" if value is None or value != value else str(value)  # NaN != NaN


def harmless_name(uploaded: str, index: int) -> str:
    """A file name to store an upload under: the last part of what the browser sent, no
    control characters, no leading dots, at most MAX_NAME characters (extension kept);
    `file<index>` when nothing is left."""
    base = unicodedata.normalize("NFC", uploaded).replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip().lstrip(".").strip()
    if len(base) > MAX_NAME:
        _stem, dot, ext = base.rpartition(".")
        ext = ext if dot and len(ext) <= 10 else ""
        base = base[: MAX_NAME - len(ext) - 1].rstrip() + (f".{ext}" if ext else "")
    return base or f"file{index}"


def place_files(files: Sequence[tuple[Path, str]], folder: Path) -> list[Path]:
    """Move uploaded files (path, uploaded name) into `folder`, each in a folder of its own
    (two uploads of one name do not collide) under its harmless name."""
    placed = []
    for index, (path, uploaded) in enumerate(files, start=1):
        target = folder / str(index) / harmless_name(uploaded, index)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), target)
        placed.append(target)
    return placed


class PlanCache:
    """Plans by plan_id (random, URL-safe); see the module docstring."""

    def __init__(
        self,
        folder: Path,
        *,
        capacity: int = 20,
        max_rows: int = 3_000_000,
        remembered: int = 10_000,
    ) -> None:
        self.folder = folder
        self.capacity, self.max_rows, self.remembered = capacity, max_rows, remembered
        self._entries: OrderedDict[str, PlanEntry] = OrderedDict()
        self._made: OrderedDict[str, tuple[str, int]] = OrderedDict()  # plan -> (user, id)
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale(folder)

    # ------------------------------------------------------------------ make, find

    def add(
        self,
        settings: Settings,
        engine: Engine,
        files: Sequence[tuple[Path, str]],
        choices: PlanChoices,
        user: str,
    ) -> PlanEntry:
        """Plan uploaded files (path, uploaded name), which move into the plan's folder
        (removed again when planning fails: bad input keeps nothing)."""
        if not files:
            raise InputError("no contact files: choose one or more files")
        plan_id = secrets.token_urlsafe(16)
        home = self.folder / plan_id
        try:
            paths = place_files(files, home)
            planned = _plan(settings, engine, paths, choices)
        except BaseException:
            shutil.rmtree(home, ignore_errors=True)
            raise
        entry = PlanEntry(
            plan_id,
            planned,
            home,
            tuple(paths),
            tuple(name for _, name in files),
            choices,
            user,
            time.time(),
        )
        with self._lock:
            self._entries[plan_id] = entry
            evicted = self._evict()
        _remove(evicted)
        return entry

    def get(self, plan_id: str, user: str) -> PlanEntry:
        """The plan `plan_id` of `user` (NotFoundError for any other)."""
        with self._lock:
            entry = self._entries.get(plan_id)
            if entry is None or entry.user != user:
                raise NotFoundError(_gone(plan_id))
            self._entries.move_to_end(plan_id)
            return entry

    def revise(
        self, settings: Settings, engine: Engine, plan_id: str, user: str, **changes: Any
    ) -> PlanEntry:
        """Plan the same files again with `changes` of PlanChoices (template, sheet,
        header_row, mobile_column, name): a new revision of the same plan_id. The files
        are read again only when how to read them changed (sheet, header row, mobile
        column); a new template or name plans the contacts the plan holds already. A plan
        that was sent already: PlanUsedError."""
        entry = self.get(plan_id, user)
        with entry.lock:
            if entry.campaign_id is not None:
                raise PlanUsedError(_used(entry.campaign_id))
            choices = replace(entry.choices, **changes)
            if _reading(choices) == _reading(entry.choices):
                entry.planned = _replan(settings, engine, entry.planned, choices)
            else:
                entry.planned = _plan(settings, engine, list(entry.files), choices)
            entry.choices = choices
            entry.revision += 1
        with self._lock:
            evicted = self._evict()
        _remove(evicted)
        return entry

    # ------------------------------------------------------------------ send

    def create_campaign(
        self,
        settings: Settings,
        engine: Engine,
        plan_id: str,
        user: str,
        *,
        name: str | None = None,
        due_at: datetime | None = None,
        again: bool = False,
        revision: int | None = None,
    ) -> CreatedCampaign:
        """Store the plan as a campaign handed to the workers, once: a plan that made one
        already gives that one (created False). With `revision`, a plan revised since is a
        PlanChangedError (the user confirmed something else). RepeatError, InputError as
        `workflow_web.schedule_plan`: nothing stored, the plan stays."""
        from campaign.workflow_web import schedule_plan

        made = self.made_campaign(plan_id, user)
        if made is not None:
            return CreatedCampaign(made, False)
        entry = self.get(plan_id, user)
        with entry.lock:
            if entry.campaign_id is not None:
                return CreatedCampaign(entry.campaign_id, False)
            if revision is not None and revision != entry.revision:
                raise PlanChangedError(
                    f"the plan changed since you saw it (now revision {entry.revision}, "
                    f"you confirmed {revision}): look at the preview again"
                )
            result = schedule_plan(
                settings,
                engine,
                entry.planned,
                name=name if name is not None else entry.choices.name,
                paths=entry.files,
                again=again,
                due_at=due_at,
            )
            entry.campaign_id = result.campaign_id
        with self._lock:
            self._made[plan_id] = (user, result.campaign_id)
            while len(self._made) > self.remembered:
                self._made.popitem(last=False)
        return CreatedCampaign(result.campaign_id, True, result)

    def made_campaign(self, plan_id: str, user: str) -> int | None:
        """The campaign `user`'s plan `plan_id` was sent as, if it was."""
        with self._lock:
            made = self._made.get(plan_id)
            entry = self._entries.get(plan_id)
        if made is not None and made[0] == user:
            return made[1]
        if entry is not None and entry.user == user:
            return entry.campaign_id
        return None

    # ------------------------------------------------------------------ files

    def preview_file(self, plan_id: str, user: str) -> Path:
        """The per-row preview of `plan --out` (.xlsx) of the plan's current revision."""
        from campaign.workflow import write_preview

        entry = self.get(plan_id, user)
        with entry.lock:
            out = entry.folder / f"preview-{entry.revision}.xlsx"
            if not out.exists():
                write_preview(entry.planned, out)
            return out

    def close(self) -> None:
        """Forget every plan and remove their files (the console stops)."""
        with self._lock:
            gone = list(self._entries.values())
            self._entries.clear()
        _remove(gone)

    def _evict(self) -> list[PlanEntry]:
        """Under self._lock: the least recently used plans past the bounds (the newest
        always stays)."""
        evicted = []
        while len(self._entries) > 1 and (
            len(self._entries) > self.capacity
            or sum(e.rows for e in self._entries.values()) > self.max_rows
        ):
            evicted.append(self._entries.popitem(last=False)[1])
        return evicted

    def __len__(self) -> int:
        return len(self._entries)


def _plan(
    settings: Settings, engine: Engine, paths: Sequence[Path], choices: PlanChoices
) -> PlanResult:
    from campaign.workflow import plan_from_files

    return plan_from_files(
        settings,
        paths,
        choices.template,
        sheet=choices.sheet,
        header_row=choices.header_row,
        mobile_column=choices.mobile_column,
        engine_or_url=engine,
        allow_nothing_valid=True,  # the preview shows every row's reason
    )


def _reading(choices: PlanChoices) -> tuple[str | None, int | None, str | None]:
    """What decides how the files are read (the template and the name do not)."""
    return choices.sheet, choices.header_row, choices.mobile_column


def _replan(
    settings: Settings, engine: Engine, planned: PlanResult, choices: PlanChoices
) -> PlanResult:
    """`planned`'s contacts (read with the same choices) planned with `choices`."""
    from campaign.workflow import plan_contacts

    return plan_contacts(
        settings,
        planned.plan.contacts,
        choices.template,
        engine_or_url=engine,
        allow_nothing_valid=True,
    )


def _remove(entries: Sequence[PlanEntry]) -> None:
    for entry in entries:
        shutil.rmtree(entry.folder, ignore_errors=True)


def _remove_stale(folder: Path) -> None:
    """Plan folders left by a console that stopped without tidying up (a crash)."""
    limit = time.time() - STALE_SECONDS
    for child in folder.iterdir():
        try:
            if child.is_dir() and child.stat().st_mtime < limit:
                shutil.rmtree(child, ignore_errors=True)
        except OSError:
            continue


def _gone(plan_id: str) -> str:
    shown = plan_id if len(plan_id) <= 40 and plan_id.isascii() else "?"
    return f"no plan {shown!r}: it was never made, or it expired; upload the files again"


def _used(campaign_id: int) -> str:
    return (
        f"this plan was already sent as campaign {campaign_id}; start a new campaign to change it"
    )


__all__ = [
    "PROBLEMS_SHOWN",
    "CreatedCampaign",
    "PlanCache",
    "PlanChangedError",
    "PlanChoices",
    "PlanEntry",
    "PlanUsedError",
    "harmless_name",
    "place_files",
    "problem_rows",
]

"""The output edge: a campaign's result spreadsheet, `.xlsx` (xlsxwriter) or `.csv`.

`.xlsx`: sheet `results` (one row per input row, in input order: the original columns, then
the result columns of SPEC), continued on `results_2`, `results_3`, ... past
`max_rows_per_sheet` rows, then `summary` and the breakdown sheets (export_summary.py).
Streamed: rows come from `iter_results` a chunk at a time and go straight to the
worksheet's row file (constant_memory), so memory does not grow with the campaign.

`--lang zh` (`lang="zh"`) writes everything but the original columns in Chinese: sheet
names, headers, outcomes, reasons, carriers, labels (campaign/zh.py); `en` keeps SPEC's names.
Outcomes and carriers are translated per distinct value, after the tally has counted them.

`.csv`: the results only, UTF-8 with a BOM (Excel then reads Chinese right), written by
Arrow's CSV writer (text quoted, numbers not); cells that a spreadsheet would take for a
formula get a leading `'` (OWASP's advice against CSV injection).

The file appears under its name only when complete: it is written to a temporary file in
the same folder and renamed over the target; on any error the temporary file is removed.
"""

from __future__ import annotations

import codecs
import errno
import os
import secrets
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import Engine
from xlsxwriter.exceptions import XlsxWriterException
from xlsxwriter.workbook import Workbook
from xlsxwriter.worksheet import Worksheet

from campaign.errors import InputError, UsageError
from campaign.export_summary import (
    Formats,
    ResultTally,
    SummaryInputs,
    read_store_figures,
    sheet_name,
    write_summary_sheets,
)
from campaign.formula_cells import neutralise_formulas
from campaign.patterns import neutralise_formula
from campaign.result_rows import (
    DEFAULT_CHUNK_ROWS,
    LANGS,
    RESULT_COLUMNS,
    frame_from_table,
    iter_results,
)
from campaign.store.campaigns import CampaignRecord, get_campaign
from campaign.store.results import recipient_count
from campaign.xlsx_rows import fast_path_available, write_rows_cells, write_rows_xml
from campaign.xlsx_zip import FastDeflateWorkbook
from campaign.zh import CARRIERS_ZH, OUTCOMES_ZH, RESULT_COLUMNS_ZH

EXTENSIONS = (".xlsx", ".csv")
MAX_SHEET_ROWS = 1_048_575  # Excel's 1,048,576 rows, less the header row
RESULTS_SHEET = "results"
ZIP64_ROWS = 2_000_000  # beyond this many rows the workbook may pass 4 GB before compression
NUMERIC_RESULT_COLUMNS = ("source_row", "segments")
WIDTH_SAMPLE_ROWS = 2_000
#: result columns whose values are words of the tool, translated for `--lang zh`
_TRANSLATED_VALUES = {"outcome": OUTCOMES_ZH, "carrier": CARRIERS_ZH}


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    rows: int  # result rows written (= input rows of the campaign)
    outcomes: dict[str, int]  # outcome -> rows, every SPEC outcome present
    sheets: list[str] = field(default_factory=list)  # sheet names (.xlsx), in order
    format: str = "xlsx"

    def to_json(self) -> dict[str, object]:
        return {"path": str(self.path), "rows": self.rows, "outcomes": self.outcomes}


def export_campaign(
    engine: Engine,
    campaign_id: int,
    out: Path,
    *,
    lang: str = "en",
    max_rows_per_sheet: int = MAX_SHEET_ROWS,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    fast: bool = True,
    fast_deflate: bool = True,
) -> ExportSummary:
    """Write the result spreadsheet of a campaign to `out` (.xlsx or .csv), atomically.

    `fast=False` writes cells through xlsxwriter's public API instead of whole rows of XML
    (same file content; for comparison). `fast_deflate=False` deflates the `.xlsx` package
    with zlib (xlsxwriter's own zip step) instead of zlib-ng (xlsx_zip.py): same parts, a
    smaller and slower file; for comparison.
    """
    out = Path(out)
    kind = output_format(out)
    if lang not in LANGS:
        raise UsageError(f"unknown language {lang!r}; use en or zh")
    if not 1 <= max_rows_per_sheet <= MAX_SHEET_ROWS:
        raise UsageError(f"max_rows_per_sheet must be between 1 and {MAX_SHEET_ROWS}")
    campaign = get_campaign(engine, campaign_id)
    with atomic_output(out) as partial:
        if kind == "csv":
            tally = _write_csv(engine, campaign, partial, lang, chunk_rows)
            sheets: list[str] = []
        else:
            tally, sheets = _write_xlsx(
                engine, campaign, partial, lang, max_rows_per_sheet, chunk_rows, fast, fast_deflate
            )
    return ExportSummary(out, tally.rows, tally.outcome_counts(), sheets, kind)


def output_format(out: Path) -> str:
    suffix = out.suffix.lower()
    if suffix not in EXTENSIONS:
        raise InputError(f"{out}: unsupported extension; use .xlsx or .csv")
    return suffix[1:]


@contextmanager
def atomic_output(out: Path) -> Iterator[Path]:
    """A temporary path beside `out`, renamed onto `out` if the block succeeds, else removed."""
    folder = out.parent
    if out.is_dir():
        raise InputError(f"{out} is a folder; give a file name ending in .xlsx or .csv")
    if not folder.is_dir():
        raise InputError(f"cannot write {out}: the folder {folder} does not exist")
    try:
        partial = reserve_partial(out)
    except OSError as exc:
        raise InputError(f"cannot write to the folder {folder}: {exc.strerror}") from None
    try:
        yield partial
        os.replace(partial, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise InputError(f"cannot write {out}: {exc.strerror or exc}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def reserve_partial(out: Path) -> Path:
    """Create an empty, unique hidden file beside `out` (mode 0666 less the umask, like `out`)."""
    for _ in range(100):
        partial = out.with_name(f".{out.name}.{secrets.token_hex(4)}.part")
        try:
            handle = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(handle)
        return partial
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(out))


# ---------------------------------------------------------------------------------------------
# CSV.


def _write_csv(
    engine: Engine, campaign: CampaignRecord, path: Path, lang: str, chunk_rows: int
) -> ResultTally:
    """Arrow's CSV writer: strings quoted, numbers not, UTF-8 with a BOM for Excel."""
    tally = ResultTally(len(campaign.columns))
    numeric = _numeric_positions(campaign.columns)
    names = [neutralise_formula(name) for name in (*campaign.columns, *result_headers(lang))]
    schema = pa.schema(
        [pa.field(n, pa.int64() if i in numeric else pa.string()) for i, n in enumerate(names)]
    )
    with pa.OSFile(str(path), "wb") as sink:
        sink.write(codecs.BOM_UTF8)
        with pacsv.CSVWriter(sink, schema) as writer:
            wrote = False
            for chunk in iter_results(
                engine, campaign.id, chunk_rows=chunk_rows, lang=lang, arrow=True
            ):
                tally.add(chunk)
                chunk = localize_values(chunk, len(campaign.columns), lang)
                writer.write_table(_csv_table(chunk, schema, numeric))
                wrote = True
            if not wrote:  # no rows: the header alone
                writer.write_table(schema.empty_table())
    return tally


def result_headers(lang: str) -> list[str]:
    """The headers of the result columns: SPEC's names, or their Chinese for `zh`."""
    if lang == "zh":
        return [RESULT_COLUMNS_ZH[name] for name in RESULT_COLUMNS]
    return list(RESULT_COLUMNS)


def localize_values(chunk: pa.Table, n_columns: int, lang: str) -> pa.Table:
    """Outcomes and carriers of an Arrow result chunk in `lang`, per distinct value."""
    if lang == "en":
        return chunk
    for name, words in _TRANSLATED_VALUES.items():
        pos = n_columns + RESULT_COLUMNS.index(name)
        chunk = chunk.set_column(pos, chunk.field(pos), _translated(chunk.column(pos), words))
    return chunk


def _translated(values: pa.ChunkedArray, words: Mapping[str, str]) -> pa.ChunkedArray:
    encoded = pc.dictionary_encode(values).combine_chunks()
    known = encoded.dictionary.to_pylist()
    dictionary = pa.array([words.get(v, v) for v in known], pa.string())
    return pa.chunked_array([dictionary.take(encoded.indices)])


def _csv_table(chunk: pa.Table, schema: pa.Schema, numeric: set[int]) -> pa.Table:
    arrays = [
        column if pos in numeric else neutralise_formulas(pc.fill_null(column, ""))
        for pos, column in enumerate(chunk.columns)
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _numeric_positions(columns: list[str]) -> set[int]:
    return {len(columns) + RESULT_COLUMNS.index(c) for c in NUMERIC_RESULT_COLUMNS}


# ---------------------------------------------------------------------------------------------
# XLSX.


def _write_xlsx(
    engine: Engine,
    campaign: CampaignRecord,
    path: Path,
    lang: str,
    max_rows: int,
    chunk_rows: int,
    fast: bool,
    fast_deflate: bool,
) -> tuple[ResultTally, list[str]]:
    book = (FastDeflateWorkbook if fast_deflate else Workbook)(
        str(path),
        {
            "constant_memory": True,
            "strings_to_formulas": False,
            "strings_to_numbers": False,
            "strings_to_urls": False,
            "use_zip64": recipient_count(engine, campaign.id) > ZIP64_ROWS,
        },
    )
    # the summary's own store reads run in a thread while the rows are written
    figures_reader = ThreadPoolExecutor(1, thread_name_prefix="export-figures")
    try:
        figures = figures_reader.submit(read_store_figures, engine, campaign.id)
        formats = Formats(book)
        sheets = _ResultSheets(book, formats, campaign.columns, max_rows, fast, lang)
        tally = ResultTally(len(campaign.columns))
        for chunk in _chunks(engine, campaign, lang, chunk_rows, tally):
            sheets.write(chunk)
        names = sheets.finish()
        inputs = SummaryInputs(campaign, tally, _store_url(engine), lang, figures.result())
        names += write_summary_sheets(book, formats, inputs)
    except BaseException:
        with suppress(Exception):
            book.close()  # releases its temporary row files; the partial file is removed
        raise
    finally:
        figures_reader.shutdown(wait=True, cancel_futures=True)
    try:
        book.close()
    except (XlsxWriterException, OSError) as exc:
        raise InputError(f"cannot write {path.name}: {exc}") from None
    return tally, names


class _ResultSheets:
    """`results`, `results_2`, ...: a header row each, at most `max_rows` data rows each."""

    def __init__(
        self,
        book: Workbook,
        formats: Formats,
        columns: list[str],
        max_rows: int,
        fast: bool,
        lang: str,
    ) -> None:
        self._book, self._formats = book, formats
        self._columns = columns
        self._headers = [*columns, *result_headers(lang)]
        self._sheet_name = sheet_name(RESULTS_SHEET, lang)
        self._numeric = _numeric_positions(columns)
        self._max_rows, self._fast = max_rows, fast
        self._widths: list[int] | None = None
        self._sheet: Worksheet | None = None
        self._rows = 0  # data rows in the current sheet
        self._names: list[str] = []

    def write(self, chunk: pa.Table) -> None:
        if self._widths is None:
            sample = frame_from_table(chunk.slice(0, WIDTH_SAMPLE_ROWS), self._columns)
            self._widths = _column_widths(self._headers, sample)
        while chunk.num_rows:
            if self._sheet is None or self._rows == self._max_rows:
                self._next_sheet()
            assert self._sheet is not None
            part = chunk.slice(0, self._max_rows - self._rows)
            chunk = chunk.slice(part.num_rows)
            if self._fast and fast_path_available(self._sheet):
                write_rows_xml(self._sheet, part, self._rows + 1, self._numeric)
            else:
                frame = frame_from_table(part, self._columns)
                write_rows_cells(self._sheet, frame, self._rows + 1, self._numeric)
            self._rows += part.num_rows

    def finish(self) -> list[str]:
        if self._sheet is None:
            self._next_sheet()
        self._close_sheet()
        return list(self._names)

    def _next_sheet(self) -> None:
        self._close_sheet()
        first = self._sheet_name
        name = first if not self._names else f"{first}_{len(self._names) + 1}"
        sheet = self._book.add_worksheet(name)
        widths = self._widths or _column_widths(self._headers, None)
        for col, width in enumerate(widths):
            sheet.set_column(col, col, width)
        for col, title in enumerate(self._headers):
            sheet.write_string(0, col, title, self._formats.header)
        sheet.freeze_panes(1, 0)
        self._sheet, self._rows = sheet, 0
        self._names.append(name)

    def _close_sheet(self) -> None:
        if self._sheet is not None:
            self._sheet.autofilter(0, 0, max(self._rows, 1), len(self._headers) - 1)


def _column_widths(headers: list[str], sample: pd.DataFrame | None) -> list[int]:
    """Widths from the header and a sample of values (CJK characters count double)."""
    widths = []
    for pos, title in enumerate(headers):
        width = _display_width(pd.Series([title])).iloc[0] + 2
        if sample is not None and len(sample):
            values = sample.iloc[:, pos].astype(object).where(sample.iloc[:, pos].notna(), "")
            width = max(width, int(_display_width(values.astype(str)).quantile(0.9)) + 2)
        widths.append(min(max(width, 8), 60))
    return widths


def _display_width(text: pd.Series) -> pd.Series:
    return text.str.len() + text.str.count(r"[^\x00-\x7f]")


def _chunks(
    engine: Engine, campaign: CampaignRecord, lang: str, chunk_rows: int, tally: ResultTally
) -> Iterator[pa.Table]:
    """The result chunks, counted by `tally` before their values are translated."""
    for table in iter_results(engine, campaign.id, chunk_rows=chunk_rows, lang=lang, arrow=True):
        tally.add(table)
        yield localize_values(table, len(campaign.columns), lang)


def _store_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)

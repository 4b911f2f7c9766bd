"""Bounds on hostile input, checked before a reader allocates for it (SPEC "Hostile input").

A workbook is a zip of XML parts; a reader believes what they say. Before python-calamine
sees one, `check_zip_workbook` streams every part through zlib itself (in bounded chunks,
never trusting the sizes the zip headers claim) and refuses: a part that inflates past
`[limits] max_part_bytes` or past the size its header claims; a sheet whose declared
`<dimension>` or whose cell and row references reach beyond `max_rows` / `max_columns` /
`max_cells` (or Excel's own sheet size); a run of text longer than any cell may be. Only
C-level byte searches run over the data of an ordinary sheet; rows are looked at one by one
only when a sheet's cells carry no `r` reference (then a row's width is its count of cells).

`check_csv_lines` refuses a CSV line longer than `max_line_bytes` (a few `bytes.find` per
megabyte), `count_fields` bounds the columns of its first line.

Control characters: a NUL or other control character (Unicode category Cc: U+0000-U+001F,
U+007F-U+009F) other than tab, line feed and carriage return never goes out in an SMS.
`CONTROL_CHARS_RE2` finds them in Arrow columns, `first_control_char` in one text.
"""

from __future__ import annotations

import csv
import io
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from campaign.config import LimitSettings
from campaign.errors import ContactsError

EXCEL_MAX_ROWS = 1_048_576  # the largest sheet Excel (and so an xlsx file) can hold
EXCEL_MAX_COLUMNS = 16_384  # column XFD
MAX_ZIP_PARTS = 10_000  # a workbook has tens of parts, a few hundred with many images
XML_BYTES_PER_CHAR = 10  # the longest escape of one character: "&#x10FFFF;"
NAMES_PART_CAP = 16 * 1024 * 1024  # workbook.xml and its rels are read whole up to this
_IN_CHUNK = 1 << 20  # compressed bytes fed to zlib at a time
_OUT_CHUNK = 8 << 20  # decompressed bytes taken from zlib at a time
_CARRY_CAP = 1 << 20

_CONTROL = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
CONTROL_CHARS_RE2 = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x{9f}]"  # for pyarrow.compute
_CONTROL_RE = re.compile(f"[{_CONTROL}]")
_CHAR_NAMES = {0x00: "NUL", 0x07: "BEL", 0x08: "BS", 0x1B: "ESC", 0x7F: "DEL"}

_DIMENSION = re.compile(rb'<(?:\w+:)?dimension\s+ref="([^"]{1,64})"')
_CELL_REF = re.compile(r"^\$?([A-Za-z]{1,7})\$?(\d{1,10})$")
_SHEET_ENTRY = re.compile(rb"<(?:\w+:)?sheet\b([^>]*)>")
_ATTRIBUTE = re.compile(rb'([\w:]+)\s*=\s*"([^"]*)"')
_RELATIONSHIP = re.compile(rb"<(?:\w+:)?Relationship\b([^>]*)>")
_PREFIXED_ROW = re.compile(rb"<(\w+):row[\s/>]")


def may_hold_control_chars(values: pa.Array | pa.ChunkedArray) -> bool:
    """False when no cell of a UTF-8 string column can hold a control character: a look at
    the raw bytes (no byte < 0x20 but tab and line breaks, no DEL, no C2 80-9F), much
    faster than a regex; True means "look with CONTROL_CHARS_RE2"."""
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    for chunk in chunks:
        data = chunk.buffers()[2] if chunk.type in (pa.string(), pa.large_string()) else None
        if data is None:
            if len(chunk) and chunk.type not in (pa.string(), pa.large_string()):
                return True
            continue
        raw = np.frombuffer(data, dtype=np.uint8)
        low = raw[raw < 0x20]
        if ((low != 0x09) & (low != 0x0A) & (low != 0x0D)).any() or (raw == 0x7F).any():
            return True
        after_c2 = np.flatnonzero(raw[:-1] == 0xC2) + 1  # U+0080-U+009F: C2 80 .. C2 9F
        if (raw[after_c2] < 0xA0).any():
            return True
    return False


def control_char_name(char: str) -> str:
    """ "NUL", "ESC", ... or "U+0001": how a reason names a control character."""
    return _CHAR_NAMES.get(ord(char), f"U+{ord(char):04X}")


def first_control_char(text: str) -> str | None:
    match = _CONTROL_RE.search(text)
    return match.group() if match else None


def column_letters(number: int) -> str:
    """1 -> "A", 16384 -> "XFD"."""
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def column_number(letters: str) -> int:
    number = 0
    for char in letters.upper():
        number = number * 26 + ord(char) - ord("A") + 1
    return number


def _limit(value: int, key: str) -> str:
    return f"the limit is {value:,}: [limits] {key}"


# --- CSV --------------------------------------------------------------------------------------


def check_csv_lines(body: bytes, shown: str, limits: LimitSettings) -> None:
    """ContactsError for a line (ended by LF or CR) longer than max_line_bytes.

    Every line that long contains a whole window of half that size with no line break, so
    one `find` per half-window suffices; a window without a line break is measured exactly.
    """
    limit = limits.max_line_bytes
    if len(body) <= limit:
        return
    window = max(1, limit // 2)
    start = 0
    while start + window <= len(body):
        end = start + window
        if body.find(b"\n", start, end) != -1 or body.find(b"\r", start, end) != -1:
            start = end
            continue
        line_start = max(body.rfind(b"\n", 0, start), body.rfind(b"\r", 0, start)) + 1
        line_end = next_line_break(body, end)
        if line_end - line_start > limit:
            line = body.count(b"\n", 0, line_start) + 1
            raise ContactsError(
                f"{shown}: line {line:,} is {line_end - line_start:,} bytes long "
                f"({_limit(limit, 'max_line_bytes')})"
            )
        start = line_end
    return


def next_line_break(body: bytes, start: int) -> int:
    found = [i for i in (body.find(b"\n", start), body.find(b"\r", start)) if i != -1]
    return min(found) if found else len(body)


def count_fields(line: str, delimiter: str) -> int:
    """Fields of one CSV line (quotes respected)."""
    return max((len(row) for row in csv.reader(io.StringIO(line), delimiter=delimiter)), default=0)


def check_columns(count: int, where: str, limits: LimitSettings) -> None:
    if count > limits.max_columns:
        raise ContactsError(
            f"{where} has {count:,} columns ({_limit(limits.max_columns, 'max_columns')})"
        )


def check_grid_size(rows: int, columns: int, where: str, limits: LimitSettings) -> None:
    """Rows, columns and their product (the cells a reader fills) within the limits."""
    if rows > limits.max_rows:
        raise ContactsError(f"{where} has {rows:,} rows ({_limit(limits.max_rows, 'max_rows')})")
    check_columns(columns, where, limits)
    if rows * columns > limits.max_cells:
        raise ContactsError(
            f"{where} spans {rows:,} rows x {columns:,} columns = {rows * columns:,} cells "
            f"({_limit(limits.max_cells, 'max_cells')})"
        )


# --- workbooks --------------------------------------------------------------------------------


def check_zip_workbook(data: bytes, shown: str, limits: LimitSettings) -> None:
    """ContactsError naming the file, the sheet (or part) and the limit, for a workbook
    (a zip: xlsx, xlsm, xlsb, ods) that would take unbounded memory to read."""
    if data.count(b"PK\x01\x02") > MAX_ZIP_PARTS:
        raise ContactsError(f"{shown}: the workbook has more than {MAX_ZIP_PARTS:,} parts")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, struct.error, OSError):
        return  # not a readable zip: the workbook reader reports the damage
    by_name = {info.filename: info for info in infos}
    for info in infos:
        _check_declared(info, shown, limits)
    sheets = _sheet_parts(data, by_name, limits)
    for info in infos:
        if info.is_dir():
            continue
        sheet = sheets.get(info.filename)
        where = f"{shown}: sheet '{sheet}'" if sheet else f"{shown}: part {info.filename}"
        scanner: _PartScanner | None = None
        if sheet is not None or "worksheets/" in info.filename:
            scanner = _SheetScanner(where, limits)
        elif info.filename.endswith(("sharedStrings.xml", "content.xml")):
            scanner = _PartScanner(where, limits)
        _inflate(data, info, where, limits, scanner.feed if scanner else None)
        if scanner is not None:
            scanner.finish()


def _check_declared(info: zipfile.ZipInfo, shown: str, limits: LimitSettings) -> None:
    if info.file_size > limits.max_part_bytes:
        raise ContactsError(
            f"{shown}: part {info.filename} would inflate to {info.file_size:,} bytes "
            f"({_limit(limits.max_part_bytes, 'max_part_bytes')})"
        )
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ContactsError(
            f"{shown}: part {info.filename} uses zip compression method {info.compress_type}, "
            "which spreadsheet programs do not write"
        )


def _inflate(
    data: bytes,
    info: zipfile.ZipInfo,
    where: str,
    limits: LimitSettings,
    feed: Callable[[bytes], None] | None,
) -> int:
    """Decompress one part a chunk at a time (whatever its header claims), handing each
    chunk to `feed`; ContactsError once it passes max_part_bytes or its declared size."""
    raw = _compressed(data, info, where)
    total = 0
    for chunk in _chunks(raw, info.compress_type):
        total += len(chunk)
        if total > limits.max_part_bytes:
            raise ContactsError(
                f"{where} inflates past {limits.max_part_bytes:,} bytes "
                f"({_limit(limits.max_part_bytes, 'max_part_bytes')}; a zip bomb?)"
            )
        if total > info.file_size:
            raise ContactsError(
                f"{where} holds more than the {info.file_size:,} bytes its zip header claims "
                "(a damaged or forged workbook)"
            )
        if feed is not None:
            feed(chunk)
    return total


def _compressed(data: bytes, info: zipfile.ZipInfo, where: str) -> memoryview:
    start = info.header_offset
    if data[start : start + 4] != b"PK\x03\x04":
        raise ContactsError(f"{where}: the workbook is damaged (no local header)")
    name_len, extra_len = struct.unpack_from("<HH", data, start + 26)
    begin = start + 30 + name_len + extra_len
    return memoryview(data)[begin : begin + info.compress_size]


def _chunks(raw: memoryview, method: int) -> Iterator[bytes]:
    if method == zipfile.ZIP_STORED:
        for start in range(0, len(raw), _OUT_CHUNK):
            yield bytes(raw[start : start + _OUT_CHUNK])
        return
    inflater = zlib.decompressobj(-15)
    position = 0
    try:
        while not inflater.eof:
            if inflater.unconsumed_tail:
                out = inflater.decompress(inflater.unconsumed_tail, _OUT_CHUNK)
            elif position < len(raw):
                out = inflater.decompress(raw[position : position + _IN_CHUNK], _OUT_CHUNK)
                position += _IN_CHUNK
            else:
                out = inflater.flush()
                if out:
                    yield out
                return
            if out:
                yield out
    except zlib.error:
        return  # damaged: the workbook reader says so


def _read_small(data: bytes, info: zipfile.ZipInfo | None, limits: LimitSettings) -> bytes:
    """A small part (workbook.xml, its rels) whole; b"" when missing or large."""
    if info is None or info.file_size > NAMES_PART_CAP:
        return b""
    parts: list[bytes] = []
    capped = LimitSettings(max_part_bytes=NAMES_PART_CAP)
    try:
        _inflate(data, info, info.filename, capped, parts.append)
    except ContactsError:
        return b""
    del limits
    return b"".join(parts)


def _sheet_parts(
    data: bytes, by_name: dict[str, zipfile.ZipInfo], limits: LimitSettings
) -> dict[str, str]:
    """Part name -> sheet name, from xl/workbook.xml and its rels (best effort)."""
    book = _read_small(data, by_name.get("xl/workbook.xml"), limits)
    rels = _read_small(data, by_name.get("xl/_rels/workbook.xml.rels"), limits)
    targets: dict[bytes, str] = {}
    for match in _RELATIONSHIP.finditer(rels):
        attributes = dict(_ATTRIBUTE.findall(match.group(1)))
        target = attributes.get(b"Target", b"").decode("utf-8", "replace")
        part = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
        targets[attributes.get(b"Id", b"")] = re.sub(r"[^/]+/\.\./", "", part)
    found: dict[str, str] = {}
    for match in _SHEET_ENTRY.finditer(book):
        attributes = {k.split(b":")[-1]: v for k, v in _ATTRIBUTE.findall(match.group(1))}
        part = targets.get(attributes.get(b"id", b""))
        if part:
            found[part] = _unescape(attributes.get(b"name", b"").decode("utf-8", "replace"))
    return found


def _unescape(text: str) -> str:
    for escaped, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'")):
        text = text.replace(escaped, char)
    return text.replace("&amp;", "&")


@dataclass
class _PartScanner:
    """Runs of text between markup: none may be longer than the longest cell could be."""

    where: str
    limits: LimitSettings
    run: int = 0  # bytes since the last "<"

    @property
    def max_run(self) -> int:
        return self.limits.max_cell_chars * XML_BYTES_PER_CHAR

    def feed(self, chunk: bytes) -> None:
        last = chunk.rfind(b"<")
        if last == -1:
            self._check_run(self.run + len(chunk))
            self.run += len(chunk)
            return
        self._check_run(self.run + chunk.find(b"<"))
        self._check_windows(chunk, last)
        self.run = len(chunk) - last - 1

    def finish(self) -> None:
        return

    def _check_windows(self, chunk: bytes, last: int) -> None:
        """A run longer than max_run holds a whole window of half its size without "<"."""
        window = max(1, self.max_run // 2)
        start = chunk.find(b"<")
        while start + window <= last:
            end = start + window
            if chunk.find(b"<", start, end) != -1:
                start = end
                continue
            begin = chunk.rfind(b"<", 0, start)
            stop = chunk.find(b"<", end)
            self._check_run(stop - begin - 1)
            start = stop

    def _check_run(self, run: int) -> None:
        if run > self.max_run:
            raise ContactsError(
                f"{self.where} holds a cell (or a run of text) of at least {run:,} bytes, longer "
                f"than {self.limits.max_cell_chars:,} characters can be "
                f"({_limit(self.limits.max_cell_chars, 'max_cell_chars')})"
            )


@dataclass
class _SheetScanner(_PartScanner):
    """Also: the declared dimension, the largest row and column referenced, the rows, and,
    for cells without a reference, the most cells in one row."""

    max_row: int = 0
    max_column: int = 0
    rows: int = 0
    widest: int = 0  # most cells in one row that holds cells without a reference
    in_header: bool = True
    prefix: bytes = b""  # the namespace prefix of row and cell tags ("x:"), if any
    carry: bytes = b""
    _refs: re.Pattern[bytes] = field(init=False)

    def __post_init__(self) -> None:
        letters = len(column_letters(min(self.max_columns, EXCEL_MAX_COLUMNS) + 1))
        digits = len(str(min(self.max_rows, EXCEL_MAX_ROWS) + 1))
        # only the references that may pass a limit: a C-level search finds none in most sheets
        self._refs = re.compile(rb'r="(?:([A-Z]{%d,})(\d*)|([A-Z]*)(\d{%d,}))"' % (letters, digits))

    @property
    def max_rows(self) -> int:
        return self.limits.max_rows

    @property
    def max_columns(self) -> int:
        return self.limits.max_columns

    def feed(self, chunk: bytes) -> None:
        super().feed(chunk)
        cut = chunk.rfind(b">") + 1
        text = self.carry + chunk[:cut] if self.carry else chunk[:cut]
        rest = chunk[cut:]
        self.carry = (self.carry + rest if cut == 0 else rest)[-_CARRY_CAP:]
        if self.in_header:
            self._dimension(text[:65536])  # it comes first, right after <worksheet>
        self._references(text)
        self._count_rows(text)
        self._check()

    def _dimension(self, text: bytes) -> None:
        match = _DIMENSION.search(text)
        if match:
            self.in_header = False
            ends = match.group(1).decode("ascii", "replace").split(":")
            parsed = [_CELL_REF.match(end) for end in ends]
            if all(parsed):
                rows = max(int(m.group(2)) for m in parsed if m)
                columns = max(column_number(m.group(1)) for m in parsed if m)
                self._check_size(rows, columns, "is declared (<dimension>) to reach")
        self.in_header = False

    def _references(self, text: bytes) -> None:
        for match in self._refs.finditer(text):
            letters, digits = match.group(1) or match.group(3), match.group(2) or match.group(4)
            if letters:
                self.max_column = max(self.max_column, column_number(letters.decode()))
            if digits:
                self.max_row = max(self.max_row, int(digits[:12]))

    def _count_rows(self, text: bytes) -> None:
        """Row tags (an upper bound of the rows); then, when some cell tag does not start
        with its reference, the widest row by its count of cell tags."""
        if not self.prefix and b":row" in text:  # <x:row> (.NET writers)
            found = _PREFIXED_ROW.search(text)
            self.prefix = found.group(1) + b":" if found else b""
        row_tag = b"<" + self.prefix + b"row"
        self.rows += text.count(row_tag)
        self._check()
        self._long_rows(text, row_tag, b"<" + self.prefix + b"c")

    def _long_rows(self, text: bytes, row_tag: bytes, cell_tag: bytes) -> None:
        """Cells without a reference take the next column: such a row is as wide as its
        count of cells, each at least 4 bytes ("<c/>"). A row of more cells than the limit
        holds a whole window of 2 bytes per allowed column without a row tag: only rows
        that long are looked at, and counted exactly."""
        window = 2 * min(self.max_columns, EXCEL_MAX_COLUMNS)
        start = 0
        while start + window <= len(text):
            end = start + window
            if text.find(row_tag, start, end) != -1:
                start = end
                continue
            begin = max(text.rfind(row_tag, 0, start), 0)
            stop = text.find(row_tag, end)
            row = text[begin : stop if stop != -1 else len(text)]
            cells = row.count(cell_tag) - row.count(cell_tag + b"ol")  # not <col>
            if cells != row.count(cell_tag + b' r="'):
                self.widest = max(self.widest, cells)
            if stop == -1:
                break
            start = stop

    def _check(self) -> None:
        rows = max(self.max_row, self.rows)
        columns = self.max_column + self.widest
        self._check_size(rows, columns, "reaches")

    def _check_size(self, rows: int, columns: int, verb: str) -> None:
        limits = self.limits
        if columns > min(limits.max_columns, EXCEL_MAX_COLUMNS):
            key = f"{_limit(limits.max_columns, 'max_columns')}"
            raise ContactsError(
                f"{self.where} {verb} column {column_letters(min(columns, 10**6))} "
                f"({columns:,} columns; {key})"
            )
        if rows > min(limits.max_rows, EXCEL_MAX_ROWS):
            raise ContactsError(
                f"{self.where} {verb} row {rows:,} ({_limit(limits.max_rows, 'max_rows')}; "
                f"a sheet holds at most {EXCEL_MAX_ROWS:,})"
            )
        if rows * columns > limits.max_cells:
            raise ContactsError(
                f"{self.where} {verb} {rows:,} rows x {columns:,} columns = "
                f"{rows * columns:,} cells ({_limit(limits.max_cells, 'max_cells')})"
            )

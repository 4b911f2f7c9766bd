"""Hostile input files, written by hand: small on disk, enormous once a reader believes them.

Workbooks are assembled with `zipfile` from a few XML parts, so a test can declare any
dimension, put a cell anywhere, make a part lie about its size, or inflate a stream of
zeros to gigabytes. Each writer returns the path it wrote.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from campaign.contacts import column_letter

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.'
    'openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>'
)
ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>'
)
WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
)
SHEET_OPEN = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
)
SHEET_PART = "xl/worksheets/sheet1.xml"


def inline(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


def sheet_xml(rows: str, dimension: str | None = None) -> str:
    dim = f'<dimension ref="{dimension}"/>' if dimension else ""
    return f"{SHEET_OPEN}{dim}<sheetData>{rows}</sheetData></worksheet>"


HEADER_ROW = '<row r="1">' + inline("A1", "name") + inline("B1", "mobile") + "</row>"
DATA_ROW = '<row r="2">' + inline("A2", "Li") + inline("B2", "13900210021") + "</row>"


def write_workbook(path: Path, sheet: str | bytes | Iterable[bytes]) -> Path:
    """A minimal xlsx whose only sheet is `sheet` (text, bytes, or chunks streamed in)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr("[Content_Types].xml", CONTENT_TYPES)
        book.writestr("_rels/.rels", ROOT_RELS)
        book.writestr("xl/workbook.xml", WORKBOOK)
        book.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)
        if isinstance(sheet, str | bytes):
            book.writestr(SHEET_PART, sheet)
        else:
            with book.open(SHEET_PART, "w") as part:
                for chunk in sheet:
                    part.write(chunk)
    return path


def far_cell(path: Path, ref: str = "XFD1048576", dimension: str | None = None) -> Path:
    """A header, one data row, and one cell at `ref` (Excel's last cell by default)."""
    rows = HEADER_ROW + DATA_ROW + f'<row r="{_row_of(ref)}">{inline(ref, "x")}</row>'
    return write_workbook(path, sheet_xml(rows, dimension))


def declared_dimension(path: Path, dimension: str = "A1:XFD1048576") -> Path:
    """Two rows of data under a dimension that claims the whole sheet."""
    return write_workbook(path, sheet_xml(HEADER_ROW + DATA_ROW, dimension))


def wide_rows(path: Path, columns: int, rows: int = 3, with_refs: bool = True) -> Path:
    """`rows` rows of `columns` short cells each (no mobile header); `with_refs=False`
    leaves out the cells' r attributes, as some writers do."""

    def row(r: int) -> str:
        cells = "".join(
            f'<c r="{column_letter(c)}{r}"><v>{c}</v></c>' if with_refs else f"<c><v>{c}</v></c>"
            for c in range(columns)
        )
        return f'<row r="{r}">{cells}</row>'

    return write_workbook(path, sheet_xml("".join(row(r) for r in range(1, rows + 1))))


def many_rows(path: Path, rows: int) -> Path:
    """`rows` rows of one tiny cell each, without r attributes (the rows and cells simply
    follow each other), streamed into the part: a few MB once compressed."""

    def chunks() -> Iterator[bytes]:
        yield (SHEET_OPEN + "<sheetData>" + HEADER_ROW).encode()
        step = 100_000
        for start in range(2, rows + 2, step):
            stop = min(start + step, rows + 2)
            yield b"<row><c><v>1</v></c></row>" * (stop - start)
        yield b"</sheetData></worksheet>"

    return write_workbook(path, chunks())


def huge_cell(path: Path, chars: int) -> Path:
    """A header, then one cell of `chars` 'a's (streamed; a few MB compressed)."""

    def chunks() -> Iterator[bytes]:
        yield (SHEET_OPEN + "<sheetData>" + HEADER_ROW + '<row r="2">').encode()
        yield b'<c r="A2" t="inlineStr"><is><t>'
        block = b"a" * (1 << 20)
        for _ in range(chars >> 20):
            yield block
        yield b"a" * (chars & ((1 << 20) - 1))
        yield b"</t></is></c></row></sheetData></worksheet>"

    return write_workbook(path, chunks())


def zip_bomb(path: Path, inflated: int, declared: int | None = None) -> Path:
    """A sheet part of `inflated` bytes (valid XML padded with spaces). With `declared`, the
    zip headers claim that many bytes instead (the central directory and the local header
    are patched, CRC left as it is): a reader that trusts them is fooled."""
    padding = inflated - len(SHEET_OPEN) - 200

    def chunks() -> Iterator[bytes]:
        yield (SHEET_OPEN + "<sheetData>" + HEADER_ROW + DATA_ROW).encode()
        block = b" " * (1 << 22)
        left = padding
        while left > 0:
            yield block[: min(left, len(block))]
            left -= len(block)
        yield b"</sheetData></worksheet>"

    write_workbook(path, chunks())
    if declared is not None:
        _patch_declared_size(path, SHEET_PART, declared)
    return path


def _patch_declared_size(path: Path, name: str, size: int) -> None:
    """Rewrite the uncompressed size of `name` in its local header and its central directory
    entry (CRC left as it is), so that the archive lies about it."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as book:
        local = book.getinfo(name).header_offset
    struct.pack_into("<I", data, local + 22, size)  # local header: uncompressed size
    entry = data.find(b"PK\x01\x02")
    while entry != -1:
        name_len = struct.unpack_from("<H", data, entry + 28)[0]
        if bytes(data[entry + 46 : entry + 46 + name_len]) == name.encode():
            struct.pack_into("<I", data, entry + 24, size)  # central directory entry
        entry = data.find(b"PK\x01\x02", entry + 4)
    path.write_bytes(bytes(data))


def csv_long_line(path: Path, size: int) -> Path:
    """A header and one line of `size` commas."""
    with path.open("wb") as out:
        out.write(b"name,mobile\n")
        out.write(b"," * size)
        out.write(b"\n")
    return path


def csv_wide(path: Path, columns: int, rows: int = 3) -> Path:
    """`columns` columns with headers that name no mobile column, `rows` rows of numbers."""
    header = ",".join(f"c{i}" for i in range(columns))
    body = "\n".join(",".join(str(i * r % 97) for i in range(columns)) for r in range(rows))
    path.write_text(header + "\n" + body + "\n", encoding="utf-8")
    return path


def _row_of(ref: str) -> int:
    return int("".join(c for c in ref if c.isdigit()))


def deflated_size(data: bytes) -> int:
    return len(zlib.compress(data, 9))

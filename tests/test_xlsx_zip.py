"""The `.xlsx` export deflated by zlib-ng (xlsx_zip.py): the same parts as with zlib, byte for
byte, read back by openpyxl (and LibreOffice when `soffice` is installed)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import zipfile
import zlib
from datetime import UTC, datetime
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import xlsxwriter
from xlsxwriter.worksheet import Worksheet
from zlib_ng import zlib_ng

import campaign.export_summary as export_summary
import campaign.xlsx_rows as xlsx_rows
import campaign.xlsx_zip as xlsx_zip
from campaign.export import export_campaign
from campaign.store import open_store
from campaign.xlsx_deflate import RowDeflater
from campaign.xlsx_rows import write_rows_xml
from tests.support.plans import contact_file, every_outcome_campaign, planned_campaign

# docProps/core.xml holds xlsxwriter's time of writing (to the second): compared without it
TIMESTAMPED = "docProps/core.xml"
EXPORTED_AT = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)


@pytest.fixture
def engine(sqlite_url, monkeypatch):
    monkeypatch.setattr(export_summary, "utcnow", lambda: EXPORTED_AT)  # the summary's time
    engine = open_store(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture
def deflates(monkeypatch) -> list[int]:
    """The level of each zlib-ng compressor made (a spy around zlib_ng.compressobj)."""
    made: list[int] = []
    real = zlib_ng.compressobj

    def spy(level: int, *args: int) -> object:
        made.append(level)
        return real(level, *args)

    monkeypatch.setattr(xlsx_zip.zlib_ng, "compressobj", spy)
    return made


def _parts(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _raw_entry(path: Path, name: str) -> bytes:
    """The stored (compressed) bytes of one entry."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
        assert info.compress_type == zipfile.ZIP_DEFLATED
    with path.open("rb") as handle:
        handle.seek(info.header_offset)
        header = handle.read(30)
        skip = int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little")
        handle.seek(info.header_offset + 30 + skip)
        return handle.read(info.compress_size)


def _campaign(engine, tmp_path: Path) -> int:
    rows = [[f"客户{i} & <b>", f"138{i:08d}", "=1+1" if i % 3 else ""] for i in range(3000)]
    path = contact_file(tmp_path / "list.csv", ["name", "phone", "note"], rows)
    return planned_campaign(engine, [path], "{name}您好")


def test_parts_are_those_of_the_zlib_export_byte_for_byte(engine, tmp_path, deflates, monkeypatch):
    cid = _campaign(engine, tmp_path)
    fast, slow = tmp_path / "fast.xlsx", tmp_path / "zlib.xlsx"
    copied: list[int] = []  # the fast export's sheets take their rows as bytes
    copy = shutil.copyfileobj
    monkeypatch.setattr(
        xlsx_zip.shutil, "copyfileobj", lambda a, b, n: (copied.append(n), copy(a, b, n))
    )
    export_campaign(engine, cid, slow, fast_deflate=False)
    assert deflates == [] and 1 << 20 not in copied  # the zlib export: xlsxwriter's own ways
    export_campaign(engine, cid, fast, fast_deflate=True)
    assert copied.count(1 << 20) >= 1  # one per sheet with rows (zipfile copies 8 KB)
    fast_parts, slow_parts = _parts(fast), _parts(slow)
    assert list(fast_parts) == list(slow_parts)
    # every part, zlib-ng's; the sheet's rows (deflated in a thread) and tail have their own
    assert deflates == [xlsx_zip.DEFLATE_LEVEL] * (len(fast_parts) + 2)
    for name in fast_parts:
        if name != TIMESTAMPED:
            assert fast_parts[name] == slow_parts[name], name
    # the sheet is deflated differently: zlib-ng's stream, not zlib's at level 6
    sheet = "xl/worksheets/sheet1.xml"
    fast_raw, slow_raw = _raw_entry(fast, sheet), _raw_entry(slow, sheet)
    assert fast_raw != slow_raw
    assert zlib.decompress(fast_raw, -15) == fast_parts[sheet]  # plain zlib inflates it
    one_shot = zlib.compressobj(6, zlib.DEFLATED, -15)
    assert slow_raw == one_shot.compress(slow_parts[sheet]) + one_shot.flush()
    book = openpyxl.load_workbook(fast, read_only=True)
    try:
        rows = list(book["results"].iter_rows(values_only=True))
    finally:
        book.close()
    assert len(rows) == 3001 and rows[1][0] == "客户0 & <b>"


def test_every_sheet_of_a_full_export_reads_back_the_same(engine, tmp_path):
    cid = every_outcome_campaign(engine)
    fast, slow = tmp_path / "fast.xlsx", tmp_path / "zlib.xlsx"
    export_campaign(engine, cid, slow, fast_deflate=False, max_rows_per_sheet=4)
    export_campaign(engine, cid, fast, max_rows_per_sheet=4)
    fast_parts, slow_parts = _parts(fast), _parts(slow)
    assert list(fast_parts) == list(slow_parts)
    assert all(fast_parts[n] == slow_parts[n] for n in fast_parts if n != TIMESTAMPED)
    for path in (fast, slow):
        book = openpyxl.load_workbook(path)
        try:
            assert book.sheetnames[:3] == ["results", "results_2", "results_3"]
        finally:
            book.close()


def test_other_workbooks_keep_zlib(engine, tmp_path, deflates):
    """pandas' to_excel, in this thread or beside a fast export in another, is zlib's."""
    cid = _campaign(engine, tmp_path)
    plain = tmp_path / "plain.xlsx"
    worker = threading.Thread(target=export_campaign, args=(engine, cid, tmp_path / "f.xlsx"))
    worker.start()
    pd.DataFrame({"a": [f"v{i}" for i in range(5000)]}).to_excel(plain, index=False)
    worker.join()
    assert (tmp_path / "f.xlsx").exists()
    raw = _raw_entry(plain, "xl/worksheets/sheet1.xml")
    content = _parts(plain)["xl/worksheets/sheet1.xml"]
    one_shot = zlib.compressobj(6, zlib.DEFLATED, -15)
    assert raw == one_shot.compress(content) + one_shot.flush()


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (soffice) not installed")
def test_libreoffice_opens_the_export(engine, tmp_path):
    cid = every_outcome_campaign(engine)
    out = tmp_path / "r.xlsx"
    export_campaign(engine, cid, out)
    command = ["soffice", "--headless", "--convert-to", "csv", "--outdir", str(tmp_path), str(out)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    assert (tmp_path / "r.csv").read_text(encoding="utf-8", errors="replace").count("\n") >= 10


# ---------------------------------------------------------------------------------------------
# The result rows deflated in a thread while the export runs (xlsx_deflate.py), then spliced.


def _deflater_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "xlsx-deflate"]


def test_row_deflater_stream_splices_between_two_others(tmp_path):
    rows = b"".join(f'<row r="{i}"><c><v>{i}</v></c></row>'.encode() for i in range(50_000))
    deflater = RowDeflater(4, str(tmp_path))
    try:
        for start in range(0, len(rows), 70_001):  # bytes and memoryviews, as the export gives
            piece = rows[start : start + 70_001]
            deflater.write(memoryview(piece) if start % 2 else piece)
        deflater.write(b"")
        deflater.finish()
        assert (deflater.size, deflater.crc) == (len(rows), zlib.crc32(rows))
        head, tail = (
            zlib.compressobj(6, zlib.DEFLATED, -15),
            zlib.compressobj(6, zlib.DEFLATED, -15),
        )
        spliced = head.compress(b"<head>") + head.flush(zlib.Z_SYNC_FLUSH)
        out = tmp_path / "rows.deflate"
        with out.open("wb") as handle:
            deflater.copy_to(handle)
        stream = out.read_bytes()
        assert len(stream) == deflater.compressed < len(rows) // 5
        spliced += stream + tail.compress(b"<tail>") + tail.flush()
        assert zlib.decompress(spliced, -15) == b"<head>" + rows + b"<tail>"
    finally:
        deflater.close()
    assert _deflater_threads() == []


def test_row_deflater_raises_a_failure_of_its_thread(tmp_path):
    class NotBytes:
        def __len__(self) -> int:
            return 3

    deflater = RowDeflater(4, str(tmp_path))
    try:
        deflater.write(NotBytes())  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            for _ in range(20):  # more than the queue holds: a write raises, none blocks
                deflater.write(b"<row/>")
            deflater.finish()
        with pytest.raises(TypeError):
            deflater.finish()
    finally:
        deflater.close()
    assert _deflater_threads() == []


def test_spliced_sheet_is_the_row_file_sheet_byte_for_byte(engine, tmp_path, monkeypatch):
    """Rows spliced from the thread's stream, rows inflated back when the zip step cannot
    splice or the sheet has no file to splice into, rows left in the row file: the same
    parts."""
    cid = _campaign(engine, tmp_path)
    paths = [tmp_path / f"{n}.xlsx" for n in ("spliced", "inflated", "no-file", "plain")]
    export_campaign(engine, cid, paths[0])
    with monkeypatch.context() as patch:
        patch.setattr(xlsx_zip, "_can_splice", lambda entry: False)
        export_campaign(engine, cid, paths[1])
    with monkeypatch.context() as patch:  # the sheet's XML file unknown: rows back to the file
        patch.setattr(xlsx_zip.ByteCopyWorksheet, "_set_xml_writer", Worksheet._set_xml_writer)
        back, real = [], xlsx_zip.ByteCopyWorksheet._rows_back_to_file
        patch.setattr(
            xlsx_zip.ByteCopyWorksheet, "_rows_back_to_file", lambda s: (back.append(1), real(s))
        )
        export_campaign(engine, cid, paths[2])
        assert back == [1]
    with monkeypatch.context() as patch:
        patch.delattr(xlsx_zip.ByteCopyWorksheet, "append_row_bytes")
        export_campaign(engine, cid, paths[3])
    parts = [_parts(path) for path in paths]
    assert all(list(p) == list(parts[0]) for p in parts)
    for name in parts[0]:
        if name != TIMESTAMPED:
            assert all(p[name] == parts[0][name] for p in parts), name
    with zipfile.ZipFile(paths[0]) as archive:
        assert archive.testzip() is None  # every CRC checks out
    assert _deflater_threads() == []


def test_a_workbook_closed_outside_the_fast_close_inflates_its_rows(tmp_path):
    book = xlsx_zip.FastDeflateWorkbook(str(tmp_path / "b.xlsx"), {"constant_memory": True})
    sheet = book.add_worksheet("results")
    sheet.write_string(0, 0, "head")
    frame = pd.DataFrame({"a": [f"v{i}" for i in range(100)]})
    write_rows_xml(sheet, frame, 1)
    xlsxwriter.Workbook.close(book)  # not FastDeflateWorkbook.close: nothing to splice into
    opened = openpyxl.load_workbook(tmp_path / "b.xlsx", read_only=True)
    try:
        values = [r[0] for r in opened["results"].iter_rows(values_only=True)]
    finally:
        opened.close()
    assert values == ["head", *frame["a"]]
    assert _deflater_threads() == []


def test_a_failed_export_leaves_no_file_and_no_deflate_thread(engine, tmp_path, monkeypatch):
    cid = _campaign(engine, tmp_path)
    real = xlsx_rows._rows_array
    calls = []

    def failing(*args: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return real(*args)

    monkeypatch.setattr(xlsx_rows, "_rows_array", failing)
    monkeypatch.setattr(xlsx_rows, "XML_SLICE_ROWS", 1000)
    with pytest.raises(RuntimeError, match="disk on fire"):
        export_campaign(engine, cid, tmp_path / "r.xlsx")
    assert not [p for p in tmp_path.iterdir() if ".xlsx" in p.name]
    assert _deflater_threads() == []

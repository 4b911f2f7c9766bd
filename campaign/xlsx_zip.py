"""The zip step of the `.xlsx` export, deflated by zlib-ng instead of zlib.

xlsxwriter packs a workbook's parts (the sheets' XML, shared strings, styles) into a
`zipfile.ZipFile` deflated by zlib at its default level 6; for a million-row export (784 MB
of sheet XML) that deflate takes ~9 s. zlib-ng (the `zlib-ng` package) writes the same format
(a raw deflate stream, any inflater reads it) faster. On 200 MB of the export's sheet XML
(2026-12-03, 8 KB writes as zipfile makes them), against zlib 6 (2.3 s):

  zlib-ng 4   2.6x faster, +5.5 % size      <- DEFLATE_LEVEL
  zlib-ng 5   2.4x, +2.9 %                  zlib-ng 3  4.2x, +26 %
  zlib 3      2.0x, +13.7 %                 zlib 1     3.9x, +43 %
  isal 3      3.0x, +34 %                   isal 1-2   8x, +49 %

so zlib-ng at level 4 is the fastest within the export's size budget (+15 % over zlib 6).
bench/bench_export.py measures the whole export both ways side by side (BENCHMARKS.md
"Export").

Only the compressed bytes change: the parts, their names, CRCs and sizes are the same.

Before the zip, xlsxwriter assembles each constant_memory sheet's XML by copying its row
file (784 MB for a million rows) through text-mode files, decoding and re-encoding the
UTF-8 64 KB at a time; `FastDeflateWorkbook`'s sheets copy the bytes as they are (the
same file, byte for byte, in a fraction of the time).

How: xlsxwriter opens its zip through the name `ZipFile` of its module
`xlsxwriter.workbook` (pinned to 3.3.x in pyproject.toml). That name is bound, once, to
`_PackageZipFile`: the standard `ZipFile`, except inside `FastDeflateWorkbook.close()` on the
same thread, where each deflated entry it opens for writing gets a zlib-ng compressor in
place of zlib's. Any other xlsxwriter workbook (pandas' `to_excel`, another thread) is
untouched. If a later Python names the entry's compressor differently, the entry stays
zlib-deflated (correct, only slower) and tests/test_xlsx_zip.py fails to say so.
"""

from __future__ import annotations

import os
import shutil
import threading
import zipfile
import zlib
from dataclasses import dataclass
from typing import IO, Any, Literal

import xlsxwriter.workbook
from xlsxwriter.workbook import Workbook
from xlsxwriter.worksheet import Worksheet
from zlib_ng import zlib_ng

from campaign.xlsx_deflate import RAW_DEFLATE, RowDeflater

DEFLATE_LEVEL = 4  # zlib-ng's level: see the table above
_ZLIB_COMPRESSOR = type(zlib.compressobj())
_ZLIB_NG_COMPRESSOR = type(zlib_ng.compressobj())

# inside FastDeflateWorkbook.close(): .level, zlib-ng's level; .splices, sheet XML file -> _Splice
_scope = threading.local()


class _PackageZipFile(zipfile.ZipFile):
    """`zipfile.ZipFile`, its deflated entries zlib-ng's when opened inside a fast close()."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deflate_level: int | None = getattr(_scope, "level", None)
        self.fast_entries = 0  # entries deflated by zlib-ng (for the tests)

    def open(
        self,
        name: str | zipfile.ZipInfo,
        mode: Literal["r", "w"] = "r",
        pwd: bytes | None = None,
        *,
        force_zip64: bool = False,
    ) -> IO[bytes]:
        handle = super().open(name, mode, pwd, force_zip64=force_zip64)
        level = self.deflate_level
        zlib_deflated = isinstance(getattr(handle, "_compressor", None), _ZLIB_COMPRESSOR)
        if mode == "w" and level is not None and zlib_deflated:
            compressor = zlib_ng.compressobj(level, zlib_ng.DEFLATED, RAW_DEFLATE)
            handle._compressor = compressor  # type: ignore[attr-defined]
            self.fast_entries += 1
        return handle

    def write(
        self,
        filename: str | os.PathLike[str],
        arcname: str | os.PathLike[str] | None = None,
        compress_type: int | None = None,
        compresslevel: int | None = None,
    ) -> None:
        splices = getattr(_scope, "splices", None)
        splice = splices.pop(os.fspath(filename), None) if splices else None
        if splice is None:
            super().write(filename, arcname, compress_type, compresslevel)
            return
        self._write_spliced(os.fspath(filename), arcname, splice)

    def _write_spliced(
        self, filename: str, arcname: str | os.PathLike[str] | None, splice: _Splice
    ) -> None:
        """The sheet's entry: its head, its rows deflated beforehand, its tail (module doc)."""
        info = zipfile.ZipInfo.from_file(
            filename, arcname, strict_timestamps=getattr(self, "_strict_timestamps", True)
        )
        info.compress_type = self.compression
        info._compresslevel = self.compresslevel  # type: ignore[attr-defined]
        info.file_size += splice.rows.size  # decides zip64 as the whole sheet's size does
        with open(filename, "rb") as src, self.open(info, "w") as dest:
            dest.write(src.read(splice.offset))
            if _can_splice(dest):
                entry: Any = dest
                head = entry._compressor.flush(zlib_ng.Z_SYNC_FLUSH)
                entry._fileobj.write(head)
                splice.rows.copy_to(entry._fileobj)
                entry._compress_size += len(head) + splice.rows.compressed
                entry._crc = zlib_ng.crc32_combine(entry._crc, splice.rows.crc, splice.rows.size)
                entry._file_size += splice.rows.size
                entry._compressor = zlib_ng.compressobj(
                    DEFLATE_LEVEL, zlib_ng.DEFLATED, RAW_DEFLATE
                )
            else:  # a zipfile this module does not know: the rows inflated and deflated again
                splice.rows.inflate_to(dest)
            shutil.copyfileobj(src, dest, 1 << 20)
        splice.rows.close()


def _can_splice(entry: IO[bytes]) -> bool:
    return (
        isinstance(getattr(entry, "_compressor", None), _ZLIB_NG_COMPRESSOR)
        and all(
            isinstance(getattr(entry, name, None), int)
            for name in ("_crc", "_file_size", "_compress_size")
        )
        and hasattr(entry, "_fileobj")
    )


xlsxwriter.workbook.ZipFile = _PackageZipFile


class ByteCopyWorksheet(Worksheet):
    """A worksheet whose constant_memory rows go into the sheet's XML as bytes.

    Rows handed to `append_row_bytes` (the export's result rows) are deflated in a thread
    as they come (xlsx_deflate.py) and spliced into the sheet's zip entry by
    `_PackageZipFile.write`; other rows (the header, the cell API's) are copied as bytes.
    """

    _deflater: RowDeflater | None = None
    _xml_path: str | None = None

    def append_row_bytes(self, data: memoryview) -> None:
        """Append `<row>` XML (UTF-8) below the rows written so far."""
        if self._deflater is None:
            self._deflater = RowDeflater(DEFLATE_LEVEL, self.tmpdir or None)
        self._move_rows_to_deflater()
        self._deflater.write(data)

    def _move_rows_to_deflater(self) -> None:
        """Rows xlsxwriter wrote to the row file so far go to the deflater first, in order."""
        assert self._deflater is not None
        rows = self.row_data_fh
        rows.flush()
        if rows.tell():
            rows.seek(0)
            self._deflater.write(rows.buffer.read())
            rows.seek(0)
            rows.truncate()

    def _set_xml_writer(self, filename: Any) -> None:
        super()._set_xml_writer(filename)
        self._xml_path = filename if isinstance(filename, str) else None

    def _write_optimized_sheet_data(self) -> None:
        rows, sheet = self.row_data_fh, self.fh
        files = hasattr(rows, "buffer") and hasattr(sheet, "buffer")
        if self._deflater is not None and not (files and self._xml_path is not None):
            self._rows_back_to_file()  # nowhere to splice them (not a sheet file)
        if self.dim_rowmin is None or not files:
            super()._write_optimized_sheet_data()  # no rows, or not files: xlsxwriter's way
            return
        self._xml_start_tag("sheetData")
        sheet.flush()
        if self._deflater is not None and self._xml_path is not None:
            self._move_rows_to_deflater()
            self._deflater.finish()
            splices = getattr(_scope, "splices", None)
            if splices is not None:
                splices[self._xml_path] = _Splice(sheet.buffer.tell(), self._deflater)
            else:  # not inside FastDeflateWorkbook.close(): the rows go in as they were
                self._deflater.inflate_to(sheet.buffer)
                self._drop_deflater()
        else:
            rows.flush()
            rows.seek(0)
            shutil.copyfileobj(rows.buffer, sheet.buffer, 1 << 20)
        rows.close()
        os.unlink(self.row_data_filename)
        self._xml_end_tag("sheetData")

    def _rows_back_to_file(self) -> None:
        """The rows given to the deflater, inflated back into the row file, in order."""
        assert self._deflater is not None
        rows = self.row_data_fh
        self._move_rows_to_deflater()
        self._deflater.finish()
        rows.seek(0)
        rows.truncate()
        self._deflater.inflate_to(rows.buffer)
        rows.buffer.flush()
        self._drop_deflater()

    def _drop_deflater(self) -> None:
        if self._deflater is not None:
            self._deflater.close()
            self._deflater = None


@dataclass(frozen=True)
class _Splice:
    """Where in a sheet's XML file its deflated rows go, and the rows."""

    offset: int
    rows: RowDeflater


class FastDeflateWorkbook(Workbook):
    """An xlsxwriter `Workbook` whose package is deflated by zlib-ng at `DEFLATE_LEVEL`,
    its constant_memory sheets assembled by copying bytes, its result rows deflated as they
    are written."""

    worksheet_class = ByteCopyWorksheet

    def close(self) -> None:
        _scope.level, _scope.splices = DEFLATE_LEVEL, {}
        try:
            super().close()
        finally:  # every splice's rows are its sheet's deflater
            for sheet in self.worksheets():
                if isinstance(sheet, ByteCopyWorksheet):
                    sheet._drop_deflater()
            _scope.level = _scope.splices = None

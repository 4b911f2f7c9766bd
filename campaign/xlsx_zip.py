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
from typing import IO, Any, Literal

import xlsxwriter.workbook
from xlsxwriter.workbook import Workbook
from xlsxwriter.worksheet import Worksheet
from zlib_ng import zlib_ng

DEFLATE_LEVEL = 4  # zlib-ng's level: see the table above
_RAW_DEFLATE = -15  # window bits of a raw deflate stream, as zipfile writes it
_ZLIB_COMPRESSOR = type(zlib.compressobj())

_scope = threading.local()  # .level: the zlib-ng level inside FastDeflateWorkbook.close()


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
            compressor = zlib_ng.compressobj(level, zlib_ng.DEFLATED, _RAW_DEFLATE)
            handle._compressor = compressor  # type: ignore[attr-defined]
            self.fast_entries += 1
        return handle


xlsxwriter.workbook.ZipFile = _PackageZipFile


class ByteCopyWorksheet(Worksheet):
    """A worksheet whose constant_memory rows go into the sheet's XML as bytes."""

    def _write_optimized_sheet_data(self) -> None:
        rows, sheet = self.row_data_fh, self.fh
        if self.dim_rowmin is None or not (hasattr(rows, "buffer") and hasattr(sheet, "buffer")):
            super()._write_optimized_sheet_data()  # no rows, or not files: xlsxwriter's way
            return
        self._xml_start_tag("sheetData")
        rows.flush()
        sheet.flush()
        rows.seek(0)
        shutil.copyfileobj(rows.buffer, sheet.buffer, 1 << 20)
        rows.close()
        os.unlink(self.row_data_filename)
        self._xml_end_tag("sheetData")


class FastDeflateWorkbook(Workbook):
    """An xlsxwriter `Workbook` whose package is deflated by zlib-ng at `DEFLATE_LEVEL`,
    its constant_memory sheets assembled by copying bytes."""

    worksheet_class = ByteCopyWorksheet

    def close(self) -> None:
        _scope.level = DEFLATE_LEVEL
        try:
            super().close()
        finally:
            _scope.level = None

"""A sheet's row XML deflated in a thread while the export is still producing it.

The result sheet's rows are most of an `.xlsx` export's package (784 MB of XML for a million
rows). Deflated in xlsxwriter's zip step they cost seconds at the very end, on the one
thread; here each slice of rows is handed to a `RowDeflater` as soon as it is built, and a
thread deflates it (zlib-ng, which works without the GIL) while the next slice is read and
built. The zip step then only splices the finished stream into the sheet's entry
(xlsx_zip.py): the sheet's head deflated and flushed to a byte boundary, these rows, the
sheet's tail deflated by a fresh compressor. Concatenated like that, the pieces are one valid
raw deflate stream (each piece refers only to its own bytes; only the last one is final),
and the entry's CRC is the pieces' CRCs combined.
"""

from __future__ import annotations

import queue
import shutil
import tempfile
import threading
from typing import IO

from zlib_ng import zlib_ng

RAW_DEFLATE = -15  # window bits of a raw deflate stream, as zipfile writes it
QUEUE_SLICES = 4  # slices waiting for the deflate thread (each ~8 MB of XML at most)
_STOP = None


class RowDeflater:
    """Bytes in (`write`), in order; a raw deflate stream out (`copy_to`), not final.

    `size` and `crc` are those of the bytes written, `compressed` the length of the stream.
    A failure in the thread is raised by the next `write` or by `finish`.
    """

    def __init__(self, level: int, tmpdir: str | None = None) -> None:
        self.size = self.crc = self.compressed = 0
        self._level = level
        self._stream: IO[bytes] = tempfile.TemporaryFile(dir=tmpdir)  # noqa: SIM115 - closed by close()
        self._slices: queue.Queue[bytes | memoryview | None] = queue.Queue(QUEUE_SLICES)
        self._error: BaseException | None = None
        self._finished = False
        self._thread = threading.Thread(target=self._run, name="xlsx-deflate", daemon=True)
        self._thread.start()

    def write(self, data: bytes | memoryview) -> None:
        if self._finished:
            raise ValueError("write to a finished RowDeflater")
        if self._error is not None:
            self.finish()  # raises the thread's error
        if len(data):
            self._slices.put(data)

    def finish(self) -> None:
        """Wait until every byte written is deflated (flushed to a byte boundary)."""
        self._stop()
        if self._error is not None:
            raise self._error

    def copy_to(self, out: IO[bytes]) -> None:
        """Copy the deflated stream to `out` (after `finish`)."""
        self._stream.seek(0)
        shutil.copyfileobj(self._stream, out, 1 << 20)

    def inflate_to(self, out: IO[bytes]) -> None:
        """Copy the bytes written, inflated again, to `out` (after `finish`)."""
        self._stream.seek(0)
        inflater = zlib_ng.decompressobj(RAW_DEFLATE)
        while block := self._stream.read(1 << 20):
            out.write(inflater.decompress(block))

    def close(self) -> None:
        self._stop()
        self._stream.close()

    def _stop(self) -> None:
        if not self._finished:
            self._finished = True
            self._slices.put(_STOP)
            self._thread.join()

    def _run(self) -> None:
        compressor = zlib_ng.compressobj(self._level, zlib_ng.DEFLATED, RAW_DEFLATE)
        while (data := self._slices.get()) is not _STOP:
            if self._error is not None:
                continue  # keep taking slices so that a writer never blocks
            try:
                self.crc = zlib_ng.crc32(data, self.crc)
                self.size += len(data)
                self._put(compressor.compress(data))
            except BaseException as exc:  # raised in the writer's thread
                self._error = exc
        if self._error is None:
            try:
                self._put(compressor.flush(zlib_ng.Z_SYNC_FLUSH))
                self._stream.flush()
            except BaseException as exc:  # raised in the writer's thread
                self._error = exc

    def _put(self, block: bytes) -> None:
        self._stream.write(block)
        self.compressed += len(block)

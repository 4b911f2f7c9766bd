"""Uploads streamed to disk with the size limit enforced while reading.

`receive_files(request, field="files", limit_bytes=...)` parses the multipart body with
python-multipart's streaming parser as it arrives (never Starlette's `request.form()`,
which has no size limit) into data_dir/uploads/<random>/ under generated names
(`upload-1.xlsx`, ...: the extension kept when it is a plain one, the uploaded name only
as metadata), so a file named `../../x` or `<script>` is harmless. Past `limit_bytes`
of body (or a Content-Length saying so) it raises UploadTooLarge (413) and removes what it
wrote (the rest of the body read and dropped first, up to DRAIN_BYTES, so the client sees
it; pages answer it with `too_large_fragment` / `too_large_text`); a
malformed body is 400, a client gone midway removes the files too. Plain fields are
returned as text (bounded in number and size).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from campaign.web.i18n import lang_of, t
from campaign.web.render import render
from campaign.web.scratch import scratch_of

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

UPLOADS_DIR = "uploads"
MAX_FIELDS = 100  # plain fields of one request
MAX_FIELD_BYTES = 1024 * 1024  # of one plain field (a template is at most ~40 KB)
MAX_FILES = 50
DRAIN_BYTES = 64 * 1024 * 1024  # of a refused body read and dropped before the 413 goes out
_SUFFIX = re.compile(r"^\.[a-z0-9]{1,8}$")
_ESCAPED = re.compile(r"%(?:22|0[ad])", re.IGNORECASE)
_UNESCAPED = {"%22": '"', "%0A": " ", "%0D": " "}


class UploadTooLarge(HTTPException):
    """An upload past `limit_bytes` ([web] max_upload_mb): 413. The API answers it as any
    HTTPException ({"error": ...}); a page shows its own form with the limit named."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_mb = limit_bytes // (1024 * 1024)
        super().__init__(413, f"the upload is larger than {self.limit_mb} MB ([web] max_upload_mb)")


@dataclass(frozen=True)
class UploadedFile:
    path: Path  # under a generated name
    name: str  # as uploaded (metadata only: never a path)
    size: int
    content_type: str


@dataclass
class Upload:
    folder: Path
    files: list[UploadedFile] = field(default_factory=list)
    fields: dict[str, list[str]] = field(default_factory=dict)

    def field(self, name: str, default: str = "") -> str:
        """The last value of a plain field, or `default`."""
        values = self.fields.get(name)
        return values[-1] if values else default

    def remove(self) -> None:
        """Delete the uploaded files (when they are not needed any more)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def safe_suffix(name: str) -> str:
    """The extension of an uploaded name when it is a plain one (".xlsx"), else ""."""
    suffix = Path(name.replace("\\", "/").rsplit("/", 1)[-1]).suffix.lower()
    return suffix if _SUFFIX.match(suffix) else ""


def form_data_name(raw: bytes) -> str:
    """A field or file name of a multipart part as the user gave it. Browsers (and httpx)
    send `"` as %22, and a line break as %0A / %0D (HTML's multipart/form-data encoding):
    `"` comes back; a line break becomes a space (a name is one line of text)."""
    name = raw.decode("utf-8", "replace")
    if "%" not in name:
        return name
    return _ESCAPED.sub(lambda m: _UNESCAPED[m.group(0).upper()], name)


class _Receiver:
    """The parser's callbacks: writes file parts, keeps plain fields, counts."""

    def __init__(self, folder: Path, field_name: str) -> None:
        self.folder, self.field_name = folder, field_name
        self.upload = Upload(folder)
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._filename: str | None = None
        self._content_type = ""
        self._out: IO[bytes] | None = None
        self._path: Path | None = None
        self._size = 0
        self._value = bytearray()
        self._skip = False

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self._headers, self._name, self._filename = {}, "", None
        self._value, self._size, self._skip = bytearray(), 0, False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = form_data_name(options.get(b"name", b""))
        filename = options.get(b"filename")
        self._filename = None if filename is None else form_data_name(filename)
        self._content_type = self._headers.get(b"content-type", b"").decode("latin-1")
        if self._filename is None:
            if sum(len(v) for v in self.upload.fields.values()) >= MAX_FIELDS:
                raise HTTPException(400, f"too many form fields (at most {MAX_FIELDS})")
            return
        if self._name != self.field_name or not self._filename:
            self._skip = True  # another file field, or no file chosen: not kept
            return
        if len(self.upload.files) >= MAX_FILES:
            raise HTTPException(400, f"too many files (at most {MAX_FILES})")
        number = len(self.upload.files) + 1
        self._path = self.folder / f"upload-{number}{safe_suffix(self._filename)}"
        self._out = self._path.open("xb")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._out is not None:
            self._out.write(data[start:end])
            self._size += end - start
        elif self._filename is None and not self._skip:
            self._value += data[start:end]
            if len(self._value) > MAX_FIELD_BYTES:
                raise HTTPException(413, f"the field {self._name!r} is too long")

    def on_part_end(self) -> None:
        if self._out is not None and self._path is not None:
            self._out.close()
            self._out = None
            assert self._filename is not None
            self.upload.files.append(
                UploadedFile(self._path, self._filename, self._size,
                             self._content_type)
            )  # fmt: skip
        elif self._filename is None and not self._skip:
            value = self._value.decode("utf-8", "replace")
            self.upload.fields.setdefault(self._name, []).append(value)

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


async def receive_files(request: Request, *, field: str = "files", limit_bytes: int) -> Upload:
    """Stream the multipart body of `request` to disk (see the module docstring)."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise HTTPException(400, "expected a multipart/form-data upload")
    chunks = request.stream()
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit_bytes:
        await _drain(chunks)
        raise UploadTooLarge(limit_bytes)
    folder = scratch_of(request.app.state).folder(UPLOADS_DIR)
    receiver = _Receiver(folder, field)
    try:
        await _parse(chunks, MultipartParser(boundary, receiver.callbacks()), limit_bytes)
    except BaseException:
        receiver.close()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    receiver.close()
    return receiver.upload


async def _parse(chunks: AsyncIterator[bytes], parser: MultipartParser, limit_bytes: int) -> None:
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > limit_bytes:
            await _drain(chunks)
            raise UploadTooLarge(limit_bytes)
        try:
            parser.write(chunk)
        except HTTPException:
            raise
        except Exception as exc:  # python-multipart's parse errors
            raise HTTPException(400, f"the upload is malformed: {type(exc).__name__}") from None
    try:
        parser.finalize()
    except Exception as exc:
        raise HTTPException(400, f"the upload is malformed: {type(exc).__name__}") from None
    if parser.state != MultipartState.END:
        raise HTTPException(400, "the upload ended before its last part did")


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read (and drop) the rest of a refused body, up to DRAIN_BYTES: a client still
    sending when the answer comes would often see a reset connection instead of the 413."""
    drained = 0
    async for chunk in chunks:
        drained += len(chunk)
        if drained > DRAIN_BYTES:
            return


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request", "").lower() == "true"


def too_large_text(request: Request) -> str:
    """Why a page's upload was refused, in the page's language, the limit named in MB."""
    limit = request.app.state.settings.web.max_upload_mb
    return t(lang_of(request), "upload.too_large", limit=limit)


def too_large_fragment(request: Request) -> Response | None:
    """The answer (413) to an htmx request whose upload was too large; None for any other
    request (the page shows its own form with `too_large_text`)."""
    if not is_htmx(request):
        return None
    return render(
        request, "partials/upload_too_large.html", status_code=413, message=too_large_text(request)
    )


__all__ = [
    "Upload",
    "UploadTooLarge",
    "UploadedFile",
    "form_data_name",
    "is_htmx",
    "receive_files",
    "safe_suffix",
    "too_large_fragment",
    "too_large_text",
]

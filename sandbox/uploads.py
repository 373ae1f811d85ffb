"""Streaming multipart parsing for uploads: files are hashed, sized and sniffed as they pass, never kept.

python-multipart's callback parser is fed the request body chunk by chunk, so memory stays flat whatever the
file size (starlette's `request.form()` would spool to temporary files instead).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import filetype
from filetype.types import archive, image
from python_multipart.multipart import MultipartParser, parse_options_header

# Only what the contract accepts; a signature match, never the client's Content-Type or file name.
_MATCHERS = [archive.Pdf(), image.Jpeg(), image.Png()]
_HEAD_BYTES = 262  # enough for every signature above
_MAX_FIELD_BYTES = 64 * 1024  # plain form fields (customer_id) are tiny; refuse to buffer big ones
_MAX_PARTS = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class UploadRejected(Exception):
    """The upload is not acceptable (answered 422); the message says why without echoing content."""


@dataclass(slots=True)
class FilePart:
    """One file as it streamed past: its digest, size and sniffed type."""

    field: str
    filename: str
    size: int = 0
    too_large: bool = False
    head: bytearray = dataclasses.field(default_factory=bytearray)
    hasher: Any = dataclasses.field(default_factory=hashlib.sha256)

    @property
    def sha256(self) -> str:
        """Hex digest of the content."""
        return str(self.hasher.hexdigest())

    @property
    def content_type(self) -> str | None:
        """The sniffed MIME type (PDF, JPEG or PNG), or None for anything else."""
        kind = filetype.match(bytes(self.head), _MATCHERS)
        return kind.mime if kind is not None else None


@dataclass(slots=True)
class UploadForm:
    """The parsed form: plain fields and file parts."""

    fields: dict[str, str] = dataclasses.field(default_factory=dict)
    files: list[FilePart] = dataclasses.field(default_factory=list)


def safe_filename(name: str) -> str:
    """A file name fit for a uri: last path component, unsafe characters replaced, bounded length."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return _UNSAFE.sub("_", base).strip("._")[:100] or "file"


class _Collector:
    """Callbacks for python-multipart; builds an `UploadForm` as bytes arrive."""

    def __init__(self, max_file_bytes: int) -> None:
        self.form = UploadForm()
        self.max_file_bytes = max_file_bytes
        self.problem: str | None = None
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._file: FilePart | None = None
        self._field_name: str | None = None
        self._field_value = bytearray()
        self._parts = 0

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": lambda d, s, e: self._header_field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self._headers = {}
        self._file = None
        self._field_name = None
        self._field_value = bytearray()
        self._parts += 1
        if self._parts > _MAX_PARTS:
            self.problem = f"too many parts (at most {_MAX_PARTS})"

    def on_header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field = bytearray()
        self._header_value = bytearray()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if filename is not None:
            self._file = FilePart(field=name, filename=filename.decode("utf-8", "replace"))
        else:
            self._field_name = name

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._file
        if part is None:
            if end - start + len(self._field_value) > _MAX_FIELD_BYTES:
                self.problem = "form field too large"
            else:
                self._field_value.extend(data[start:end])
            return
        part.size += end - start
        if part.too_large:
            return
        if part.size > self.max_file_bytes:
            part.too_large = True  # keep counting, stop hashing: the answer is already "no"
            return
        chunk = memoryview(data)[start:end]
        if len(part.head) < _HEAD_BYTES:
            part.head.extend(chunk[: _HEAD_BYTES - len(part.head)])
        part.hasher.update(chunk)

    def on_part_end(self) -> None:
        if self._file is not None:
            self.form.files.append(self._file)
        elif self._field_name is not None:
            self.form.fields.setdefault(self._field_name, self._field_value.decode("utf-8", "replace"))


async def parse_upload(content_type: bytes, chunks: AsyncIterator[bytes], max_file_bytes: int) -> UploadForm:
    """Parse a multipart body from `chunks`; always drain the body, then raise `UploadRejected` if bad."""
    mime, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    problem: str | None = None
    collector = _Collector(max_file_bytes)
    parser: MultipartParser | None = None
    if mime != b"multipart/form-data" or not boundary:
        problem = "Content-Type must be multipart/form-data with a boundary"
    else:
        parser = MultipartParser(boundary, cast(Any, collector.callbacks()))
    async for chunk in chunks:
        # Once it is known to be bad, keep reading (so the client gets our answer, not a broken pipe)
        # but stop parsing.
        if parser is None or problem is not None:
            continue
        try:
            parser.write(chunk)
        except Exception:
            problem = "malformed multipart body"
        problem = problem or collector.problem
    if parser is not None and problem is None:
        try:
            parser.finalize()
        except Exception:
            problem = "malformed multipart body"
    if problem is not None:
        raise UploadRejected(problem)
    return collector.form

"""Reading an attachment upload (``multipart/form-data``) from the request stream, in memory.

Starlette's form parser spools files over 1 MiB to a temporary file: an attachment's plaintext
would touch the disk. Here the parts are parsed as they arrive (python-multipart's streaming
parser) and the file is kept in memory, at most the attachment limit plus one byte; past that
the rest is read and dropped, and the upload is marked too large (refused, and audited, by the
use case). The body as a whole is already bounded by ``HDS_MAX_UPLOAD_BYTES``.

Fields: ``file`` (the document, with its file name), ``document_type``, ``body`` (a caption),
``client_id``. Anything else, a second file, or a malformed form makes ``problem`` name the
field at fault.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from hdsapp.threads.service import Upload

TEXT_FIELDS = frozenset({"document_type", "body", "client_id"})
MAX_TEXT_BYTES = 128 * 1024


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)
    overflow: bool = False


@dataclass
class _Form:
    limit: int
    parts: list[_Part] = field(default_factory=list)
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    headers: dict[bytes, bytes] = field(default_factory=dict)

    def on_part_begin(self) -> None:
        self.parts.append(_Part())
        self.headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[bytes(self.header_field).lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        part = self.parts[-1]
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        part.name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        part.filename = filename.decode("utf-8", "replace") if filename is not None else None

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self.parts[-1]
        room = (self.limit + 1 if part.filename is not None else MAX_TEXT_BYTES) - len(part.data)
        piece = data[start:end]
        if len(piece) > room:
            part.overflow = True
            piece = piece[: max(room, 0)]
        part.data += piece


async def read_upload(content_type: str, stream: AsyncIterator[bytes], *, limit: int) -> Upload:
    """The upload in ``stream`` (the request body), the file kept to ``limit`` + 1 bytes."""
    media, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if media != b"multipart/form-data" or not boundary:
        async for _ in stream:
            pass
        return Upload(data=b"", problem="file")
    form = _Form(limit=limit)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": form.on_part_begin,
            "on_header_field": form.on_header_field,
            "on_header_value": form.on_header_value,
            "on_header_end": form.on_header_end,
            "on_headers_finished": form.on_headers_finished,
            "on_part_data": form.on_part_data,
        },
    )
    try:
        async for chunk in stream:
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError:
        return Upload(data=b"", problem="file")
    return _upload(form)


def _upload(form: _Form) -> Upload:
    files = [p for p in form.parts if p.filename is not None]
    texts: dict[str, str] = {}
    problem = None
    for part in form.parts:
        if part.filename is not None:
            if part.name != "file":
                problem = problem or part.name or "file"
            continue
        if part.name not in TEXT_FIELDS or part.name in texts or part.overflow:
            problem = problem or part.name or "form"
            continue
        try:
            texts[part.name] = part.data.decode("utf-8")
        except UnicodeDecodeError:
            problem = problem or part.name
    if len(files) != 1:
        return Upload(data=b"", problem=problem or "file")
    file = files[0]
    return Upload(
        data=bytes(file.data),
        filename=file.filename,
        document_type=texts.get("document_type"),
        body=texts.get("body", ""),
        client_id=texts.get("client_id"),
        too_large=file.overflow,
        problem=problem,
    )

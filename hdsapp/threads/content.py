"""What an uploaded file is, from its bytes (magic numbers), never from its name or the type the
client declared: PDF, JPEG, PNG, HEIC/HEIF and (optionally) DICOM Part 10."""

from __future__ import annotations

PDF = "application/pdf"
JPEG = "image/jpeg"
PNG = "image/png"
HEIC = "image/heic"
DICOM = "application/dicom"

#: Bytes needed to recognise every type (DICOM: 128-byte preamble, then "DICM").
SNIFF_BYTES = 132

# ISO base media file format brands of HEIF still images (ISO/IEC 23008-12).
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})


def detect(head: bytes, *, allow_dicom: bool = True) -> str | None:
    """The media type of a file that starts with ``head`` (at least ``SNIFF_BYTES`` bytes when
    the file has them), or None when it is not an allowed type."""
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return HEIC
    if allow_dicom and len(head) >= SNIFF_BYTES and head[128:132] == b"DICM":
        return DICOM
    return None


EXTENSIONS = {PDF: ".pdf", JPEG: ".jpg", PNG: ".png", HEIC: ".heic", DICOM: ".dcm"}

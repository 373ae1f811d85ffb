"""Small but real sample documents (PDF, PNG, JPEG) for the demo, the tests and the benchmarks."""

from __future__ import annotations

import base64
import struct
import zlib

# A 16x16 baseline JPEG from CPython's test data (PSF licence): real JPEG, 543 bytes.
_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQEAAQABAAD/2wBDAAMCAgICAgMCAgIDAwMDBAYEBAQEBAgGBgUGCQgKCgkICQkKDA8MCgsOCwkJDRENDg8Q"
    "EBEQCgwSExIQEw8QEBD/2wBDAQMDAwQDBAgEBAgQCwkLEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ"
    "EBAQEBAQEBD/wAARCAAQABADASIAAhEBAxEB/8QAFgABAQEAAAAAAAAAAAAAAAAABwQF/8QAJBAAAQQBBAICAwAAAAAAAAAAAQID"
    "BAYFBwgSExEiABQJMTL/xAAVAQEBAAAAAAAAAAAAAAAAAAAABv/EACMRAAECBQMFAAAAAAAAAAAAAAECEQMEBQYhABIxFRZhgeH/"
    "2gAMAwEAAhEDEQA/ABSm0mobc8HmExLUlRzzEWPkJWW+ulrsaUVAseUgslSlH9LKuPryIKuWPZdskzXmm3fX5m2nF4GlVxx/HOpx"
    "4ks51+MiU/Iaad7UcUo4tILoS4kqcWkezS0hO/HvuRp0rO6hWnWO1UisZVuFi4GFeyEpmGepa5S5SWVPuciFKRFLgSrwetnyPIB+"
    "Vb4N9mKhQMzo5po9XLdDs9d6ZVix2VEhiL9kuNPxw2gEKcDQ/rs8AuA8VAe0vdl7VOYn+27flGAUgmITjbhSmCg3BYlyeWDkMolv"
    "w4KOp1KM6iCNvngZHwetf//Z"
)


def sample_pdf(label: str = "sample", pad_to: int = 0) -> bytes:
    """A one-page PDF showing label; pad_to grows it with a comment to test sizes.

    The padding is a comment line after the header, inside the file: bytes after ``%%EOF`` would make it a PDF
    with something appended, which the upload refuses (``bad_file_structure``).
    """
    plain = _pdf(label, b"")
    if pad_to <= len(plain):
        return plain
    return _pdf(label, b"%" + b"0" * max(0, pad_to - len(plain) - 2) + b"\n")


def _pdf(label: str, padding: bytes) -> bytes:
    stream = f"BT /F1 24 Tf 72 720 Td ({label}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n" + padding)
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def sample_png(width: int = 32, height: int = 32, rgb: tuple[int, int, int] = (40, 120, 200),
               pad_to: int = 0) -> bytes:
    """A solid-colour RGB PNG; ``pad_to`` grows it with a private ancillary chunk before IEND (viewers skip it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes(rgb) * width
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    signature = b"\x89PNG\r\n\x1a\n"
    body = signature + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(row * height))
    padding = chunk(b"pdAt", b"\0" * (pad_to - len(body) - 24)) if pad_to > len(body) + 24 else b""
    return body + padding + chunk(b"IEND", b"")


def sample_jpeg(comment: bytes = b"", pad_to: int = 0) -> bytes:
    """A small real JPEG; ``comment`` (and padding up to ``pad_to`` bytes) goes in COM segments after the SOI
    marker, inside the file: bytes after its end marker would make it a JPEG with something appended."""
    extra = comment + b"\0" * max(0, pad_to - len(_JPEG) - len(comment))
    segments = b""
    while extra:
        # A segment's length field (2 bytes) counts itself: at most 65,533 bytes of comment each.
        part, extra = extra[:65_533], extra[65_533:]
        segments += b"\xff\xfe" + (len(part) + 2).to_bytes(2, "big") + part
    return _JPEG[:2] + segments + _JPEG[2:]

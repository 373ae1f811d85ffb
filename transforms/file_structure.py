"""Whether a file that starts as PDF, PNG or JPEG also ends as one: a minimum size and the format's end marker.

A signature alone (what ``filetype`` and ``puremagic`` check: the first bytes) lets through a real document with
a ZIP or an executable appended, a PNG signature in front of anything, or a 5-byte ``%PDF-``. Neither library
looks at the end of a file, and the three end markers are a few bytes each, so the check is written here: it
needs only the file's size and its last :data:`TAIL_BYTES` bytes, which the upload and the dry run read anyway
or with one small ranged request.
"""

from __future__ import annotations

#: How much of a file's end the check needs: ``%%EOF`` must sit within the last ~1 KB (PDF readers look there),
#: with room for trailing whitespace.
TAIL_BYTES = 2048
_PDF_EOF_WINDOW = 1024
_PDF_EOF = b"%%EOF"
# PDF white-space characters (ISO 32000-1, 7.2.2): writers pad after %%EOF with these, never with anything else.
_PDF_WHITESPACE = b"\x00\t\n\x0c\r "
# The whole IEND chunk: length 0, type, CRC-32 of the type. Nothing may follow it.
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_JPEG_EOI = b"\xff\xd9"

# Smaller than the smallest well-formed file of the type: a PDF needs a header, a catalog, a page tree, an xref
# or xref stream and a trailer (the smallest known is 67 bytes); a PNG its signature, IHDR, IDAT and IEND (67);
# a JPEG its SOI, quantisation and Huffman tables, a frame and scan header, data and EOI (over 100).
MIN_BYTES: dict[str, int] = {"application/pdf": 67, "image/png": 67, "image/jpeg": 107}
_NAMES = {"application/pdf": "PDF", "image/png": "PNG", "image/jpeg": "JPEG"}


def structure_problem(mime: str, size: int, tail: bytes) -> str | None:
    """Why a file of type ``mime`` is not whole, or None when it is; ``tail`` is its last bytes (up to
    :data:`TAIL_BYTES`, or the whole file when smaller).

    The message names the field and the defect, never the bytes.
    """
    name = _NAMES.get(mime, mime)
    if size < MIN_BYTES.get(mime, 0):
        return f"s3_uri: the file is too small ({size} bytes) to be a whole {name}"
    if mime == "application/pdf":
        body = tail.rstrip(_PDF_WHITESPACE)
        if not body.endswith(_PDF_EOF) or len(tail) - len(body) > _PDF_EOF_WINDOW:
            return "s3_uri: the PDF does not end with %%EOF (cut short, or other bytes appended after it)"
    elif mime == "image/png":
        if not tail.endswith(_PNG_IEND):
            return "s3_uri: the PNG does not end with its IEND chunk (cut short, or other bytes appended after it)"
    elif mime == "image/jpeg" and not tail.endswith(_JPEG_EOI):
        return "s3_uri: the JPEG does not end with its end-of-image marker (cut short, or bytes appended after it)"
    return None

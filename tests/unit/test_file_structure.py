"""The end-of-file rules (transforms.file_structure): a whole PDF, PNG or JPEG, nothing appended, not too small."""

from __future__ import annotations

import pytest

from flows.commands.demo_samples import sample_jpeg, sample_pdf, sample_png
from transforms.file_structure import MIN_BYTES, TAIL_BYTES, structure_problem

PDF, PNG, JPEG = "application/pdf", "image/png", "image/jpeg"


def _problem(mime: str, data: bytes) -> str | None:
    return structure_problem(mime, len(data), data[-TAIL_BYTES:])


@pytest.mark.parametrize(("mime", "data"), [
    (PDF, sample_pdf("ok")),
    (PDF, sample_pdf("ok") + b"\r\n \x00\x0c"),  # PDF white space after %%EOF is allowed
    (PDF, sample_pdf("ok").rstrip(b"\n")),  # and so is none
    (PDF, sample_pdf("big", pad_to=100_000)),
    (PNG, sample_png()),
    (PNG, sample_png(pad_to=50_000)),
    (JPEG, sample_jpeg()),
    (JPEG, sample_jpeg(comment=b"unique", pad_to=70_000)),
])
def test_whole_files_pass(mime: str, data: bytes) -> None:
    assert _problem(mime, data) is None


@pytest.mark.parametrize(("mime", "data", "says"), [
    (PDF, b"%PDF-", "too small (5 bytes) to be a whole PDF"),
    (PDF, sample_pdf("x") + b"PK\x03\x04" + b"\x00" * 400, "does not end with %%EOF"),
    (PDF, sample_pdf("x")[:-20], "does not end with %%EOF"),
    (PDF, sample_pdf("x") + b" " * 1100, "does not end with %%EOF"),  # %%EOF must be within the last ~1 KB
    (PNG, b"\x89PNG\r\n\x1a\n" + b"MZ" + b"\x00" * 300, "does not end with its IEND chunk"),
    (PNG, sample_png() + b"\x00", "does not end with its IEND chunk"),
    (PNG, sample_png()[:60], "too small (60 bytes)"),
    (JPEG, b"\xff\xd8\xff" + b"text, not an image\n" * 10, "does not end with its end-of-image marker"),
    (JPEG, sample_jpeg() + b"MZ\x90\x00", "does not end with its end-of-image marker"),
    (JPEG, b"\xff\xd8\xff\xd9", "too small (4 bytes)"),
])
def test_files_cut_short_or_with_bytes_appended_are_refused(mime: str, data: bytes, says: str) -> None:
    problem = _problem(mime, data)
    assert problem is not None and problem.startswith("s3_uri: ") and says in problem


def test_minimum_sizes_are_the_boundary() -> None:
    for mime, least in MIN_BYTES.items():
        assert "too small" in (structure_problem(mime, least - 1, b"") or "")
        assert "too small" not in (structure_problem(mime, least, b"") or "")

"""The 128 bits of canonical uuid text, read vectorised (for sharding by customer id).

Canonical means what validation leaves after trimming and lower-casing and what :data:`UUID_RE` accepts:
36 characters, lower-case hex digits, dashes at 8, 13, 18 and 23. The regular expression decides which values
are uuids (RE2 over the distinct values is cheaper than any numpy check); this module only reads their bits.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

UUID_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

_LOW_NIBBLES = np.uint64(0x0F0F0F0F0F0F0F0F)
_BIT6 = np.uint64(0x0101010101010101)
_EVEN_BYTES = np.uint64(0x00FF00FF00FF00FF)


def is_uuid(values: pa.StringArray) -> np.ndarray:
    """Which values are canonical uuids (False for null)."""
    return np.asarray(pc.fill_null(pc.match_substring_regex(values, UUID_RE), False), dtype=bool)


def uuid_words(values: pa.StringArray, canonical: np.ndarray) -> np.ndarray:
    """Each value's high and low 64 bits as an ``(n, 2)`` uint64 array; zeros where ``canonical`` is False."""
    n = len(values)
    words = np.zeros((n, 2), dtype=np.uint64)
    pos = np.flatnonzero(canonical)
    if not len(pos):
        return words
    ids = values if len(pos) == n else values.take(pa.array(pos))
    offsets = np.frombuffer(ids.buffers()[1], dtype=np.int32, count=len(ids) + 1, offset=ids.offset * 4)
    raw = np.frombuffer(ids.buffers()[2], dtype=np.uint8, count=36 * len(ids), offset=int(offsets[0]))
    raw = raw.reshape(len(ids), 36)
    # The 32 hex digits, 8 to a little-endian word (digit k in byte k), decoded in place (SWAR): '0'-'9' are
    # 0x30-0x39 and 'a'-'f' 0x61-0x66, so a digit's value is its low nibble, plus 9 when bit 6 is set.
    digits = np.concatenate([raw[:, 0:8], raw[:, 9:13], raw[:, 14:18], raw[:, 19:23], raw[:, 24:36]], axis=1)
    w = np.ascontiguousarray(digits).view("<u8")  # (n, 4)
    nib = (w & _LOW_NIBBLES) + np.uint64(9) * ((w >> np.uint64(6)) & _BIT6)
    # Digit pairs into bytes: 16-bit lane j gets (digit 2j << 4) | digit 2j+1 in its low byte.
    lanes = ((nib & _EVEN_BYTES) << np.uint64(4)) | ((nib >> np.uint64(8)) & _EVEN_BYTES)
    # The four bytes of each word, first digit pair most significant: a big-endian 32-bit piece of the uuid.
    ff = np.uint64(0xFF)
    piece = (((lanes & ff) << np.uint64(24)) | (((lanes >> np.uint64(16)) & ff) << np.uint64(16))
             | (((lanes >> np.uint64(32)) & ff) << np.uint64(8)) | ((lanes >> np.uint64(48)) & ff))
    words[pos, 0] = (piece[:, 0] << np.uint64(32)) | piece[:, 1]
    words[pos, 1] = (piece[:, 2] << np.uint64(32)) | piece[:, 3]
    return words

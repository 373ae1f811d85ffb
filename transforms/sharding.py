"""Stable, vectorised shard assignment by customer id: each customer's hash slot.

A customer id hashes to one of ``n_slots`` slots; a shard is a range of adjacent slots
(:func:`transforms.shard_plan.group_slots`).

Python's ``hash()`` is salted per process, so it cannot place a customer in the same shard in every worker and
every resumed run. Here the whole uuid (all 128 bits, so time-ordered uuidv7 spread as well as v4) goes
through the splitmix64 finaliser in numpy: tens of ms per million ids. Ids that are not canonical uuids
(validation rejects those, but the function must not fail) fall back to blake2b per value.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.uuids import is_uuid, uuid_words


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    mixed: np.ndarray = x ^ (x >> np.uint64(31))
    return mixed


def slots_of(ids: pa.StringArray, n_slots: int, canonical: np.ndarray | None = None) -> np.ndarray:
    """Hash slot (int32) of each id as given (no trimming or recasing here); nulls get 0.

    ``canonical`` says which ids are uuids when the caller knows already. The result depends only on the id and
    ``n_slots``: the same in every process, machine and run.
    """
    if n_slots < 1:
        raise ValueError("n_slots must be at least 1")
    canonical = is_uuid(ids) if canonical is None else canonical
    words = uuid_words(ids, canonical)
    with np.errstate(over="ignore"):
        h = np.where(canonical, _splitmix64(words[:, 0] ^ _splitmix64(words[:, 1])), np.uint64(0))
    if not canonical.all():
        pos = np.flatnonzero(~canonical)
        h[pos] = np.array(
            [
                0 if v is None else int.from_bytes(hashlib.blake2b(v.encode(), digest_size=8).digest(), "little")
                for v in ids.take(pa.array(pos)).to_pylist()
            ],
            dtype=np.uint64,
        )
    return (h % np.uint64(n_slots)).astype(np.int32)


def slot_of_row(ids: pa.Array | pa.ChunkedArray, n_slots: int) -> np.ndarray:
    """Each row's hash slot (int32) by its id, -1 for a row without one; each distinct id is hashed once (a
    customer's id repeats on every row of the customer)."""
    enc = pc.dictionary_encode(ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids)
    by_value = slots_of(enc.dictionary, n_slots)
    spread: np.ndarray = np.append(by_value, np.int32(-1))[np.asarray(pc.fill_null(enc.indices, -1))]
    return spread

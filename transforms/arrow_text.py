"""Arrow string arrays as Arrow's compute kernels need them: shared by the manifest reader and validation."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def zero_based(col: pa.Array) -> pa.Array:
    """The string array with its offsets starting at 0: a copy only when they do not.

    The Parquet reader hands out arrays whose first offset is not 0 (a batch that starts inside a row group;
    a dictionary column cast to text), which Arrow allows, but ``ascii_upper``/``ascii_lower`` (pyarrow 26) then
    write garbage, and a batch failed with "First or last binary offset out of bounds".
    """
    if not len(col):
        return col
    first = np.frombuffer(col.buffers()[1], dtype=np.int32, count=1, offset=col.offset * 4)[0]
    return col if first == 0 else pa.concat_arrays([col])

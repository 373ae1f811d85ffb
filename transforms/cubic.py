"""The cubic growth of a send rate after a cut (CUBIC, as botocore's adaptive mode uses it), pure."""

from __future__ import annotations


def cubic_rate(since_cut_s: float, w_max: float, *, beta: float, scale: float, hold_s: float = 0.0) -> float:
    """The rate ``since_cut_s`` seconds after a cut from ``w_max`` to ``beta * w_max``.

    Fast far below ``w_max``, flat near it, probing past it slowly: ``scale * (t - k)**3 + w_max``, where ``k``
    (the seconds to climb back to ``w_max``) makes the curve start at ``beta * w_max``; back at ``w_max``, it stays
    there ``hold_s`` seconds before the probe past it.
    """
    k: float = (w_max * (1.0 - beta) / scale) ** (1.0 / 3.0)
    t = since_cut_s if since_cut_s <= k else max(k, since_cut_s - hold_s)
    return scale * (t - k) ** 3 + w_max

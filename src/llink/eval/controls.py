"""Content-transfer controls: which item gets whose slots."""

from __future__ import annotations

import numpy as np

from ..errors import LlinkError


def shuffled_order(n: int, seed: int) -> np.ndarray:
    """A permutation with no fixed point: every item gets another item's slots."""
    if n < 2:
        raise LlinkError("the shuffled-slot control needs at least 2 examples")
    perm = np.random.default_rng(seed).permutation(n)
    out = np.empty(n, dtype=np.int64)
    out[perm] = np.roll(perm, 1)
    return out

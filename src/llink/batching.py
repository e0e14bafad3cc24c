"""Batches whose every row comes out the same whatever else shares the batch.

A padded batch's width depends on which texts share it, and CPU matrix kernels round a row
differently for different shapes. A cached vector then depended on which other texts happened to
be missing from the cache when it was computed (measured on e5's pooled layers: ~1e-7), so a model
trained from a cold cache differed from one trained after a partly filled cache, by about 1 chrF++.
Here a batch holds texts of one token length only (nothing is padded), and a batch of fewer than
`MIN_TOKENS` tokens is repeated up to that size: below ~12 tokens in a batch (rows x length) the
kernels take a small-matrix path that rounds differently. Every row is then bit-identical to the same text
computed in any other company, alone included (tests/unit/test_encoders.py, test_teacher.py; on the bundled
models tests/integration/test_bundled.py).
"""

from __future__ import annotations

from collections.abc import Sequence

KEY = "same-length-v1"  # part of every cache namespace whose rows are computed this way
MIN_TOKENS = 32


def same_length_batches(lengths: Sequence[int], batch_size: int, min_tokens: int = MIN_TOKENS) -> list[tuple[list[int], int]]:
    """(indices, n_real) per batch: rows of one length, shortest first, a length group split into
    near-equal chunks of at most batch_size; the first n_real indices are the batch's own rows
    and the rest repeat them (compute on all, keep the first n_real results)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(int(n), []).append(i)
    out = []
    for n in sorted(groups):
        idx = groups[n]
        size = -(-len(idx) // -(-len(idx) // batch_size))
        for s in range(0, len(idx), size):
            part = idx[s : s + size]
            reps = max(1, -(-min_tokens // max(1, n * len(part))))
            out.append((part * reps, len(part)))
    return out

"""Seeded subsets and duplicate groups of pairs: shared by training, the sweep and evaluation."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def subsample(pairs: list, n: int | None, seed: int) -> list:
    if n is None or n >= len(pairs):
        return pairs
    idx = np.random.default_rng(seed).permutation(len(pairs))[:n]
    return [pairs[i] for i in sorted(idx)]


def duplicate_groups(src: Sequence[str], en: Sequence[str]) -> np.ndarray:
    """One id per pair; pairs sharing their English *or* source string share an id, so the
    contrastive loss never treats a translation of the same sentence as a negative."""
    parent = list(range(len(src)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for side in (src, en):
        first: dict[str, int] = {}
        for i, s in enumerate(side):
            j = first.setdefault(s, i)
            if j != i:
                parent[find(i)] = find(j)
    roots = [find(i) for i in range(len(src))]
    _, ids = np.unique(roots, return_inverse=True)
    return ids.astype(np.int64)

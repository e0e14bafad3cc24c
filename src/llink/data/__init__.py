"""Parallel data: reading user pairs, the committed English–Khmer splits, and their builder."""

from llink.data.debian import build_corpus
from llink.data.io import Pair, normalize, read_pairs, write_pairs
from llink.data.splits import corpus_stats, load_pairs, load_split, split_stats

__all__ = [
    "Pair",
    "normalize",
    "read_pairs",
    "write_pairs",
    "load_split",
    "load_pairs",
    "split_stats",
    "corpus_stats",
    "build_corpus",
]

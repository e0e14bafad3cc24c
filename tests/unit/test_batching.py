"""same_length_batches: which rows share a batch, and the repeats that keep tiny batches off the small-matrix path."""

import pytest

from llink.batching import same_length_batches


def test_one_length_per_batch_shortest_first_every_row_once():
    lengths = [40, 33, 40, 33, 50, 40]
    got = same_length_batches(lengths, batch_size=2)
    assert got == [([1, 3], 2), ([0, 2], 2), ([5], 1), ([4], 1)]
    real = sorted(i for idx, n in got for i in idx[:n])
    assert real == list(range(len(lengths)))


def test_groups_split_into_near_equal_chunks():
    # 5 rows of one length with batch_size 4: 3 + 2, not 4 + 1 (a lone row would be repeated anyway)
    assert [n for _, n in same_length_batches([40] * 5, batch_size=4)] == [3, 2]
    assert [n for _, n in same_length_batches([40] * 8, batch_size=4)] == [4, 4]


def test_short_batches_are_repeated_up_to_min_tokens():
    got = same_length_batches([5, 5, 12], batch_size=8, min_tokens=32)
    # 2 rows x 5 tokens = 10 < 32: repeated 4 times (40 tokens); 1 x 12: 3 times (36)
    assert got == [([0, 1] * 4, 2), ([2] * 3, 1)]
    assert same_length_batches([32], batch_size=8, min_tokens=32) == [([0], 1)]


def test_empty_and_bad_batch_size():
    assert same_length_batches([], batch_size=4) == []
    with pytest.raises(ValueError, match="batch_size"):
        same_length_batches([3], batch_size=0)

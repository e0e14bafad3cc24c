import numpy as np
import pytest
import torch

from llink.eval.retrieval import both_directions, ranks, retrieval_metrics

METRIC_KEYS = {"r1", "r5", "r10", "mrr", "mean_rank"}


def _brute_ranks(q, k, groups=None):
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    kn = k / np.linalg.norm(k, axis=1, keepdims=True)
    out = []
    for i in range(len(q)):
        s = kn @ qn[i]
        r = 1
        for j in range(len(k)):
            if j != i and s[j] >= s[i] and (groups is None or groups[j] != groups[i]):
                r += 1
        out.append(r)
    return np.array(out)


def test_handcrafted_ranks_and_metrics():
    keys = np.array([[1.0, 0.0], [1.0, 1.0]])
    queries = np.array([[2.0, 0.0], [1.0, -0.1]])  # q1 prefers key 0 over its own key 1
    assert ranks(queries, keys).tolist() == [1, 2]
    m = retrieval_metrics(queries, keys)
    assert set(m) == METRIC_KEYS and all(isinstance(v, float) for v in m.values())
    assert m["r1"] == 0.5 and m["r5"] == 1.0 and m["r10"] == 1.0
    assert m["mrr"] == pytest.approx((1 + 1 / 2) / 2)
    assert m["mean_rank"] == pytest.approx(1.5)


def test_rank_counts_better_and_tied_keys_and_r_at_k():
    # 12 keys; query 0 has exactly 5 keys strictly better and 6 that tie with its true key.
    keys = np.zeros((12, 13))
    keys[0, 0] = 1.0  # true key of query 0: similarity 0 to query 0 = e1
    for i in range(1, 6):  # 5 keys strictly better than the true key, all distinct
        keys[i, 1], keys[i, 1 + i] = 1.0, 0.1
    for i in range(6, 12):  # 6 keys orthogonal to query 0: they tie with its true key
        keys[i, 1 + i] = 1.0
    queries = keys.copy()
    queries[0] = 0.0
    queries[0, 1] = 1.0
    r = ranks(queries, keys)
    assert r.tolist() == [12] + [1] * 11  # 1 + 5 better + 6 tied; every other query is unique
    m = retrieval_metrics(queries, keys)
    assert m["r1"] == pytest.approx(11 / 12) and m["r5"] == pytest.approx(11 / 12) and m["r10"] == pytest.approx(11 / 12)
    assert m["mrr"] == pytest.approx((11 + 1 / 12) / 12)
    assert m["mean_rank"] == pytest.approx(23 / 12)


def test_ties_count_against_the_system():
    keys = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    queries = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    # q0, q1: the other identical key ties -> rank 2; q2: two keys strictly better -> rank 3.
    assert ranks(queries, keys).tolist() == [2, 2, 3]
    # A constant key space (a degenerate teacher) ranks every query last, not first.
    const = np.ones((5, 4))
    assert ranks(np.random.default_rng(0).standard_normal((5, 4)), const).tolist() == [5] * 5
    # Unless the identical keys are duplicates of one string (same group).
    assert ranks(queries, keys, key_groups=[0, 0, 1]).tolist() == [1, 1, 3]


def test_key_groups_count_duplicates_as_correct():
    keys = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    queries = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert ranks(queries, keys).tolist() == [1, 3, 2]
    # Keys 0 and 1 are the same English string: query 1 only loses to key 2.
    assert ranks(queries, keys, key_groups=[0, 0, 1]).tolist() == [1, 2, 2]
    assert ranks(queries, keys, key_groups=np.array([5, 5, 5])).tolist() == [1, 1, 1]


def test_chunking_numpy_torch_and_brute_force_agree():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((37, 8)).astype(np.float32)
    k = (q + 0.8 * rng.standard_normal((37, 8))).astype(np.float32)
    groups = rng.integers(0, 30, size=37)
    full = ranks(q, k, chunk_size=1000)
    assert np.array_equal(full, _brute_ranks(q.astype(np.float64), k.astype(np.float64)))
    for cs in (1, 5, 36):
        assert np.array_equal(ranks(q, k, chunk_size=cs), full)
        assert np.array_equal(ranks(torch.from_numpy(q), torch.from_numpy(k), chunk_size=cs), full)
    grouped = ranks(q, k, key_groups=groups, chunk_size=7)
    assert np.array_equal(grouped, _brute_ranks(q.astype(np.float64), k.astype(np.float64), groups))
    assert (grouped <= full).all()
    assert retrieval_metrics(q, k, chunk_size=4) == retrieval_metrics(q, k)


def test_both_directions():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((20, 6))
    b = a + rng.standard_normal((20, 6))
    out = both_directions(a, b, chunk_size=3)
    assert set(out) == {"src2en", "en2src"}
    assert set(out["src2en"]) == METRIC_KEYS and set(out["en2src"]) == METRIC_KEYS
    assert out["src2en"] == retrieval_metrics(a, b)
    assert out["en2src"] == retrieval_metrics(b, a)
    g = rng.integers(0, 5, size=20)
    out = both_directions(a, b, b_groups=g)
    assert out["src2en"] == retrieval_metrics(a, b, key_groups=g)
    assert out["en2src"] == retrieval_metrics(b, a)
    assert both_directions(a, b, key_groups=g)["en2src"] == retrieval_metrics(b, a, key_groups=g)
    with pytest.raises(ValueError):
        both_directions(a, b, key_groups=g, a_groups=g)


def test_shape_errors():
    with pytest.raises(ValueError):
        ranks(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError):
        ranks(np.ones((3, 2)), np.ones((3, 2)), key_groups=[0, 1])

"""Exact cross-lingual retrieval metrics (R@1/5/10, MRR, mean rank) on cosine similarity.

Query i's correct key is key i. Rank = 1 + number of *other* keys scoring at least as high as
the correct key: ties count against the system, so a degenerate space where every key is the
same vector ranks at n, not 1 (with optimistic ties a constant teacher scored R@1 = 1.0).
Duplicate strings are handled by groups, not by ties. Queries are processed in chunks, so
40k x 40k needs only chunk_size x n similarities at a time.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["ranks", "metrics_from_ranks", "retrieval_metrics", "both_directions"]


def _as_tensor(x) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x.detach()
    if t.ndim != 2:
        raise ValueError(f"expected a [n, d] matrix, got shape {tuple(t.shape)}")
    return t.float()


def ranks(queries, keys, *, key_groups=None, chunk_size: int = 1024) -> np.ndarray:
    """1-based rank of key i for query i, as int64 [n].

    ``key_groups`` (int [n]): keys in the same group as the correct key count as correct too
    (duplicate English strings), i.e. only keys of *other* groups scoring >= the true key add.
    """
    q, k = _as_tensor(queries), _as_tensor(keys)
    if q.shape != k.shape:
        raise ValueError(f"queries {tuple(q.shape)} and keys {tuple(k.shape)} must have the same shape")
    k = k.to(q.device)
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    n = q.shape[0]
    groups = None
    if key_groups is not None:
        groups = torch.as_tensor(np.asarray(key_groups), dtype=torch.int64, device=q.device).reshape(-1)
        if groups.numel() != n:
            raise ValueError(f"key_groups has {groups.numel()} entries for {n} keys")
    out = torch.empty(n, dtype=torch.int64)
    for s in range(0, n, chunk_size):
        e = min(n, s + chunk_size)
        sims = q[s:e] @ k.T  # [c, n]
        idx = torch.arange(s, e, device=q.device)
        true = sims[idx - s, idx].unsqueeze(1)
        better = sims >= true
        better[idx - s, idx] = False  # the true key itself
        if groups is not None:
            better &= groups.unsqueeze(0) != groups[idx].unsqueeze(1)
        out[s:e] = (1 + better.sum(dim=1)).cpu()
    return out.numpy()


def metrics_from_ranks(r) -> dict:
    r = np.asarray(r, dtype=np.float64)
    if r.size == 0:
        raise ValueError("no ranks to summarise")
    return {
        "r1": float((r <= 1).mean()),
        "r5": float((r <= 5).mean()),
        "r10": float((r <= 10).mean()),
        "mrr": float((1.0 / r).mean()),
        "mean_rank": float(r.mean()),
    }


def retrieval_metrics(queries, keys, *, key_groups=None, chunk_size: int = 1024) -> dict:
    """{r1, r5, r10, mrr, mean_rank} for retrieving key i with query i (cosine)."""
    return metrics_from_ranks(ranks(queries, keys, key_groups=key_groups, chunk_size=chunk_size))


def both_directions(a, b, *, a_groups=None, b_groups=None, **kw) -> dict:
    """{"src2en": a -> b, "en2src": b -> a}. ``a`` holds the source-language side, ``b`` the English side.

    Groups describe duplicate *keys*: b_groups applies to src2en, a_groups to en2src. A single
    ``key_groups`` in ``kw`` (e.g. merged pair-group ids) applies to both directions.
    """
    shared = kw.pop("key_groups", None)
    if shared is not None and (a_groups is not None or b_groups is not None):
        raise ValueError("pass either key_groups or a_groups/b_groups, not both")
    if shared is not None:
        a_groups = b_groups = shared
    return {
        "src2en": retrieval_metrics(a, b, key_groups=b_groups, **kw),
        "en2src": retrieval_metrics(b, a, key_groups=a_groups, **kw),
    }


def retrieval_report(model, pairs, progress: bool = True, with_base: bool = True, seed: int = 17) -> tuple[dict, dict]:
    """Metrics for llink, the encoder ceiling, the base decoder reading the source text, and an
    untrained projector, all on the same pairs; plus each system's src->en ranks (for plots)."""
    from ..encoders import encode_cached
    from ..prompts import PromptBuilder
    from ..projector import Projector
    from ..teacher import teacher_vectors
    from ..data.sampling import duplicate_groups

    src, en = [p.src for p in pairs], [p.en for p in pairs]
    groups = duplicate_groups(src, en)
    spec, stats = model.config.teacher_spec, model.teacher_stats
    builder = PromptBuilder(model.decoder.tokenizer, model.config.prompt_config)
    x_src = encode_cached(model.encoder, src, progress=progress)
    y_en = torch.from_numpy(teacher_vectors(model.decoder, builder, spec, en, stats, progress=progress))
    systems = {"llink": model.project(x_src)}
    x_en = encode_cached(model.encoder, en, progress=progress)
    xs, xe = torch.from_numpy(x_src), torch.from_numpy(x_en)
    ceiling = (torch.from_numpy(x_src - x_src.mean(0)), torch.from_numpy(x_en - x_en.mean(0)))
    torch.manual_seed(seed)
    rand = Projector(model.config.encoder_dim, model.config.hidden_size, **model.config.projector)
    rand.in_mean.copy_(model.projector.in_mean)
    with torch.no_grad():
        systems["random"] = rand.eval()(xs)
    if with_base:
        # The decoder reading the raw source text, pooled exactly like the teacher.
        systems["base"] = torch.from_numpy(teacher_vectors(model.decoder, builder, spec, src, stats, progress=progress, batch_size=8))
    res, rk = {}, {}
    for name, q in systems.items():
        res[name] = both_directions(q, y_en, key_groups=groups)
        rk[name] = ranks(q, y_en, key_groups=groups)
    res["encoder_ceiling"] = both_directions(*ceiling, key_groups=groups)
    rk["encoder_ceiling"] = ranks(*ceiling, key_groups=groups)
    # and plain, beside llink's plain score: each side's ratio to its own kind of ceiling
    res["encoder_ceiling_plain"] = both_directions(xs, xe, key_groups=groups)
    # The ceiling is scored centred on the evaluated set; llink scored the same way too, beside its
    # plain score. Long passages pool to one shared direction in the decoder (the UDHR paragraphs'
    # teacher vectors have a mean cosine of ~0.5, Firefox strings ~0.05), which the plain score
    # counts against llink and the ceiling's centring removes from the encoder.
    q, k = systems["llink"], y_en
    res["llink_centred"] = both_directions(q - q.mean(0), k - k.mean(0), key_groups=groups)
    order = ["llink", "llink_centred", "encoder_ceiling", "encoder_ceiling_plain", "base", "random"]
    out = {k: res[k] for k in order if k in res}
    out["teacher"] = spec.to_dict()
    out["pairs"] = len(pairs)
    return out, rk

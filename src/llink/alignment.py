"""Stage A's data and loss: what `llink align` and the teacher sweep's probes share."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: torch loads when a command runs
    import torch

    from .losses import TeacherQueue

from dataclasses import dataclass


from .data.sampling import duplicate_groups


@dataclass(frozen=True)
class StageASettings:
    """Stage A's optimiser and loss defaults: `llink align` takes its own from here, and the
    sweep's probes use them as they are, so a probe scores the teacher the recipe will train on."""

    lr: float = 1e-3
    lr_min: float = 1e-5
    warmup_steps: int = 30
    weight_decay: float = 0.05
    clip: float = 1.0
    queue_size: int = 32768
    hard_negatives: int = 256
    direction_weight: float = 0.05
    log_norm_weight: float = 0.02
    geometry_weight: float = 0.0


@dataclass
class PairTensors:
    """A split ready for Stage A: encoder vectors, teacher vectors, duplicate-group ids."""

    x: torch.Tensor
    y: torch.Tensor
    groups: torch.Tensor


def stage_a_tensors(encoder, decoder, builder, spec, pairs, stats=None, progress=True) -> tuple[PairTensors, "object"]:
    """Encode the source side, extract (cached) teachers of the English side, fit the
    normalisation's statistics if none are given (training split) and apply them."""
    import torch

    from .encoders import encode_cached
    from .teacher import cached_states, fit_stats, lengths_for, normalise

    src, en = [p.src for p in pairs], [p.en for p in pairs]
    x = encode_cached(encoder, src, progress=progress)
    raw = cached_states(decoder, builder, en, [spec.layer], [spec.pooling], progress=progress)[(spec.layer, spec.pooling)]
    lengths = lengths_for(spec, builder, en)
    if stats is None:
        stats = fit_stats(spec, raw, lengths)
    y = normalise(spec, raw, stats, lengths)
    g = duplicate_groups(src, en)
    return PairTensors(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(g)), stats


def stage_a_loss(q, y, g, queue: TeacherQueue, tau: float, cfg, x=None) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE over the (gathered) batch + queue hard negatives, plus direction and log-norm
    penalties (and, with cfg.geometry_weight and the encoder vectors x, the geometry penalty);
    then the batch's teachers join the queue. Shared by `llink align` and the sweep."""
    from .losses import direction_loss, gather_no_grad, gather_with_grad, geometry_loss, info_nce, log_norm_loss

    q_all, y_all, g_all = gather_with_grad(q), gather_no_grad(y), gather_no_grad(g)
    qv, qi = queue.get()
    nce = info_nce(q_all, y_all, tau, queue=qv if len(qv) else None, queue_ids=qi, q_ids=g_all, hard_k=cfg.hard_negatives)
    loss = nce + cfg.direction_weight * direction_loss(q, y) + cfg.log_norm_weight * log_norm_loss(q, y)
    if getattr(cfg, "geometry_weight", 0.0) > 0 and x is not None:
        loss = loss + cfg.geometry_weight * geometry_loss(q, x)
    queue.enqueue(y_all, g_all)
    return loss, nce

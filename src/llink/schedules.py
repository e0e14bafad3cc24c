"""Seeding and learning-rate schedules, shared by every training loop (recipes and sweep probes)."""

from __future__ import annotations

import math
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_at(step: int, total: int, peak: float, floor: float, warmup: int) -> float:
    """Linear warmup to peak, then cosine decay to floor."""
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * t))

"""Pieces every training recipe shares: seeding, schedules, duplicate groups, safe checkpoints."""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..cache import atomic_write
from ..errors import LlinkError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class TrainClock:
    """Training wall time of every run that led to a step: a resumed run starts from what its
    checkpoint recorded, so a reused or resumed stage reports its real cost, not ~0 s."""

    def __init__(self, before: float = 0.0):
        self.before, self.t0 = float(before), None

    def start(self) -> None:
        self.t0 = time.time()

    def seconds(self) -> float:
        return self.before + (time.time() - self.t0 if self.t0 is not None else 0.0)


def lr_at(step: int, total: int, peak: float, floor: float, warmup: int) -> float:
    """Linear warmup to peak, then cosine decay to floor."""
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * t))


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


# -- checkpoints: safetensors + JSON, never pickles ------------------------------------------
def optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    sd = opt.state_dict()
    tensors = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            tensors[f"opt.{pid}.{k}"] = v.detach().cpu().clone() if torch.is_tensor(v) else torch.tensor(v)
    return tensors, sd["param_groups"]


def optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list) -> None:
    state: dict[int, dict] = {}
    for name, v in tensors.items():
        if name.startswith("opt."):
            _, pid, k = name.split(".", 2)
            state.setdefault(int(pid), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    from safetensors.torch import save_file

    clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write(path, lambda t: save_file(clean, t, metadata={"meta": json.dumps(meta)}))


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["meta"])
            return {k: f.get_tensor(k) for k in f.keys()}, meta
    except Exception as e:  # a truncated or foreign file: say which
        raise LlinkError(f"cannot read checkpoint {path}: {e}") from None


class StaleCheckpoint(LlinkError):
    """A checkpoint written under other settings or inputs than the run asked to resume."""

    def __init__(self, message: str, path: Path):
        super().__init__(message)
        self.path = Path(path)


# Settings that say where a run writes, how often it reports and how it saves memory: they may
# differ on resume.
# Everything else changes what the run computes (a resumed run must equal an uninterrupted one).
RUN_ONLY = frozenset({"out", "resume", "progress", "cpu", "eval_every", "checkpoint_every", "eval_examples", "max_dev", "dev_data",
                      "from_stage_a", "gradient_checkpointing"})


def settings_of(cfg) -> dict:
    return json.loads(json.dumps(asdict(cfg), default=str))


def check_resumable(path: Path, meta: dict, cfg, inputs: dict) -> None:
    """Refuse to resume from a checkpoint whose settings or inputs (data, upstream artifact)
    differ from this run's, naming what changed: continuing it would silently mix two runs."""
    saved, now = meta.get("config") or {}, settings_of(cfg)
    diff = [f"{k} {saved.get(k)!r} -> {v!r}" for k, v in now.items() if k not in RUN_ONLY and saved.get(k) != v]
    diff += [f"{k} changed" for k, v in inputs.items() if (meta.get("inputs") or {}).get(k) != v]
    if diff:
        raise StaleCheckpoint(f"checkpoint {path} was written by a run with other settings or inputs ({'; '.join(diff)}): "
                              "use another --out, or drop --resume to start over", path)


def append_jsonl(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def truncate_jsonl(path: Path, max_step: int) -> None:
    """On resume, drop log rows written after the checkpoint we resume from."""
    if not path.exists():
        return
    rows = [l for l in path.read_text().splitlines() if l.strip() and json.loads(l).get("step", 0) <= max_step]
    atomic_write(path, lambda t: Path(t).write_text("".join(r + "\n" for r in rows)))

"""Stage A recipe: train the projector so projected source vectors land on the teacher vectors.

setup() loads models, data and caches; train() runs the loop (resumable, accelerate-aware);
save() writes the artifact. `llink align` is the typed function at the bottom.
"""

from __future__ import annotations

import json
import time
import inspect
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..cache import key_of
from ..errors import LlinkError
from ..losses import TeacherQueue, direction_loss, gather_no_grad, gather_with_grad, info_nce, log_norm_loss, temperature_at
from .common import (
    TrainClock,
    append_jsonl,
    check_resumable,
    duplicate_groups,
    load_checkpoint,
    lr_at,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_checkpoint,
    seed_everything,
    settings_of,
    truncate_jsonl,
)

DEFAULT_TEACHER = "layer=4,pooling=mean,norm=zscore"


def _check(cfg) -> None:
    for name in ("epochs", "batch_size", "eval_every", "checkpoint_every", "queue_size"):
        if getattr(cfg, name) < 1:
            raise LlinkError(f"--{name} must be >= 1, got {getattr(cfg, name)}")
    if not (0 < cfg.temperature_end <= cfg.temperature_start):
        raise LlinkError("temperatures must satisfy 0 < temperature_end <= temperature_start")
    if cfg.batch_size < 2:
        raise LlinkError("--batch_size must be >= 2 for in-batch negatives")


@dataclass
class PairTensors:
    """A split ready for Stage A: encoder vectors, teacher vectors, duplicate-group ids."""

    x: torch.Tensor
    y: torch.Tensor
    groups: torch.Tensor


def stage_a_tensors(encoder, decoder, builder, spec, pairs, stats=None, progress=True) -> tuple[PairTensors, "object"]:
    """Encode the source side, extract (cached) teachers of the English side, fit z-score
    statistics if none are given (training split) and apply them."""
    from ..encoders import encode_cached
    from ..teacher import TeacherStats, cached_states, normalise

    src, en = [p.src for p in pairs], [p.en for p in pairs]
    x = encode_cached(encoder, src, progress=progress)
    raw = cached_states(decoder, builder, en, [spec.layer], [spec.pooling], progress=progress)[(spec.layer, spec.pooling)]
    if spec.norm == "zscore" and stats is None:
        stats = TeacherStats.fit(raw)
    y = normalise(spec, raw, stats)
    g = duplicate_groups(src, en)
    return PairTensors(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(g)), stats


def stage_a_loss(q, y, g, queue: TeacherQueue, tau: float, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE over the (gathered) batch + queue hard negatives, plus direction and log-norm
    penalties; then the batch's teachers join the queue. Shared by `llink align` and the sweep."""
    q_all, y_all, g_all = gather_with_grad(q), gather_no_grad(y), gather_no_grad(g)
    qv, qi = queue.get()
    nce = info_nce(q_all, y_all, tau, queue=qv if len(qv) else None, queue_ids=qi, q_ids=g_all, hard_k=cfg.hard_negatives)
    loss = nce + cfg.direction_weight * direction_loss(q, y) + cfg.log_norm_weight * log_norm_loss(q, y)
    queue.enqueue(y_all, g_all)
    return loss, nce


def subsample(pairs: list, n: int | None, seed: int) -> list:
    if n is None or n >= len(pairs):
        return pairs
    idx = np.random.default_rng(seed).permutation(len(pairs))[:n]
    return [pairs[i] for i in sorted(idx)]


class AlignRecipe:
    def __init__(self, cfg):
        _check(cfg)
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.ckpt = self.out / "checkpoint.safetensors"
        self.log = self.out / "metrics.jsonl"

    # ------------------------------------------------------------------ setup
    def setup(self, encoder=None, decoder=None) -> "AlignRecipe":
        from accelerate import Accelerator

        from ..data import load_pairs
        from ..decoders import load_decoder
        from ..encoders import load_encoder
        from ..model import LLINK, LLINKConfig
        from ..prompts import PromptBuilder, PromptConfig
        from ..teacher import parse_teacher

        cfg = self.cfg
        # Without cpu=True accelerate ignores a torchrun/gloo world on a machine with no GPU.
        self.acc = Accelerator(cpu=cfg.cpu or not torch.cuda.is_available())
        seed_everything(cfg.seed)
        self.spec = parse_teacher(cfg.teacher)
        self.encoder = encoder or load_encoder(cfg.encoder, layers=cfg.encoder_layers)
        self.decoder = decoder or load_decoder(cfg.decoder)
        self.builder = PromptBuilder(self.decoder.tokenizer, PromptConfig(k=cfg.k, system=cfg.system))
        train = load_pairs("train", cfg.lang, cfg.train_data)
        dev = load_pairs("dev", cfg.lang, cfg.dev_data)
        train, dev = subsample(train, cfg.max_train, cfg.seed), subsample(dev, cfg.max_dev, cfg.seed)
        self.inputs = {"train": key_of(pairs=[(p.src, p.en) for p in train])}
        show = cfg.progress and self.acc.is_main_process
        t0 = time.time()
        self.train_t, stats = stage_a_tensors(self.encoder, self.decoder, self.builder, self.spec, train, progress=show)
        self.dev_t, _ = stage_a_tensors(self.encoder, self.decoder, self.builder, self.spec, dev, stats, progress=show)
        self.cache_seconds = time.time() - t0

        mcfg = LLINKConfig.for_models(
            cfg.encoder, self.encoder, cfg.decoder, self.decoder, teacher=self.spec.to_dict(), prompt=self.builder.cfg.to_dict(),
            projector={"hidden_mult": cfg.hidden_mult, "dropout": cfg.dropout},
        )
        self.model = LLINK(mcfg)
        self.model.set_teacher_stats(stats)
        self.model.projector.fit_centre(self.train_t.x)
        self.opt = torch.optim.AdamW(self.model.projector.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)
        self.projector, self.opt = self.acc.prepare(self.model.projector, self.opt)
        self.queue = TeacherQueue(min(cfg.queue_size, len(train)))
        world = self.acc.num_processes
        self.steps_per_epoch = max(1, len(train) // (cfg.batch_size * world))
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.step, self.clock = 0, TrainClock()
        self.out.mkdir(parents=True, exist_ok=True)
        if cfg.resume and self.ckpt.exists():
            self._restore()
        elif self.log.exists() and self.acc.is_main_process:
            self.log.unlink()  # a fresh run does not inherit an old run's curve
        return self

    # ------------------------------------------------------------------ checkpoints
    def _state(self) -> tuple[dict, dict]:
        unwrapped = self.acc.unwrap_model(self.projector)
        tensors = {f"projector.{k}": v for k, v in unwrapped.state_dict().items()}
        opt_t, groups = optimizer_to_tensors(self.opt.optimizer if hasattr(self.opt, "optimizer") else self.opt)
        tensors.update(opt_t)
        q = self.queue.state_dict()
        if q["vectors"] is not None:
            tensors["queue.vectors"], tensors["queue.ids"] = q["vectors"], q["ids"]
        tensors["rng.torch"] = torch.get_rng_state()
        meta = {"step": self.step, "ptr": int(q["ptr"]), "filled": int(q["filled"]), "param_groups": groups,
                "config": settings_of(self.cfg), "inputs": self.inputs, "teacher": self.spec.to_dict(),
                "encoder_dim": self.encoder.dim, "hidden_size": self.decoder.hidden_size, "train_seconds": self.clock.seconds()}
        return tensors, meta

    def _restore(self) -> None:
        tensors, meta = load_checkpoint(self.ckpt)
        if meta.get("encoder_dim") != self.encoder.dim or meta.get("hidden_size") != self.decoder.hidden_size:
            raise LlinkError(f"checkpoint {self.ckpt} has dimensions {meta.get('encoder_dim')}->{meta.get('hidden_size')}, the chosen models need {self.encoder.dim}->{self.decoder.hidden_size}")
        check_resumable(self.ckpt, meta, self.cfg, self.inputs)
        proj = {k[len("projector."):]: v for k, v in tensors.items() if k.startswith("projector.")}
        self.acc.unwrap_model(self.projector).load_state_dict(proj)
        optimizer_from_tensors(self.opt.optimizer if hasattr(self.opt, "optimizer") else self.opt, tensors, meta["param_groups"])
        if "queue.vectors" in tensors:
            self.queue.load_state_dict({"size": self.queue.size, "ptr": meta["ptr"], "filled": meta["filled"],
                                        "vectors": tensors["queue.vectors"], "ids": tensors["queue.ids"]})
        torch.set_rng_state(tensors["rng.torch"])
        self.step = int(meta["step"])
        self.clock = TrainClock(meta.get("train_seconds", 0.0))
        if self.acc.is_main_process:
            truncate_jsonl(self.log, self.step)
            print(f"resumed from {self.ckpt} at step {self.step}/{self.total_steps}")

    def _checkpoint(self) -> None:
        if self.acc.is_main_process:
            tensors, meta = self._state()
            save_checkpoint(self.ckpt, tensors, meta)
        self.acc.wait_for_everyone()

    # ------------------------------------------------------------------ eval
    @torch.no_grad()
    def evaluate(self) -> dict:
        from ..eval.retrieval import both_directions

        self.projector.eval()
        pred = self.acc.unwrap_model(self.projector)(self.dev_t.x.to(self.acc.device)).cpu()
        self.projector.train()
        res = both_directions(pred, self.dev_t.y, key_groups=self.dev_t.groups.numpy())
        return {"dev_r1": res["km2en"]["r1"], "dev_mrr": res["km2en"]["mrr"], "dev_r1_en2km": res["en2km"]["r1"]}

    # ------------------------------------------------------------------ train
    def train(self) -> dict:
        cfg, acc = self.cfg, self.acc
        n = len(self.train_t.x)
        rank, world = acc.process_index, acc.num_processes
        bar = tqdm(total=self.total_steps, initial=self.step, desc="stage A", unit="step", disable=not (cfg.progress and acc.is_main_process))
        self.projector.train()
        self.clock.start()
        last = {}
        self.resumed_from_step = self.step
        while self.step < self.total_steps:
            epoch, within = divmod(self.step, self.steps_per_epoch)
            # The permutation depends only on (seed, epoch): a resumed run sees the same batches.
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch))
            lo = (within * world + rank) * cfg.batch_size
            idx = perm[lo : lo + cfg.batch_size]
            x, y, g = (t[idx].to(acc.device) for t in (self.train_t.x, self.train_t.y, self.train_t.groups))
            for group in self.opt.param_groups:
                group["lr"] = lr_at(self.step, self.total_steps, cfg.lr, cfg.lr_min, cfg.warmup_steps)
            tau = temperature_at(self.step, self.total_steps, cfg.temperature_start, cfg.temperature_end)
            loss, loss_nce = stage_a_loss(self.projector(x), y, g, self.queue, tau, cfg)
            self.opt.zero_grad(set_to_none=True)
            acc.backward(loss)
            acc.clip_grad_norm_(self.projector.parameters(), cfg.clip)
            self.opt.step()
            self.step += 1
            bar.update(1)
            row = {"step": self.step, "epoch": epoch, "loss": loss.item(), "nce": loss_nce.item(), "tau": tau, "lr": self.opt.param_groups[0]["lr"]}
            if self.step % cfg.eval_every == 0 or self.step == self.total_steps:
                row.update(self.evaluate())
                last = row
                bar.set_postfix(loss=f"{row['loss']:.3f}", dev_r1=f"{row['dev_r1']:.3f}")
            if acc.is_main_process:
                append_jsonl(self.log, row)
            if self.step % cfg.checkpoint_every == 0 or self.step == self.total_steps:
                self._checkpoint()
        bar.close()
        self.train_seconds = self.clock.seconds()
        return last or self.evaluate()

    # ------------------------------------------------------------------ save
    def save(self) -> Path:
        art = self.out / "llink"
        if self.acc.is_main_process:
            self.model.projector.load_state_dict(self.acc.unwrap_model(self.projector).state_dict())
            self.model.save_pretrained(art)
            from ..eval.plots import training_curve

            training_curve(self.log, self.out / "curve.png", title=f"Stage A, teacher {self.spec}")
        self.acc.wait_for_everyone()
        return art


def align(
    out: Path = Path("runs/align"),
    encoder: str = "e5-small",
    encoder_layers: list[int] | None = None,
    decoder: str = "smollm2-135m",
    teacher: str = DEFAULT_TEACHER,
    lang: str = "km",
    train_data: Path | None = None,
    dev_data: Path | None = None,
    max_train: int | None = None,
    max_dev: int | None = 1000,
    epochs: int = 20,
    batch_size: int = 256,
    lr: float = 1e-3,
    lr_min: float = 1e-5,
    warmup_steps: int = 30,
    weight_decay: float = 0.05,
    clip: float = 1.0,
    temperature_start: float = 0.05,
    temperature_end: float = 0.01,
    queue_size: int = 32768,
    hard_negatives: int = 256,
    direction_weight: float = 0.05,
    log_norm_weight: float = 0.02,
    hidden_mult: int = 4,
    dropout: float = 0.1,
    k: int = 8,
    system: str | None = "You are a helpful assistant.",
    eval_every: int = 100,
    checkpoint_every: int = 100,
    seed: int = 17,
    resume: bool = False,
    cpu: bool = False,
    progress: bool = True,
) -> None:
    """Stage A: train the contrastive projector (encoder vector -> decoder teacher space).

    Args:
        out: run directory (checkpoint, metrics.jsonl, curve.png, and the artifact in out/llink).
        encoder: bundled 'e5-small' or a Hugging Face encoder id/path (e.g. xlm-roberta-base).
        encoder_layers: encoder layers to read (0 = embeddings), each mean-pooled and normalised, then
            concatenated, e.g. [4, 8, 12]; unset reads the final layer only.
        decoder: bundled 'smollm2-135m' or a Hugging Face causal LM id/path.
        teacher: 'paper' (final layer, placeholder, no norm) or 'layer=N,pooling=mean|placeholder,norm=none|zscore'.
        lang: language of the committed corpus (data/en-<lang>).
        train_data: any TSV/JSONL of (source, english) pairs instead of the train split.
        dev_data: any TSV/JSONL of pairs instead of the dev split (used for periodic retrieval).
        max_train: use at most this many training pairs (seeded subset).
        max_dev: use at most this many dev pairs.
        epochs: passes over the training pairs.
        batch_size: pairs per step and process (in-batch negatives; gathered across processes).
        lr: peak learning rate (AdamW, betas 0.9/0.98).
        lr_min: final learning rate of the cosine schedule.
        warmup_steps: linear warmup steps.
        weight_decay: AdamW weight decay.
        clip: gradient-norm clipping.
        temperature_start: InfoNCE temperature at step 0 (cosine-annealed).
        temperature_end: InfoNCE temperature at the last step.
        queue_size: teacher-vector queue (fp16), capped at the number of training pairs.
        hard_negatives: per-query top-k queue negatives kept in the loss.
        direction_weight: weight of the (1 - cosine) penalty.
        log_norm_weight: weight of the log-norm penalty.
        hidden_mult: projector hidden width as a multiple of the encoder dimension.
        dropout: projector dropout.
        k: slots the artifact's prompt will reserve (saved for Stage B).
        system: system prompt of the chat template (None keeps the template default).
        eval_every: steps between dev retrieval evaluations.
        checkpoint_every: steps between atomic checkpoints.
        seed: seed for sampling, initialisation and batch order.
        resume: continue from out/checkpoint.safetensors if present.
        cpu: force CPU even when a GPU is present.
        progress: show progress bars.
    """
    recipe = AlignRecipe(AlignConfig(**locals())).setup()
    final = recipe.train()
    art = recipe.save()
    if recipe.acc.is_main_process:
        summary = {"artifact": str(art), "steps": recipe.total_steps, "resumed_from_step": recipe.resumed_from_step,
                   "train_pairs": len(recipe.train_t.x), "cache_seconds": round(recipe.cache_seconds, 1), "train_seconds": round(recipe.train_seconds, 3), **final}
        (Path(out) / "summary.json").write_text(json.dumps(summary, indent=2))
        print(json.dumps(summary, indent=2))


# The function's signature is the config (litgpt style): the recipe class reads the same fields,
# so a default lives in exactly one place.
AlignConfig = make_dataclass(
    "AlignConfig",
    [(n, p.annotation, field(default=p.default)) for n, p in inspect.signature(align).parameters.items()],
)

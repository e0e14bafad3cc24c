"""Stage A recipe: train the projector so projected source vectors land on the teacher vectors.

setup() loads models, data and caches; train() runs the loop (resumable, accelerate-aware);
save() writes the artifact once. `llink align` is the typed function at the bottom.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
import time
from pathlib import Path

from llink.alignment import StageASettings
from llink.data.languages import after_mixture, load_dev_languages, load_languages, parse_langs
from llink.data.mixture import mix
from llink.data.passages import training_passages
from llink.errors import LlinkError

from ..args import CorpusArgs, EnglishArgs, RunArgs, command, opt
from .common import (
    artifact_is_current,
    check_english,
    check_passages,
    TrainClock,
    append_jsonl,
    check_resumable,
    no_grad,
    load_checkpoint,
    optimizer_from_tensors,
    optimizer_to_tensors,
    prepare_out,
    resume_progress,
    save_checkpoint,
    settings_of,
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
    check_passages(cfg.passages, cfg.lang)
    check_english(cfg.english_share, cfg.english_data)
    if cfg.english_offset not in OFFSETS:
        raise LlinkError(f"--english_offset must be one of {', '.join(OFFSETS)}, got {cfg.english_offset!r}")
    if cfg.english_offset != "none" and not 0 < cfg.english_share < 1:
        raise LlinkError("--english_offset needs both parallel pairs and English-only examples (0 < --english_share < 1), "
                         f"got --english_share {cfg.english_share}")


class AlignRecipe:
    def __init__(self, cfg):
        _check(cfg)
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.ckpt = self.out / "checkpoint.safetensors"
        self.log = self.out / "metrics.jsonl"
        prepare_out(self.out)  # a bad --out fails now, before any model loads

    # ------------------------------------------------------------------ setup
    def setup(self, encoder=None, decoder=None) -> "AlignRecipe":
        from llink.losses import TeacherQueue
        from llink.schedules import seed_everything
        from llink.alignment import stage_a_tensors
        import torch

        from accelerate import Accelerator

        from llink.decoders import load_decoder
        from llink.encoders import check_readable, load_encoder
        from llink.lineage import content_key, run_key
        from llink.model import LLINK, LLINKConfig
        from llink.prompts import PromptBuilder, PromptConfig
        from llink.teacher import TeacherStats, parse_teacher

        cfg = self.cfg
        # Without cpu=True accelerate ignores a torchrun/gloo world on a machine with no GPU.
        self.acc = Accelerator(cpu=cfg.cpu or not torch.cuda.is_available())
        seed_everything(cfg.seed)
        self.spec = parse_teacher(cfg.teacher)
        self.encoder = encoder or load_encoder(cfg.encoder, layers=cfg.encoder_layers)
        self.decoder = decoder or load_decoder(cfg.decoder)
        self.builder = PromptBuilder(self.decoder.tokenizer, PromptConfig(k=cfg.k, system=cfg.system))
        self.langs = parse_langs(cfg.lang)
        train, tags, self.languages = load_languages("train", self.langs, cfg.train_data, cfg.max_train, cfg.seed)
        for lang in self.langs:
            check_readable(self.encoder, [p.src for p, t in zip(train, tags) if t == lang], lang)
        dev, self.dev_langs = load_dev_languages(self.langs, cfg.dev_data, cfg.max_dev, cfg.seed)
        # Whole passages of the train split, foreign paragraph -> teacher of its English paragraph:
        # the sentence pairs alone never show the projector a multi-sentence input.
        passages = training_passages(train, cfg.passages, cfg.seed, where=str(cfg.train_data or "the train split"))
        train = train + passages
        train, self.mixture = mix(train, cfg.english_share, cfg.seed, cfg.english_data)
        if passages:
            self.mixture["passages"] = len(passages)
        self.languages = after_mixture(self.languages, self.mixture)
        # dev is scored, never trained on: it is not part of the key
        self.inputs = {"train": content_key([(p.src, p.en) for p in train])}
        models = {"encoder": self.encoder.id, "encoder_layers": getattr(self.encoder, "layers", None), "decoder": self.decoder.id,
                  "template": self.decoder.chat_template}
        self.key, self.key_parts = run_key("stage_a", settings_of(cfg), self.inputs, models, tags=("teacher", "readout", "batching"))
        # The teacher statistics a run trained with live in its checkpoint: a resumed or reused
        # run takes them from there, never refits them from caches whose rows may differ by ~1e-7.
        self.saved = None
        if cfg.resume and self.ckpt.exists():
            self.saved = load_checkpoint(self.ckpt)
            check_resumable(self.ckpt, self.saved[1], self.key, self.key_parts)
        saved_stats = None
        if self.saved is not None and "teacher.mean" in self.saved[0]:
            slope = self.saved[0]["teacher.slope"].numpy() if "teacher.slope" in self.saved[0] else None
            saved_stats = TeacherStats(self.saved[0]["teacher.mean"].numpy(), self.saved[0]["teacher.std"].numpy(), slope)
        show = cfg.progress and self.acc.is_main_process
        t0 = time.time()
        self.train_t, stats = stage_a_tensors(self.encoder, self.decoder, self.builder, self.spec, train, saved_stats, progress=show)
        self.dev_t, _ = stage_a_tensors(self.encoder, self.decoder, self.builder, self.spec, dev, stats, progress=show)
        if cfg.english_offset != "none":
            self.mixture["english_offset"] = shift_english(self.encoder, train, self.train_t.x, cfg.english_offset, progress=show)
        self.cache_seconds = time.time() - t0

        mcfg = LLINKConfig.for_models(
            cfg.encoder, self.encoder, cfg.decoder, self.decoder, teacher=self.spec.to_dict(), prompt=self.builder.cfg.to_dict(),
            projector={"hidden_mult": cfg.hidden_mult, "dropout": cfg.dropout}, run_key=self.key, mixture={"stage_a": self.mixture},
            languages={"stage_a": self.languages} if self.languages else None,
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
        if self.saved is not None:
            self._restore(*self.saved)
        elif self.log.exists() and self.acc.is_main_process:
            self.log.unlink()  # a fresh run does not inherit an old run's curve
        return self

    # ------------------------------------------------------------------ checkpoints
    def _state(self) -> tuple[dict, dict]:
        import torch

        unwrapped = self.acc.unwrap_model(self.projector)
        tensors = {f"projector.{k}": v for k, v in unwrapped.state_dict().items()}
        opt_t, groups = optimizer_to_tensors(self.opt.optimizer if hasattr(self.opt, "optimizer") else self.opt)
        tensors.update(opt_t)
        q = self.queue.state_dict()
        if q["vectors"] is not None:
            tensors["queue.vectors"], tensors["queue.ids"] = q["vectors"], q["ids"]
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["teacher.mean"], tensors["teacher.std"] = self.model.teacher_mean.clone(), self.model.teacher_std.clone()
        if hasattr(self.model, "teacher_slope"):
            tensors["teacher.slope"] = self.model.teacher_slope.clone()
        meta = {"step": self.step, "ptr": int(q["ptr"]), "filled": int(q["filled"]), "param_groups": groups,
                "run_key": self.key, "key_parts": self.key_parts, "teacher": self.spec.to_dict(),
                "encoder_dim": self.encoder.dim, "hidden_size": self.decoder.hidden_size, "train_seconds": self.clock.seconds()}
        return tensors, meta

    def _restore(self, tensors: dict, meta: dict) -> None:
        import torch

        proj = {k[len("projector."):]: v for k, v in tensors.items() if k.startswith("projector.")}
        self.acc.unwrap_model(self.projector).load_state_dict(proj)
        optimizer_from_tensors(self.opt.optimizer if hasattr(self.opt, "optimizer") else self.opt, tensors, meta["param_groups"])
        if "queue.vectors" in tensors:
            self.queue.load_state_dict({"size": self.queue.size, "ptr": meta["ptr"], "filled": meta["filled"],
                                        "vectors": tensors["queue.vectors"], "ids": tensors["queue.ids"]})
        torch.set_rng_state(tensors["rng.torch"])
        resume_progress(self, meta)

    def _checkpoint(self) -> None:
        if self.acc.is_main_process:
            tensors, meta = self._state()
            self.recorded_seconds = meta["train_seconds"]
            save_checkpoint(self.ckpt, tensors, meta)
        self.acc.wait_for_everyone()

    # ------------------------------------------------------------------ eval
    @no_grad
    def evaluate(self) -> dict:
        from llink.eval.retrieval import both_directions

        self.projector.eval()
        pred = self.acc.unwrap_model(self.projector)(self.dev_t.x.to(self.acc.device)).cpu()
        self.projector.train()
        groups = self.dev_t.groups.numpy()
        # Each language is ranked among its own dev set, the figure its single-language run reports;
        # with several, dev_r1 (what the run is chosen on) is their mean, each language counting once.
        per = {}
        for lang in self.langs:
            rows = [i for i, t in enumerate(self.dev_langs) if t == lang]
            per[lang] = both_directions(pred[rows], self.dev_t.y[rows], key_groups=groups[rows])
        mean = lambda d, m: sum(r[d][m] for r in per.values()) / len(per)  # noqa: E731
        row = {"dev_r1": mean("src2en", "r1"), "dev_mrr": mean("src2en", "mrr"), "dev_r1_en2src": mean("en2src", "r1")}
        if len(self.langs) > 1:
            row.update({f"dev_r1_{lang}": r["src2en"]["r1"] for lang, r in per.items()})
        return row

    # ------------------------------------------------------------------ train
    def train(self) -> dict:
        from llink.schedules import lr_at
        from llink.alignment import stage_a_loss
        from llink.losses import temperature_at
        import torch
        from tqdm.auto import tqdm

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
            loss, loss_nce = stage_a_loss(self.projector(x), y, g, self.queue, tau, cfg, x=x)
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
        # what the last checkpoint recorded: a rerun that reuses this stage reports the same
        self.train_seconds = getattr(self, "recorded_seconds", self.clock.seconds())
        return last or self.evaluate()

    # ------------------------------------------------------------------ save
    def save(self) -> Path:
        """Write the artifact, once: a run that trained nothing leaves the one its key made."""
        art = self.out / "llink"
        if self.acc.is_main_process and not artifact_is_current(self, art):
            self.model.projector.load_state_dict(self.acc.unwrap_model(self.projector).state_dict())
            self.model.save_pretrained(art)
            from llink.eval.plots import training_curve

            training_curve(self.log, self.out / "curve.png", title=f"Stage A, teacher {self.spec}")
        self.acc.wait_for_everyone()
        return art


OFFSETS = ("none", "mean", "procrustes")


def shift_english(encoder, train, x, how: str, progress=False) -> dict:
    """Move the English-only examples' encoder vectors, in place, to where the parallel pairs
    say the same text arrives in the foreign language: by the mean offset between the pairs'
    English and foreign sides (`mean`), or also rotated by the orthogonal map fitted between
    them (`procrustes`). The projector then learns English paragraphs where foreign paragraphs
    will arrive. Returns what was fitted, for the mixture record."""
    import torch

    from llink.data.mixture import SOURCE
    from llink.encoders import encode_cached

    only = torch.tensor([p.source == SOURCE for p in train])
    par = [p for p in train if p.source != SOURCE]
    if not only.any() or not par:
        raise LlinkError("--english_offset needs both parallel pairs and English-only examples (0 < --english_share < 1)")
    en = torch.from_numpy(encode_cached(encoder, [p.en for p in par], progress=progress)).double()
    src = x[~only].double()
    mu_en, mu_src = en.mean(0), src.mean(0)
    moved = x[only].double() - mu_en
    if how == "procrustes":
        u, _, vt = torch.linalg.svd((en - mu_en).T @ (src - mu_src))
        moved = moved @ (u @ vt)
    x[only] = (moved + mu_src).to(x.dtype)
    return {"how": how, "offset_norm": round(float((mu_en - mu_src).norm()), 4)}


@dataclass
class AlignArgs:
    out: Path = opt(Path("runs/align"), "run directory (checkpoint, metrics.jsonl, curve.png, and the artifact in out/llink).", run_only=True)
    encoder: str = opt("e5-small", "bundled 'e5-small' or a Hugging Face encoder id/path (e.g. xlm-roberta-base).")
    encoder_layers: list[int] | None = opt(None, "encoder layers to read (0 = embeddings), each mean-pooled and normalised, then concatenated, e.g. [4, 8, 12]; unset reads the final layer only.")
    decoder: str = opt("smollm2-135m", "bundled 'smollm2-135m' or a Hugging Face causal LM id/path.")
    teacher: str = opt(DEFAULT_TEACHER, "'paper' (final layer, placeholder, no norm) or 'layer=N,pooling=mean|placeholder,norm=none|zscore|zscore_length'.")
    max_train: int | None = opt(None, "use at most this many training pairs (seeded subset; with several --lang, split evenly among them).")
    max_dev: int | None = opt(1000, "use at most this many dev pairs (per language).", run_only=True)
    epochs: int = opt(20, "passes over the training pairs.")
    batch_size: int = opt(256, "pairs per step and process (in-batch negatives; gathered across processes).")
    lr: float = opt(StageASettings.lr, "peak learning rate (AdamW, betas 0.9/0.98).")
    lr_min: float = opt(StageASettings.lr_min, "final learning rate of the cosine schedule.")
    warmup_steps: int = opt(StageASettings.warmup_steps, "linear warmup steps.")
    weight_decay: float = opt(StageASettings.weight_decay, "AdamW weight decay.")
    clip: float = opt(StageASettings.clip, "gradient-norm clipping.")
    temperature_start: float = opt(0.05, "InfoNCE temperature at step 0 (cosine-annealed).")
    temperature_end: float = opt(0.01, "InfoNCE temperature at the last step.")
    queue_size: int = opt(StageASettings.queue_size, "teacher-vector queue (fp16), capped at the number of training pairs.")
    hard_negatives: int = opt(StageASettings.hard_negatives, "per-query top-k queue negatives kept in the loss.")
    direction_weight: float = opt(StageASettings.direction_weight, "weight of the (1 - cosine) penalty.")
    log_norm_weight: float = opt(StageASettings.log_norm_weight, "weight of the log-norm penalty.")
    geometry_weight: float = opt(StageASettings.geometry_weight, "weight of the geometry penalty: the batch's (centred) cosine "
                                 "similarities after the projector kept close to the encoder's, so neighbourhoods the encoder "
                                 "knows out of the training domain survive (0: off).", keyed_when=lambda cfg: cfg.geometry_weight > 0)
    passages: int = opt(0, "train passages (2-6 consecutive sentences of one help file, built like test_passages) added whole "
                           "to the sentence pairs, so the projector sees paragraph-length inputs; needs `help:<file>#<id>` provenance.",
                        keyed_when=lambda cfg: cfg.passages > 0)
    english_offset: str = opt("none", "where the English-only examples' encoder vectors are put before the projector: 'none' as "
                                      "read; 'mean' moved by the parallel pairs' language offset (mean foreign side minus mean English "
                                      "side); 'procrustes' also rotated by the orthogonal map fitted from the pairs' English to foreign sides.",
                              keyed_when=lambda cfg: cfg.english_offset != "none")
    hidden_mult: int = opt(4, "projector hidden width as a multiple of the encoder dimension.")
    dropout: float = opt(0.1, "projector dropout.")
    k: int = opt(8, "slots the artifact's prompt will reserve (saved for Stage B).")
    system: str | None = opt("You are a helpful assistant.", "system prompt of the chat template (None keeps the template default).")
    eval_every: int = opt(100, "steps between dev retrieval evaluations.", run_only=True)
    checkpoint_every: int = opt(100, "steps between atomic checkpoints.", run_only=True)
    seed: int = opt(17, "seed for sampling, initialisation and batch order.")


def _run_align(cfg) -> None:
    recipe = AlignRecipe(cfg).setup()
    final = recipe.train()
    art = recipe.save()
    if recipe.acc.is_main_process:
        summary = {"artifact": str(art), "run_key": recipe.key, "steps": recipe.total_steps, "resumed_from_step": recipe.resumed_from_step,
                   "train_pairs": len(recipe.train_t.x), "languages": recipe.languages, "mixture": recipe.mixture, "cache_seconds": round(recipe.cache_seconds, 1), "train_seconds": round(recipe.train_seconds, 3), **final}
        (Path(cfg.out) / "summary.json").write_text(json.dumps(summary, indent=2))
        print(json.dumps(summary, indent=2))


align, AlignConfig = command(
    "align", _run_align, "Stage A: train the contrastive projector (encoder vector -> decoder teacher space).",
    AlignArgs, CorpusArgs, EnglishArgs, RunArgs)

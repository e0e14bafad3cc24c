"""What Stage B (`llink slots`) and the direct finetune (`llink finetune-direct`) share: the same
examples, LoRA budget, batches, schedule, checkpoints and dev scoring. Each mode is its own
subclass (recipes/slots.py, recipes/direct.py) and fills in the hooks marked below.

setup() loads models, data and caches; train() is the resumable loop; save() writes the artifact
once; run() does all three and writes usage.json and summary.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from llink.errors import LlinkError

from .common import (
    artifact_is_current,
    check_english,
    check_passages,
    no_grad,
    TrainClock,
    append_jsonl,
    check_resumable,
    load_checkpoint,
    optimizer_from_tensors,
    optimizer_to_tensors,
    prepare_out,
    resume_progress,
    save_checkpoint,
    settings_of,
)


def lora_config(cfg) -> dict:
    """The LoRA settings as the artifact stores them and `Decoder.add_lora` takes them."""
    return {"r": cfg.lora_r, "alpha": cfg.lora_alpha, "dropout": cfg.lora_dropout, "targets": cfg.lora_targets.split(",")}


def activation_checkpointing(model, on: bool) -> None:
    """Non-reentrant: the frozen embeddings give inputs without grad, and it restores the RNG
    state, so LoRA dropout masks, and thus the weights, match a run without it."""
    name = "activation" if hasattr(model, "activation_checkpointing_enable") else "gradient"  # newer transformers renamed it
    if on:
        getattr(model, f"{name}_checkpointing_enable")(**{f"{name}_checkpointing_kwargs": {"use_reentrant": False}})
    else:
        getattr(model, f"{name}_checkpointing_disable")()


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list:
    """Length-bucketed batches in an order fixed by (seed, epoch), so a resumed run sees the
    same ones: shuffle, sort windows of 50 batches by length, then shuffle the batches.
    Similar lengths pad little, which on a CPU is most of the speed."""
    import torch

    g = torch.Generator().manual_seed(seed * 1000 + epoch)
    perm = torch.randperm(len(lengths), generator=g).tolist()
    window = batch_size * 50
    batches = []
    for s in range(0, len(perm), window):
        part = sorted(perm[s : s + window], key=lambda i: lengths[i])
        batches += [torch.tensor(part[j : j + batch_size]) for j in range(0, len(part) - batch_size + 1, batch_size)]
    order = torch.randperm(len(batches), generator=g).tolist()
    return [batches[i] for i in order]


def check_settings(cfg) -> None:
    from llink.precision import CHOICES

    for name in ("steps", "batch_size", "eval_every", "checkpoint_every", "lora_r", "usage_every", "max_dev"):
        if hasattr(cfg, name) and getattr(cfg, name) < 1:
            raise LlinkError(f"--{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.precision not in CHOICES:
        raise LlinkError(f"--precision must be one of {', '.join(CHOICES)}, got {cfg.precision!r}")
    if cfg.checkpoint_above_tokens is not None and cfg.checkpoint_above_tokens < 1:
        raise LlinkError(f"--checkpoint_above_tokens must be >= 1 (or null), got {cfg.checkpoint_above_tokens}")
    # the examples' settings, refused here, before any model loads
    check_passages(cfg.passages, cfg.lang)
    check_english(cfg.english_share, cfg.english_data)
    if cfg.passage_answer_tokens is not None and cfg.passage_answer_tokens < 1:
        raise LlinkError(f"--passage_answer_tokens {cfg.passage_answer_tokens}: must be >= 1 (or null for --max_answer_tokens)")
    if cfg.passage_answer_tokens is not None and not cfg.passages:
        raise LlinkError(f"--passage_answer_tokens {cfg.passage_answer_tokens}: needs --passages N > 0 (it caps only their answers)")
    if cfg.english_answer_tokens is not None and cfg.english_answer_tokens < 1:
        raise LlinkError(f"--english_answer_tokens {cfg.english_answer_tokens}: must be >= 1 (or null for --max_answer_tokens)")
    if cfg.english_answer_tokens is not None and not cfg.english_share > 0:
        raise LlinkError(f"--english_answer_tokens {cfg.english_answer_tokens}: needs --english_share > 0 "
                         "(it caps only the English-only examples' answers)")
    if cfg.data is not None and cfg.passages:
        raise LlinkError("--passages adds train passages while the examples are made; with --data they are made already "
                         "(build them with `llink synth --passages N`): drop --data or --passages")
    if cfg.data is not None and cfg.english_share > 0:
        raise LlinkError("--english_share mixes English texts into the train pairs before the examples are made; with --data "
                         "the examples are made already: drop --data (they are synthesised and cached here) or --english_share")


class LoRARecipe:
    stage = ""  # the lineage tag and checkpoint mode: "stage_b" or "direct"
    artifact_dir = ""

    def __init__(self, cfg):
        check_settings(cfg)
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.ckpt = self.out / "checkpoint.safetensors"
        self.log = self.out / "metrics.jsonl"
        prepare_out(self.out)  # a bad --out fails now, before any model loads

    # ------------------------------------------------------------------ hooks
    def load_models(self, encoder, decoder) -> None:
        """Set self.decoder and self.builder (and whatever else the mode reads)."""
        raise NotImplementedError

    def passage(self, src: str) -> str | None:
        """What the prompt holds in place of the foreign text (None: slots)."""
        raise NotImplementedError

    def prompt_kwargs(self, srcs: list[str], english: list[bool] | None = None) -> list[dict]:
        """Per foreign text, what else its prompt takes (Stage B: its K and hints). `english` marks
        the English-only examples, whose foreign side is their English text."""
        return [{} for _ in srcs]

    def models_and_upstream(self) -> tuple[dict, str | None]:
        raise NotImplementedError

    def prepare_inputs(self, show: bool) -> None:
        """Anything beyond the tokenised prompts (encoder vectors, initialisation)."""

    def param_groups(self) -> list[dict]:
        raise NotImplementedError

    def step_loss(self, batch: dict, idx, row: dict):
        raise NotImplementedError

    def dev_inputs(self, n: int) -> dict:
        """What each dev score feeds the decoder: {name: slots for the first n dev texts, or None
        for the prompt as it is, or (slots, prompts) when the feed brings its own prompts}."""
        raise NotImplementedError

    @no_grad
    def usage(self, limit: int | None = None) -> dict:
        """Mean dev answer loss (nats/token) for each of dev_inputs' feeds."""
        import torch

        n = len(self.dev_enc) if limit is None else min(limit, len(self.dev_enc))
        trained = [m for m in (self.decoder.model, getattr(self, "model", None)) if m is not None]
        was = [m.training for m in trained]
        for m in trained:
            m.eval()
        res: dict[str, list] = {}
        with self.decoder.adapter(self.adapter), self.autocast():
            feeds = self.dev_inputs(n)
            bs = self.cfg.batch_size
            own = [self.batch(self.dev_enc[s : s + bs]) for s in range(0, n, bs)]
            for name, feed in feeds.items():
                slots, enc = feed if isinstance(feed, tuple) else (feed, None)
                for j, s in enumerate(range(0, n, bs)):
                    b = own[j] if enc is None else self.batch(enc[s : s + bs])
                    res.setdefault(name, []).append(self.answer_losses(b, None if slots is None else slots[s : s + bs]))
        for m, w in zip(trained, was):
            m.train(w)
        return {k: round(float(torch.cat(v).mean()), 4) for k, v in res.items()}

    def write_artifact(self, path: Path) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ setup
    def setup(self, encoder=None, decoder=None):
        import numpy as np
        from llink.schedules import seed_everything
        import torch

        from accelerate import Accelerator

        from llink.data.languages import after_mixture, load_dev_languages, load_languages, parse_langs
        from llink.data.mixture import mix
        from llink.data.passages import training_passages
        from llink.data.synth import LocalGenerator, eligible, read_examples, synthesize
        from llink.lineage import content_key, run_key
        from llink.precision import resolve_precision

        cfg = self.cfg
        self.acc = Accelerator(cpu=cfg.cpu or not torch.cuda.is_available())
        self.precision = resolve_precision(cfg.precision, self.acc.device.type)
        seed_everything(cfg.seed)
        show = cfg.progress and self.acc.is_main_process
        t0 = time.time()
        self.load_models(encoder, decoder)
        self.mixture = None
        langs = parse_langs(cfg.lang)
        self.passages_used, passage_srcs = 0, set()
        self.languages = None  # examples from --data or a --train_data file: their language is not known here
        if cfg.data is not None:
            data = Path(cfg.data)
            self.examples = read_examples(data / "train.jsonl" if data.is_dir() else data)
        else:
            gen = LocalGenerator(self.decoder, max_new_tokens=cfg.synth_max_new_tokens)
            train, _, self.languages = load_languages("train", langs, cfg.train_data, None, cfg.seed)
            pairs, self.mixture = mix(train, cfg.english_share, cfg.seed, cfg.english_data)
            self.languages = after_mixture(self.languages, self.mixture)
            passages = training_passages(train, cfg.passages, cfg.seed, where=str(cfg.train_data or "the train split"))
            self.examples = synthesize(pairs, gen, cfg.tasks.split(","), per_task=cfg.per_task, max_translate=cfg.max_translate,
                                       seed=cfg.seed, progress=show, passages=passages)
            self.passages_used = len(passages)
            passage_srcs = {p.src for p in passages}
        dev_pairs = eligible(load_dev_languages(langs, cfg.dev_data, None, cfg.seed)[0])
        dev_pairs = [dev_pairs[i] for i in sorted(np.random.default_rng(cfg.seed).permutation(len(dev_pairs))[: cfg.max_dev])]
        self.dev = [(p.src, "Translate to English.", p.en) for p in dev_pairs]
        self.data_seconds = time.time() - t0
        if cfg.max_answer_tokens or cfg.passage_answer_tokens or cfg.english_answer_tokens:
            tok = self.decoder.tokenizer
            passage_cap = cfg.passage_answer_tokens or cfg.max_answer_tokens
            english_cap = cfg.english_answer_tokens or cfg.max_answer_tokens
            caps = [passage_cap if e.src in passage_srcs else english_cap if e.src == e.en else cfg.max_answer_tokens
                    for e in self.examples]
            keep = [not cap or len(tok(e.answer, add_special_tokens=False)["input_ids"]) <= cap
                    for e, cap in zip(self.examples, caps)]
            self.dropped_long = len(keep) - sum(keep)
            self.passages_used = len({e.src for e, k in zip(self.examples, keep) if k and e.src in passage_srcs})
            self.examples = [e for e, k in zip(self.examples, keep) if k]
            if not self.examples:
                raise LlinkError(f"no training example has an answer of <= {cfg.max_answer_tokens} tokens")
        rows = [(e.src, e.instruction, e.answer) for e in self.examples]
        # The examples' content, not their file: the same examples from a cache or a file are one input.
        self.inputs = {"examples": content_key(rows)}
        models, upstream = self.models_and_upstream()
        self.key, self.key_parts = run_key(self.stage, settings_of(cfg), self.inputs, models, upstream=upstream)
        self.saved = load_checkpoint(self.ckpt) if cfg.resume and self.ckpt.exists() else None
        if self.saved is not None:
            check_resumable(self.ckpt, self.saved[1], self.key, self.key_parts)
        # An example whose foreign side is its English text is English-only (issue 26), whether
        # mixed in here or read from a file: its hints must not hand it its own words.
        self.train_kw = self.prompt_kwargs([s for s, _, _ in rows], [e.src == e.en for e in self.examples])
        self.dev_kw = self.prompt_kwargs([s for s, _, _ in self.dev])
        self.train_enc = [self.builder.chat(i, self.passage(s), a, **kw) for (s, i, a), kw in zip(rows, self.train_kw)]
        self.dev_enc = [self.builder.chat(i, self.passage(s), a, **kw) for (s, i, a), kw in zip(self.dev, self.dev_kw)]
        self.prepare_inputs(show)
        self.groups = self.param_groups()
        self.params = [p for g in self.groups for p in g["params"]]
        for p in self.params:
            p.requires_grad_(True)
        for g in self.groups:
            g["peak"] = g["lr"]
        self.opt = torch.optim.AdamW(self.groups, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)
        self.total_steps = cfg.steps
        self.per_epoch = max(1, len(self.train_enc) // (cfg.batch_size * self.acc.num_processes))
        self.step, self.clock = 0, TrainClock()
        if self.saved is not None:
            self._restore(*self.saved)
        elif self.log.exists() and self.acc.is_main_process:
            self.log.unlink()
        return self

    # ------------------------------------------------------------------ compute
    def autocast(self):
        import torch

        return torch.autocast(self.acc.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def batch(self, enc: list) -> dict:
        from llink.prompts import pad_batch

        return {k: v.to(self.acc.device) for k, v in pad_batch(enc, self.decoder.tokenizer.pad_token_id, multiple=16).items()}

    def answer_losses(self, batch: dict, slots):
        from llink.losses import answer_loss
        from llink.slots import inject

        emb = self.decoder.embeddings(batch["input_ids"])
        if slots is not None:
            emb = inject(emb, batch["slot_mask"], slots)
        return answer_loss(self.decoder, emb, batch["attention_mask"], batch["labels"])

    def scored_usage(self, path: Path) -> dict:
        """`usage()` on the whole dev set, written to `path` under this run's key: a rerun of the
        same run (same key, so the same weights) reads it back instead (~1.5 min on a CPU)."""
        from llink.cache import atomic_write, read_keyed
        from llink.lineage import digest, version

        from llink.lineage import content_key

        key = digest({"run": self.key, "dev": content_key(self.dev), "usage": version("usage")})
        old = read_keyed(path, key)
        if old is not None and self.resumed_from_step == self.total_steps:
            return old
        usage = self.usage()
        usage.update(examples=len(self.dev_enc), split=str(self.cfg.dev_data) if self.cfg.dev_data else "dev", key=key)
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(usage, indent=2)))
        return usage

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint(self) -> None:
        import torch

        if self.acc.is_main_process:
            t = {f"param.{i}": p.detach().cpu().clone() for i, p in enumerate(self.params)}
            opt_t, groups = optimizer_to_tensors(self.opt)
            t.update(opt_t)
            t["rng.torch"] = torch.get_rng_state()
            self.recorded_seconds = self.clock.seconds()
            meta = {"step": self.step, "mode": self.stage, "param_groups": groups, "shapes": [list(p.shape) for p in self.params],
                    "run_key": self.key, "key_parts": self.key_parts, "train_seconds": self.recorded_seconds}
            save_checkpoint(self.ckpt, t, meta)
        self.acc.wait_for_everyone()

    def _restore(self, tensors: dict, meta: dict) -> None:
        import torch

        if meta.get("shapes") != [list(p.shape) for p in self.params]:
            raise LlinkError(f"checkpoint {self.ckpt} is from another model or mode ({meta.get('mode')}): use another --out or drop --resume")
        with torch.no_grad():
            for i, p in enumerate(self.params):
                p.copy_(tensors[f"param.{i}"])
        optimizer_from_tensors(self.opt, tensors, meta["param_groups"])
        torch.set_rng_state(tensors["rng.torch"])
        resume_progress(self, meta)

    # ------------------------------------------------------------------ train
    def _epoch_batches(self, epoch: int) -> list:
        if getattr(self, "_batches_epoch", None) != epoch:
            self._batches_epoch = epoch
            self._batches = epoch_batches([len(e) for e in self.train_enc], self.cfg.batch_size, self.cfg.seed, epoch)
        return self._batches

    def _memory_mode(self, batch: dict) -> None:
        """Recompute activations in the backward pass for the batches that need it: always with
        gradient_checkpointing, else only above checkpoint_above_tokens (the long raw-text
        batches that set the peak). The weights do not change either way."""
        cfg = self.cfg
        tokens = batch["input_ids"].numel()
        on = cfg.gradient_checkpointing or (cfg.checkpoint_above_tokens is not None and tokens > cfg.checkpoint_above_tokens)
        if on != getattr(self, "_ckpt_on", False):
            activation_checkpointing(self.decoder.model, on)
            self._ckpt_on = on

    def train(self) -> dict:
        from llink.schedules import lr_at
        import torch
        from tqdm.auto import tqdm

        cfg, acc = self.cfg, self.acc
        rank, world = acc.process_index, acc.num_processes
        bar = tqdm(total=self.total_steps, initial=self.step, desc=f"{self.stage} ({self.precision})", unit="step",
                   disable=not (cfg.progress and acc.is_main_process))
        self.decoder.model.train()
        self.clock.start()
        last = {}
        self.resumed_from_step = self.step
        with self.decoder.adapter(self.adapter):
            while self.step < self.total_steps:
                epoch, within = divmod(self.step, self.per_epoch)
                batches = self._epoch_batches(epoch)
                idx = batches[(within * world + rank) % len(batches)]
                for g in self.opt.param_groups:
                    g["lr"] = lr_at(self.step, self.total_steps, g["peak"], g["peak"] * cfg.lr_min_ratio, cfg.warmup_steps)
                batch = self.batch([self.train_enc[i] for i in idx])
                self._memory_mode(batch)
                row = {"step": self.step + 1, "epoch": epoch}
                with self.autocast():
                    loss = self.step_loss(batch, idx, row)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                if world > 1:  # LoRA lives inside the shared decoder, so average grads by hand
                    for p in self.params:
                        if p.grad is not None:
                            p.grad = acc.reduce(p.grad, reduction="mean")
                torch.nn.utils.clip_grad_norm_(self.params, cfg.clip)
                self.opt.step()
                self.step += 1
                bar.update(1)
                row.update(loss=loss.item(), lr=self.opt.param_groups[0]["lr"])
                if self.step % cfg.eval_every == 0 or self.step == self.total_steps:
                    row.update({f"dev_{k}": v for k, v in self.usage(cfg.eval_examples).items()})
                    last = row
                    bar.set_postfix(sft=f"{row['sft']:.3f}", dev=f"{row['dev_loss_true']:.3f}")
                if acc.is_main_process:
                    append_jsonl(self.log, row)
                if self.step % cfg.checkpoint_every == 0 or self.step == self.total_steps:
                    self._checkpoint()
        bar.close()
        if getattr(self, "_ckpt_on", False):
            activation_checkpointing(self.decoder.model, False)
            self._ckpt_on = False
        # what the last checkpoint recorded: a rerun that reuses this stage reports the same
        self.train_seconds = getattr(self, "recorded_seconds", self.clock.seconds())
        return last

    # ------------------------------------------------------------------ save
    def save(self) -> Path:
        """Write the artifact, once: a run that trained nothing leaves the one its key made."""
        from llink.eval.plots import stage_b_curve

        art = self.out / self.artifact_dir
        if self.acc.is_main_process and not artifact_is_current(self, art):
            self.write_artifact(art)
            stage_b_curve(self.log, self.out / "curve.png", title=f"{self.stage} ({self.precision})")
        self.acc.wait_for_everyone()
        return art

    def run(self, encoder=None, decoder=None) -> dict:
        """setup / train / save, then usage.json and summary.json in cfg.out; returns the summary."""
        self.setup(encoder=encoder, decoder=decoder)
        self.train()
        art = self.save()
        summary = {}
        if self.acc.is_main_process:
            usage = self.scored_usage(self.out / "usage.json")
            tasks: dict[str, int] = {}
            for e in self.examples:
                tasks[e.task] = tasks.get(e.task, 0) + 1
            summary = {"artifact": str(art), "mode": self.stage, "run_key": self.key, "precision": self.precision,
                       "steps": self.total_steps, "resumed_from_step": self.resumed_from_step,
                       "examples": len(self.examples), "tasks": tasks, "passages": self.passages_used,
                       "english_only": sum(e.src == e.en for e in self.examples), "examples_seen": self.total_steps * self.cfg.batch_size,
                       "data_seconds": round(self.data_seconds, 1), "train_seconds": round(self.train_seconds, 3), "usage": usage}
            if getattr(self, "expander_r2", None) is not None:
                summary["expander_init_r2"] = round(self.expander_r2, 4)
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
            print(json.dumps(summary, indent=2))
        return summary

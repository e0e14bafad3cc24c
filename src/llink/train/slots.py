"""Stage B recipe (`llink slots`) and its baseline (`llink finetune-direct`).

Stage B starts from a Stage A artifact: encoder -> projector -> expander -> K slots injected into
the chat prompt, trained with LoRA on the frozen decoder. The direct finetune trains the same
LoRA budget on the same examples with the raw foreign text in the prompt instead of slots.
setup() loads models, data and caches; train() is the resumable loop; save() writes the artifact.
"""

from __future__ import annotations

import inspect
import json
import time
from dataclasses import field, make_dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import LlinkError
from ..losses import answer_loss, direction_loss, info_nce, usage_contrast
from .common import (
    RUN_ONLY,
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


def _check(cfg) -> None:
    for name in ("steps", "batch_size", "eval_every", "checkpoint_every", "lora_r", "usage_every", "max_dev"):
        if hasattr(cfg, name) and getattr(cfg, name) < 1:
            raise LlinkError(f"--{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.precision not in ("fp32", "bf16"):
        raise LlinkError(f"--precision must be fp32 or bf16, got {cfg.precision!r}")
    if getattr(cfg, "expander_init", "identity") not in ("identity", "regress"):
        raise LlinkError(f"--expander_init must be identity or regress, got {cfg.expander_init!r}")


def _lora_config(cfg) -> dict:
    """The LoRA settings as the artifact stores them and `Decoder.add_lora` takes them."""
    return {"r": cfg.lora_r, "alpha": cfg.lora_alpha, "dropout": cfg.lora_dropout, "targets": cfg.lora_targets.split(",")}


def shuffled_order(n: int, seed: int) -> np.ndarray:
    """A permutation with no fixed point: every item gets another item's slots."""
    if n < 2:
        raise LlinkError("the shuffled-slot control needs at least 2 examples")
    perm = np.random.default_rng(seed).permutation(n)
    out = np.empty(n, dtype=np.int64)
    out[perm] = np.roll(perm, 1)
    return out


def _activation_checkpointing(model, on: bool) -> None:
    """Non-reentrant: the frozen embeddings give inputs without grad, and it restores the RNG
    state, so LoRA dropout masks, and thus the weights, match a run without it."""
    name = "activation" if hasattr(model, "activation_checkpointing_enable") else "gradient"  # newer transformers renamed it
    if on:
        getattr(model, f"{name}_checkpointing_enable")(**{f"{name}_checkpointing_kwargs": {"use_reentrant": False}})
    else:
        getattr(model, f"{name}_checkpointing_disable")()


class SlotsRecipe:
    """mode 'llink' (slots from a Stage A artifact) or 'direct' (raw text, no injection)."""

    def __init__(self, cfg, mode: str = "llink"):
        _check(cfg)
        self.cfg, self.mode = cfg, mode
        self.out = Path(cfg.out)
        self.ckpt = self.out / "checkpoint.safetensors"
        self.log = self.out / "metrics.jsonl"

    # ------------------------------------------------------------------ setup
    def setup(self, encoder=None, decoder=None) -> "SlotsRecipe":
        from accelerate import Accelerator

        from ..data import load_pairs
        from ..data.synth import LocalGenerator, eligible, read_examples, synthesize
        from ..decoders import load_decoder
        from ..prompts import PromptBuilder, PromptConfig

        cfg = self.cfg
        self.acc = Accelerator(cpu=cfg.cpu or not torch.cuda.is_available())
        seed_everything(cfg.seed)
        show = cfg.progress and self.acc.is_main_process
        t0 = time.time()
        if self.mode == "llink":
            self.model = self._stage_b_model(encoder, decoder)
            self.decoder = self.model.decoder
            self.builder = self.model.builder
        else:
            self.model = None
            self.decoder = decoder or load_decoder(cfg.decoder)
            self.builder = PromptBuilder(self.decoder.tokenizer, PromptConfig(k=8, system=cfg.system))
        if cfg.data is not None:
            data = Path(cfg.data)
            self.examples = read_examples(data / "train.jsonl" if data.is_dir() else data)
        else:
            gen = LocalGenerator(self.decoder, max_new_tokens=cfg.synth_max_new_tokens)
            pairs = load_pairs("train", cfg.lang, cfg.train_data)
            self.examples = synthesize(pairs, gen, cfg.tasks.split(","), per_task=cfg.per_task, max_translate=cfg.max_translate,
                                       seed=cfg.seed, progress=show)
        dev_pairs = eligible(load_pairs("dev", cfg.lang, cfg.dev_data))
        dev_pairs = [dev_pairs[i] for i in sorted(np.random.default_rng(cfg.seed).permutation(len(dev_pairs))[: cfg.max_dev])]
        self.dev = [(p.src, "Translate to English.", p.en) for p in dev_pairs]
        self.data_seconds = time.time() - t0

        # Prompts are tokenised once; the slot path needs encoder vectors (and Stage A targets).
        passage = (lambda ex: None) if self.mode == "llink" else (lambda ex: ex[0])
        if cfg.max_answer_tokens:
            tok = self.decoder.tokenizer
            keep = [len(tok(e.answer, add_special_tokens=False)["input_ids"]) <= cfg.max_answer_tokens for e in self.examples]
            self.dropped_long = len(keep) - sum(keep)
            self.examples = [e for e, k in zip(self.examples, keep) if k]
            if not self.examples:
                raise LlinkError(f"no training example has an answer of <= {cfg.max_answer_tokens} tokens")
        rows = [(e.src, e.instruction, e.answer) for e in self.examples]
        from ..cache import key_of, tensors_fingerprint

        self.inputs = {"examples": key_of(rows=rows)}
        if self.mode == "llink":
            from ..model import WEIGHTS

            self.inputs["stage_a"] = tensors_fingerprint(Path(cfg.from_stage_a) / WEIGHTS)
        self.train_enc = [self.builder.chat(i, passage((s, i, a)), a) for s, i, a in rows]
        self.dev_enc = [self.builder.chat(i, passage((s, i, a)), a) for s, i, a in self.dev]
        if self.mode == "llink":
            self._vectors(show)
        self._trainables()
        world = self.acc.num_processes
        self.total_steps = cfg.steps
        self.per_epoch = max(1, len(self.train_enc) // (cfg.batch_size * world))
        self.step, self.clock = 0, TrainClock()
        self.out.mkdir(parents=True, exist_ok=True)
        if cfg.resume and self.ckpt.exists():
            self._restore()
        elif self.log.exists() and self.acc.is_main_process:
            self.log.unlink()
        return self

    def _stage_b_model(self, encoder, decoder):
        from dataclasses import replace

        from ..model import LLINK
        from ..slots import median_embedding_norm

        cfg = self.cfg
        if cfg.from_stage_a is None:
            raise LlinkError("--from is required: the Stage A artifact directory (e.g. runs/align/llink)")
        a = LLINK.from_pretrained(cfg.from_stage_a, encoder=encoder, decoder=decoder)
        if a.config.stage != "A":
            raise LlinkError(f"{cfg.from_stage_a} is a Stage {a.config.stage} artifact; --from needs a Stage A one")
        dec = a.decoder
        config = replace(a.config, stage="B", expander={"target_norm": median_embedding_norm(dec.embeddings)}, lora=_lora_config(cfg))
        model = LLINK(config)
        model.load_state_dict(a.state_dict(), strict=False)  # projector + teacher statistics
        return model.attach(encoder=a.encoder, decoder=dec)

    def _vectors(self, show: bool) -> None:
        from ..encoders import encode_cached
        from ..slots import chunk_targets, fit_expander
        from ..teacher import cached_states, normalise

        cfg, m = self.cfg, self.model
        srcs = [e.src for e in self.examples]
        self.train_x = torch.from_numpy(encode_cached(m.encoder, srcs, progress=show))
        self.dev_x = torch.from_numpy(encode_cached(m.encoder, [s for s, _, _ in self.dev], progress=show))
        spec = m.config.teacher_spec
        en = [e.en for e in self.examples]
        raw = cached_states(m.decoder, m.builder, en, [spec.layer], [spec.pooling], progress=show)[(spec.layer, spec.pooling)]
        self.train_y = torch.from_numpy(normalise(spec, raw, m.teacher_stats))
        # same English or same Khmer = one group: the aux InfoNCE must not push a pair's duplicate away
        self.train_g = torch.from_numpy(duplicate_groups(srcs, en))
        if cfg.expander_init == "regress" and not (cfg.resume and self.ckpt.exists()):
            tok = m.decoder.tokenizer
            first = {}
            for i, t in enumerate(en):  # one row per distinct English sentence
                first.setdefault(t, i)
            ids = [tok(t, add_special_tokens=False)["input_ids"][:64] or [tok.eos_token_id] for t in first]
            targets = chunk_targets(ids, m.decoder.embeddings, m.config.prompt_config.k)
            aligned = m.project(self.train_x[list(first.values())])
            self.expander_r2 = fit_expander(m.expander, aligned, targets, ridge=cfg.expander_ridge)

    def _trainables(self) -> None:
        cfg, dec = self.cfg, self.decoder
        if self.mode == "llink":
            self.adapter = self.model.adapter_name
            groups = [
                {"params": dec.lora_parameters(self.adapter), "lr": cfg.lr_lora, "name": "lora"},
                {"params": list(self.model.expander.parameters()), "lr": cfg.lr_expander, "name": "expander"},
                {"params": list(self.model.projector.parameters()), "lr": cfg.lr_projector, "name": "projector"},
            ]
        else:
            self.adapter = dec.new_lora("direct", **_lora_config(cfg))
            groups = [{"params": dec.lora_parameters(self.adapter), "lr": cfg.lr_lora, "name": "lora"}]
        self.groups = groups
        self.params = [p for g in groups for p in g["params"]]
        for p in self.params:
            p.requires_grad_(True)
        for g in groups:
            g["peak"] = g["lr"]
        self.opt = torch.optim.AdamW(groups, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)

    # ------------------------------------------------------------------ compute
    def _autocast(self):
        return torch.autocast(self.acc.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16")

    def _batch(self, enc: list) -> dict:
        from ..prompts import pad_batch

        return {k: v.to(self.acc.device) for k, v in pad_batch(enc, self.decoder.tokenizer.pad_token_id, multiple=16).items()}

    def _losses(self, batch: dict, slots: torch.Tensor | None) -> torch.Tensor:
        from ..slots import inject

        emb = self.decoder.embeddings(batch["input_ids"])
        if slots is not None:
            emb = inject(emb, batch["slot_mask"], slots)
        return answer_loss(self.decoder, emb, batch["attention_mask"], batch["labels"])

    @torch.no_grad()
    def usage(self, limit: int | None = None) -> dict:
        """Mean dev answer loss with the true slots, zeroed slots and another sentence's slots
        (for the direct finetune: with the raw text, which is what it reads)."""
        n = len(self.dev_enc) if limit is None else min(limit, len(self.dev_enc))
        was = self.decoder.model.training
        self.decoder.model.eval()
        res = {"loss_true": [], "loss_zeroed": [], "loss_shuffled": []}
        with self.decoder.adapter(self.adapter), self._autocast():
            if self.mode == "llink":
                self.model.eval()
                slots = self.model.expand(self.model.projector(self.dev_x[:n].to(self.acc.device)))
                other = slots[torch.from_numpy(shuffled_order(n, self.cfg.seed))]
            bs = self.cfg.batch_size
            for s in range(0, n, bs):
                b = self._batch(self.dev_enc[s : s + bs])
                if self.mode == "llink":
                    res["loss_true"].append(self._losses(b, slots[s : s + bs]))
                    res["loss_zeroed"].append(self._losses(b, torch.zeros_like(slots[s : s + bs])))
                    res["loss_shuffled"].append(self._losses(b, other[s : s + bs]))
                else:
                    res["loss_true"].append(self._losses(b, None))
        if self.mode == "llink":
            self.model.train()
        self.decoder.model.train(was)
        return {k: round(float(torch.cat(v).mean()), 4) for k, v in res.items() if v}

    def scored_usage(self, path: Path) -> dict:
        """`usage()` on the whole dev set, written to `path`. A rerun that trained nothing reads
        it back instead (~1.5 min on a CPU): the file is keyed by the trained weights, the
        dev prompts and the settings (the seed shuffles the control), so any change re-scores."""
        from ..cache import atomic_write, key_of, read_keyed, weights_fingerprint

        config = {k: v for k, v in settings_of(self.cfg).items() if k not in RUN_ONLY}  # the decoder, among others
        key = key_of(mode=self.mode, weights=weights_fingerprint({str(i): p for i, p in enumerate(self.params)}),
                     dev=[e.input_ids for e in self.dev_enc], config=config, inputs=self.inputs)
        old = read_keyed(path, key)
        if old is not None:
            return old
        usage = self.usage()
        usage.update(examples=len(self.dev_enc), split=str(self.cfg.dev_data) if self.cfg.dev_data else "dev", key=key)
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(usage, indent=2)))
        return usage

    # ------------------------------------------------------------------ checkpoints
    def _tensors(self) -> dict:
        t = {f"param.{i}": p.detach().cpu().clone() for i, p in enumerate(self.params)}
        opt_t, groups = optimizer_to_tensors(self.opt)
        t.update(opt_t)
        t["rng.torch"] = torch.get_rng_state()
        return t, groups

    def _checkpoint(self) -> None:
        if self.acc.is_main_process:
            tensors, groups = self._tensors()
            meta = {"step": self.step, "mode": self.mode, "param_groups": groups, "shapes": [list(p.shape) for p in self.params],
                    "config": settings_of(self.cfg), "inputs": self.inputs, "train_seconds": self.clock.seconds()}
            save_checkpoint(self.ckpt, tensors, meta)
        self.acc.wait_for_everyone()

    def _restore(self) -> None:
        tensors, meta = load_checkpoint(self.ckpt)
        if meta.get("mode") != self.mode or meta.get("shapes") != [list(p.shape) for p in self.params]:
            raise LlinkError(f"checkpoint {self.ckpt} is from another model or mode ({meta.get('mode')}): use another --out or drop --resume")
        check_resumable(self.ckpt, meta, self.cfg, self.inputs)
        with torch.no_grad():
            for i, p in enumerate(self.params):
                p.copy_(tensors[f"param.{i}"])
        optimizer_from_tensors(self.opt, tensors, meta["param_groups"])
        torch.set_rng_state(tensors["rng.torch"])
        self.step = int(meta["step"])
        self.clock = TrainClock(meta.get("train_seconds", 0.0))
        if self.acc.is_main_process:
            truncate_jsonl(self.log, self.step)
            print(f"resumed from {self.ckpt} at step {self.step}/{self.total_steps}")

    # ------------------------------------------------------------------ train
    def _epoch_batches(self, epoch: int) -> list[torch.Tensor]:
        """Length-bucketed batches in an order fixed by (seed, epoch), so a resumed run sees the
        same ones: shuffle, sort windows of 50 batches by length, then shuffle the batches.
        Similar lengths pad little, which on a CPU is most of the speed."""
        if getattr(self, "_batches_epoch", None) == epoch:
            return self._batches
        g = torch.Generator().manual_seed(self.cfg.seed * 1000 + epoch)
        bs = self.cfg.batch_size
        perm = torch.randperm(len(self.train_enc), generator=g).tolist()
        window = bs * 50
        batches = []
        for s in range(0, len(perm), window):
            part = sorted(perm[s : s + window], key=lambda i: len(self.train_enc[i]))
            batches += [torch.tensor(part[j : j + bs]) for j in range(0, len(part) - bs + 1, bs)]
        order = torch.randperm(len(batches), generator=g).tolist()
        self._batches_epoch, self._batches = epoch, [batches[i] for i in order]
        return self._batches

    def train(self) -> dict:
        cfg, acc = self.cfg, self.acc
        rank, world = acc.process_index, acc.num_processes
        bar = tqdm(total=self.total_steps, initial=self.step, desc=f"stage B ({self.mode})", unit="step",
                   disable=not (cfg.progress and acc.is_main_process))
        self.decoder.model.train()
        if self.model is not None:
            self.model.train()
        if cfg.gradient_checkpointing:
            _activation_checkpointing(self.decoder.model, True)
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
                batch = self._batch([self.train_enc[i] for i in idx])
                row = {"step": self.step + 1, "epoch": epoch}
                with self._autocast():
                    if self.mode == "llink":
                        aligned = self.model.projector(self.train_x[idx].to(acc.device))
                        slots = self.model.expand(aligned)
                        per = self._losses(batch, slots)
                        loss = sft = per.mean()
                        y, g = self.train_y[idx].to(acc.device), self.train_g[idx].to(acc.device)
                        aux = direction_loss(aligned, y) + info_nce(aligned, y, cfg.aux_temperature, q_ids=g, k_ids=g, hard_k=None)
                        loss = loss + cfg.aux_weight * aux
                        row["aux"] = aux.item()
                        if (self.step + 1) % cfg.usage_every == 0:
                            # The zeroed pass is a reference, not a target: no gradient pushes the
                            # decoder to get worse without slots, and it costs a forward only.
                            with torch.no_grad():
                                zeroed = self._losses(batch, torch.zeros_like(slots)).mean()
                            use = usage_contrast(sft, zeroed)
                            loss = loss + cfg.usage_weight * use
                            row.update(zeroed=zeroed.item(), usage=use.item())
                    else:
                        loss = sft = self._losses(batch, None).mean()
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
                row.update(loss=loss.item(), sft=sft.item(), lr=self.opt.param_groups[0]["lr"])
                if self.step % cfg.eval_every == 0 or self.step == self.total_steps:
                    row.update({f"dev_{k}": v for k, v in self.usage(cfg.eval_examples).items()})
                    last = row
                    bar.set_postfix(sft=f"{row['sft']:.3f}", dev=f"{row['dev_loss_true']:.3f}")
                if acc.is_main_process:
                    append_jsonl(self.log, row)
                if self.step % cfg.checkpoint_every == 0 or self.step == self.total_steps:
                    self._checkpoint()
        bar.close()
        if cfg.gradient_checkpointing:
            _activation_checkpointing(self.decoder.model, False)
        self.train_seconds = self.clock.seconds()
        return last

    # ------------------------------------------------------------------ save
    def save(self) -> Path:
        from ..eval.plots import stage_b_curve

        art = self.out / ("llink" if self.mode == "llink" else "direct")
        if self.acc.is_main_process:
            if self.mode == "llink":
                self.model.save_pretrained(art)
            else:
                from ..model import DirectModel

                DirectModel.save(art, self.decoder, self.adapter, self.builder.cfg, _lora_config(self.cfg))
            stage_b_curve(self.log, self.out / "curve.png", title=f"Stage B ({self.mode})")
        self.acc.wait_for_everyone()
        return art


def run_recipe(cfg, mode: str, encoder=None, decoder=None) -> dict:
    """setup / train / save, then usage.json and summary.json in cfg.out; returns the summary."""
    recipe = SlotsRecipe(cfg, mode).setup(encoder=encoder, decoder=decoder)
    recipe.train()
    art = recipe.save()
    summary = {}
    if recipe.acc.is_main_process:
        usage = recipe.scored_usage(Path(cfg.out) / "usage.json")
        tasks: dict[str, int] = {}
        for e in recipe.examples:
            tasks[e.task] = tasks.get(e.task, 0) + 1
        summary = {"artifact": str(art), "mode": mode, "steps": recipe.total_steps, "resumed_from_step": recipe.resumed_from_step,
                   "examples": len(recipe.examples), "tasks": tasks,
                   "examples_seen": recipe.total_steps * cfg.batch_size, "data_seconds": round(recipe.data_seconds, 1),
                   "train_seconds": round(recipe.train_seconds, 3), "usage": usage}
        if getattr(recipe, "expander_r2", None) is not None:
            summary["expander_init_r2"] = round(recipe.expander_r2, 4)
        (Path(cfg.out) / "summary.json").write_text(json.dumps(summary, indent=2))
        print(json.dumps(summary, indent=2))
    return summary


def slots(
    from_stage_a: Path | None = None,
    out: Path = Path("runs/slots"),
    data: Path | None = None,
    lang: str = "km",
    train_data: Path | None = None,
    dev_data: Path | None = None,
    tasks: str = "translate,summarise,bullets,qa",
    per_task: int = 200,
    max_translate: int | None = None,
    synth_max_new_tokens: int = 48,
    max_answer_tokens: int | None = 48,
    max_dev: int = 200,
    eval_examples: int = 64,
    steps: int = 300,
    batch_size: int = 16,
    lr_lora: float = 2e-4,
    lr_expander: float = 1e-3,
    lr_projector: float = 1e-4,
    lr_min_ratio: float = 0.1,
    warmup_steps: int = 20,
    weight_decay: float = 0.0,
    clip: float = 1.0,
    lora_r: int = 16,
    lora_alpha: int = 16,
    lora_dropout: float = 0.05,
    lora_targets: str = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
    expander_init: str = "regress",
    expander_ridge: float = 1.0,
    usage_every: int = 3,
    usage_weight: float = 1.0,
    aux_weight: float = 0.1,
    aux_temperature: float = 0.05,
    precision: str = "bf16",
    gradient_checkpointing: bool = False,
    eval_every: int = 50,
    checkpoint_every: int = 50,
    seed: int = 17,
    resume: bool = False,
    cpu: bool = False,
    progress: bool = True,
) -> None:
    """Stage B: train the slot expander, scaler and LoRA so the decoder reads K injected slots.

    Args:
        from_stage_a: the Stage A artifact directory (`--from` works too), e.g. runs/align/llink.
        out: run directory (checkpoint, metrics.jsonl, curve.png, usage.json, artifact in out/llink).
        data: instruction data from `llink synth` (a directory holding train.jsonl, or a .jsonl file);
            without it the examples are synthesised here (cached) from the train split.
        lang: language of the committed corpus (data/en-<lang>).
        train_data: any TSV/JSONL of (source, english) pairs to synthesise from instead of the train split.
        dev_data: any TSV/JSONL of pairs instead of the dev split (usage losses).
        tasks: comma-separated task families: translate, summarise, bullets, qa.
        per_task: examples per generated (non-translation) task.
        max_translate: at most this many translation examples (default: every eligible pair).
        synth_max_new_tokens: answer length cap when self-distilling targets.
        max_answer_tokens: drop training examples whose answer is longer (None keeps all).
        max_dev: dev translation examples for usage.json.
        eval_examples: dev examples scored at each periodic evaluation.
        steps: optimiser steps.
        batch_size: examples per step and process.
        lr_lora: peak learning rate of the LoRA weights.
        lr_expander: peak learning rate of the expander and slot scaler.
        lr_projector: peak learning rate of the Stage A projector (kept near its target by the aux loss).
        lr_min_ratio: final learning rate as a fraction of the peak (cosine).
        warmup_steps: linear warmup steps.
        weight_decay: AdamW weight decay.
        clip: gradient-norm clipping.
        lora_r: LoRA rank.
        lora_alpha: LoRA alpha.
        lora_dropout: LoRA dropout.
        lora_targets: comma-separated decoder module names that get LoRA.
        expander_init: 'regress' (closed-form fit to the English words' embeddings) or 'identity'.
        expander_ridge: ridge strength of the regress initialisation.
        usage_every: every N-th step adds the usage contrast relu(L_slots - L_zeroed) (zeroed pass without gradient).
        usage_weight: weight of the usage contrast.
        aux_weight: weight of the auxiliary cosine + InfoNCE terms towards the Stage A teacher.
        aux_temperature: temperature of the auxiliary InfoNCE.
        precision: bf16 (autocast; faster on CPUs with AVX512-BF16 and on GPUs) or fp32.
        gradient_checkpointing: recompute each decoder layer's activations in the backward pass
            instead of keeping them: less memory for ~40% more time, the same weights.
        eval_every: steps between dev usage evaluations.
        checkpoint_every: steps between atomic checkpoints.
        seed: seed for sampling, initialisation and batch order.
        resume: continue from out/checkpoint.safetensors if present.
        cpu: force CPU even when a GPU is present.
        progress: show progress bars.
    """
    return run_recipe(SlotsConfig(**locals()), "llink")


def finetune_direct(
    out: Path = Path("runs/direct"),
    decoder: str = "smollm2-135m",
    system: str | None = "You are a helpful assistant.",
    data: Path | None = None,
    lang: str = "km",
    train_data: Path | None = None,
    dev_data: Path | None = None,
    tasks: str = "translate,summarise,bullets,qa",
    per_task: int = 200,
    max_translate: int | None = None,
    synth_max_new_tokens: int = 48,
    max_answer_tokens: int | None = 48,
    max_dev: int = 200,
    eval_examples: int = 64,
    steps: int = 300,
    batch_size: int = 16,
    lr_lora: float = 2e-4,
    lr_min_ratio: float = 0.1,
    warmup_steps: int = 20,
    weight_decay: float = 0.0,
    clip: float = 1.0,
    lora_r: int = 16,
    lora_alpha: int = 16,
    lora_dropout: float = 0.05,
    lora_targets: str = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
    precision: str = "bf16",
    gradient_checkpointing: bool = False,
    eval_every: int = 50,
    checkpoint_every: int = 50,
    seed: int = 17,
    resume: bool = False,
    cpu: bool = False,
    progress: bool = True,
) -> None:
    """Direct-finetune baseline: the same LoRA budget and examples, raw foreign text in the prompt.

    Args:
        out: run directory (artifact in out/direct).
        decoder: bundled 'smollm2-135m' or a Hugging Face causal LM id/path.
        system: system prompt (keep it equal to the LLINK model's for a fair comparison).
        data: instruction data from `llink synth` (directory with train.jsonl, or a .jsonl file).
        lang: language of the committed corpus.
        train_data: any TSV/JSONL of pairs to synthesise from instead of the train split.
        dev_data: any TSV/JSONL of pairs instead of the dev split.
        tasks: comma-separated task families: translate, summarise, bullets, qa.
        per_task: examples per generated (non-translation) task.
        max_translate: at most this many translation examples.
        synth_max_new_tokens: answer length cap when self-distilling targets.
        max_answer_tokens: drop training examples whose answer is longer (None keeps all).
        max_dev: dev translation examples for the final dev loss.
        eval_examples: dev examples scored at each periodic evaluation.
        steps: optimiser steps (use the Stage B run's for the same budget).
        batch_size: examples per step and process.
        lr_lora: peak learning rate of the LoRA weights.
        lr_min_ratio: final learning rate as a fraction of the peak.
        warmup_steps: linear warmup steps.
        weight_decay: AdamW weight decay.
        clip: gradient-norm clipping.
        lora_r: LoRA rank.
        lora_alpha: LoRA alpha.
        lora_dropout: LoRA dropout.
        lora_targets: comma-separated decoder module names that get LoRA.
        precision: bf16 or fp32.
        gradient_checkpointing: recompute each decoder layer's activations in the backward pass
            instead of keeping them: less memory for ~40% more time, the same weights.
        eval_every: steps between dev evaluations.
        checkpoint_every: steps between atomic checkpoints.
        seed: seed.
        resume: continue from out/checkpoint.safetensors if present.
        cpu: force CPU even when a GPU is present.
        progress: show progress bars.
    """
    return run_recipe(DirectConfig(**locals()), "direct")


def _config_of(fn, name: str):
    return make_dataclass(name, [(n, p.annotation, field(default=p.default)) for n, p in inspect.signature(fn).parameters.items()])


SlotsConfig = _config_of(slots, "SlotsConfig")
DirectConfig = _config_of(finetune_direct, "DirectConfig")

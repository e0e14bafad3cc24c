"""Stage B recipe (`llink slots`): encoder -> Stage A projector -> expander -> K slots injected
into the chat prompt, trained with LoRA on the frozen decoder (recipes/lora.py holds the loop)."""

from __future__ import annotations


from dataclasses import dataclass
from pathlib import Path

from llink.errors import LlinkError

from ..args import CorpusArgs, EnglishArgs, EvalArgs, ExamplesArgs, LoRAArgs, MemoryArgs, RunArgs, TrainArgs, command, opt
from .lora import LoRARecipe, lora_config


class SlotsRecipe(LoRARecipe):
    stage = "stage_b"
    artifact_dir = "llink"

    def load_models(self, encoder, decoder) -> None:
        from dataclasses import replace

        from llink.model import LLINK
        from llink.slots import median_embedding_norm

        cfg = self.cfg
        if cfg.expander_init not in ("identity", "regress"):
            raise LlinkError(f"--expander_init must be identity or regress, got {cfg.expander_init!r}")
        if cfg.distill not in ("sequence", "kl"):
            raise LlinkError(f"--distill must be sequence or kl, got {cfg.distill!r}")
        if cfg.kl_temperature <= 0 or cfg.kl_weight < 0:
            raise LlinkError(f"--kl_temperature must be > 0 and --kl_weight >= 0, got {cfg.kl_temperature} and {cfg.kl_weight}")
        if cfg.from_stage_a is None:
            raise LlinkError("--from is required: the Stage A artifact directory (e.g. runs/align/llink)")
        from llink.prompts import PromptConfig, parse_k_rule
        from llink.slots import SOURCES

        if cfg.slot_source not in SOURCES:
            raise LlinkError(f"--slot_source must be one of {', '.join(SOURCES)}, got {cfg.slot_source!r}")
        a = LLINK.from_pretrained(cfg.from_stage_a, encoder=encoder, decoder=decoder)
        if a.config.stage != "A":
            raise LlinkError(f"{cfg.from_stage_a} is a Stage {a.config.stage} artifact; --from needs a Stage A one")
        dec = a.decoder
        rule = parse_k_rule(cfg.k_rule)
        k = rule["max"] if rule else (cfg.k or a.config.prompt_config.k)
        if rule and cfg.k is not None and cfg.k != rule["max"]:
            raise LlinkError(f"--k {cfg.k} and --k_rule {cfg.k_rule}: with a K rule, K is the rule's max; drop --k")
        prompt = PromptConfig(**{**a.config.prompt, "k": k, "k_rule": rule, "hints": cfg.hints}).to_dict()
        if cfg.resampler_layers < 1 or cfg.resampler_positions < 1:
            raise LlinkError(f"--resampler_layers and --resampler_positions must be >= 1, got {cfg.resampler_layers} and {cfg.resampler_positions}")
        expander = {"target_norm": median_embedding_norm(dec.embeddings)}
        if cfg.slot_source == "resampler":
            expander.update(layers=cfg.resampler_layers, positions=cfg.resampler_positions)
        config = replace(a.config, stage="B", expander=expander, lora=lora_config(cfg),
                         prompt=prompt, slot_source=cfg.slot_source)
        model = LLINK(config)
        model.load_state_dict(a.state_dict(), strict=False)  # projector + teacher statistics
        self.model = model.attach(encoder=a.encoder, decoder=dec)
        self.decoder, self.builder = self.model.decoder, self.model.builder

    def passage(self, src: str) -> None:
        return None

    def prompt_kwargs(self, srcs: list[str], english: list[bool] | None = None) -> list[dict]:
        return [{"k": k, "hints": h} for k, h in zip(self.model.slot_counts(srcs), self.model.hints(srcs, english))]

    def models_and_upstream(self) -> tuple[dict, str]:
        from llink.model import upstream_key

        # The Stage A artifact names the models; its run key stands for everything that made it.
        return {"decoder": self.decoder.id, "encoder": self.model.encoder.id}, upstream_key(self.cfg.from_stage_a)

    def prepare_inputs(self, show: bool) -> None:
        import torch

        from llink.data.sampling import duplicate_groups
        from llink.encoders import encode_cached
        from llink.slots import chunk_targets, fit_expander, fit_resampler, fit_segment_expander, pad_states
        from llink.teacher import teacher_vectors

        cfg, m = self.cfg, self.model
        srcs = [e.src for e in self.examples]
        self.train_x = torch.from_numpy(encode_cached(m.encoder, srcs, progress=show))
        self.dev_x = torch.from_numpy(encode_cached(m.encoder, [s for s, _, _ in self.dev], progress=show))
        self.train_k = [kw["k"] for kw in self.train_kw]
        if m.config.slot_source != "pooled":
            # per text [k_i or n_i, D] (spans or token states), padded per batch (a padded
            # [N, rows, D] copy would be GBs)
            self.train_spans = span_rows(m, srcs, m.detail_counts(srcs, self.train_k), show)
            dev_srcs = [s for s, _, _ in self.dev]
            self.dev_spans = pad_states(span_rows(m, dev_srcs, m.detail_counts(dev_srcs, [kw["k"] for kw in self.dev_kw]), show))
        spec = m.config.teacher_spec
        en = [e.en for e in self.examples]
        self.train_y = torch.from_numpy(teacher_vectors(m.decoder, m.builder, spec, en, m.teacher_stats, progress=show))
        # same English or same Khmer = one group: the aux InfoNCE must not push a pair's duplicate away
        self.train_g = torch.from_numpy(duplicate_groups(srcs, en))
        if cfg.expander_init == "regress" and self.saved is None:
            tok = m.decoder.tokenizer
            first = {}
            for i, t in enumerate(en):  # one row per distinct English sentence
                first.setdefault(t, i)
            ids = [tok(t, add_special_tokens=False)["input_ids"][:64] or [tok.eos_token_id] for t in first]
            rows = list(first.values())
            if m.config.slot_source == "segments":
                # each span of the Khmer towards the matching chunk of the English
                ks = [self.train_k[i] for i in rows]
                spans = project_spans(m, [self.train_spans[i] for i in rows])
                targets = chunk_targets(ids, m.decoder.embeddings, ks)
                self.expander_r2 = fit_segment_expander(m.expander, spans, ks, targets, ridge=cfg.expander_ridge)
            elif m.config.slot_source == "resampler":
                # every fresh query holds the pooled vector: towards the whole sentence's embedding mean
                targets = chunk_targets(ids, m.decoder.embeddings, 1)[:, 0]
                self.expander_r2 = fit_resampler(m.expander, m.project(self.train_x[rows]), targets, ridge=cfg.expander_ridge)
            else:
                # with a K rule, K here is its max: every slot a text may read starts fitted
                targets = chunk_targets(ids, m.decoder.embeddings, m.config.prompt_config.k)
                aligned = m.project(self.train_x[rows])
                self.expander_r2 = fit_expander(m.expander, aligned, targets, ridge=cfg.expander_ridge)
        if cfg.distill == "kl":
            self.teacher_enc = teacher_prompts(m.builder, self.examples, self.train_enc)
        self.model.train()

    def param_groups(self) -> list[dict]:
        cfg = self.cfg
        self.adapter = self.model.adapter_name
        return [
            {"params": self.decoder.lora_parameters(self.adapter), "lr": cfg.lr_lora, "name": "lora"},
            {"params": list(self.model.expander.parameters()), "lr": cfg.lr_expander, "name": "expander"},
            {"params": list(self.model.projector.parameters()), "lr": cfg.lr_projector, "name": "projector"},
        ]

    def step_loss(self, batch: dict, idx, row: dict):
        from llink.losses import answer_ce, direction_loss, info_nce, token_kl, usage_contrast
        import torch

        cfg, dev = self.cfg, self.acc.device
        aligned = self.model.projector(self.train_x[idx].to(dev))
        slots = self.model.expand(aligned, *self.batch_spans(idx))
        if cfg.distill == "kl":
            teacher = self.teacher_logits(idx)
            logits, targets, sel = self.answer_logits(batch, slots)
            sft = answer_ce(logits, targets, sel).mean()
            kl = token_kl(logits, teacher, cfg.kl_temperature)
        else:
            sft = self.answer_losses(batch, slots).mean()
        y, g = self.train_y[idx].to(dev), self.train_g[idx].to(dev)
        aux = direction_loss(aligned, y) + info_nce(aligned, y, cfg.aux_temperature, q_ids=g, k_ids=g, hard_k=None)
        loss = sft + cfg.aux_weight * aux
        row.update(sft=sft.item(), aux=aux.item())
        if cfg.distill == "kl":
            loss = loss + cfg.kl_weight * kl
            row.update(kl=kl.item())
        if (self.step + 1) % cfg.usage_every == 0:
            # The zeroed pass is a reference, not a target: no gradient pushes the decoder to get
            # worse without slots, and it costs a forward only.
            with torch.no_grad():
                zeroed = self.answer_losses(batch, torch.zeros_like(slots)).mean()
            use = usage_contrast(sft, zeroed)
            loss = loss + cfg.usage_weight * use
            row.update(zeroed=zeroed.item(), usage=use.item())
        return loss

    def batch_spans(self, idx):
        """(projected spans or token states [B, rows, H], mask [B, rows]) of examples idx, (None,
        None) for `pooled`."""
        from llink.slots import pad_states

        if self.model.config.slot_source == "pooled":
            return None, None
        states, mask = pad_states([self.train_spans[int(i)] for i in idx])
        return self.model.projector(states.to(self.acc.device)), mask.to(self.acc.device)

    def answer_logits(self, batch: dict, slots):
        """answer_logits (llink.losses) of the Stage B forward: slots injected, the adapter active."""
        from llink.losses import answer_logits
        from llink.slots import inject

        emb = inject(self.decoder.embeddings(batch["input_ids"]), batch["slot_mask"], slots)
        return answer_logits(self.decoder, emb, batch["attention_mask"], batch["labels"])

    def teacher_logits(self, idx):
        """The self-distillation teacher's answer-position logits for examples `idx`: the frozen
        decoder (no adapter, eval mode, no gradient) reading the English text where the student
        reads slots. Row n predicts the same answer token as the student's row n."""
        from llink.losses import answer_logits
        import torch

        model = self.decoder.model
        was = model.training
        batch = self.batch([self.teacher_enc[i] for i in idx])
        model.eval()  # a frozen teacher: no dropout, whatever the decoder's config holds
        try:
            with torch.no_grad(), self.decoder.adapter(None):
                logits, _, _ = answer_logits(self.decoder, self.decoder.embeddings(batch["input_ids"]), batch["attention_mask"],
                                             batch["labels"])
        finally:
            model.train(was)
        return logits

    def dev_inputs(self, n: int) -> dict:
        """The sentence's own slots, zeroed slots, and another sentence's slots, K and hints (the
        shuffled control); with hints, also another's slots and K beside its own hints."""
        import torch

        from llink.eval.controls import shuffled_order

        m, dev = self.model, self.acc.device
        spans = mask = None
        if m.config.slot_source != "pooled":
            spans, mask = m.projector(self.dev_spans[0][:n].to(dev)), self.dev_spans[1][:n].to(dev)
        slots = m.expand(m.projector(self.dev_x[:n].to(dev)), spans, mask)
        order = shuffled_order(n, self.cfg.seed)

        def prompts(hints_from):
            return [self.builder.chat(i, None, a, k=self.dev_kw[j]["k"], hints=self.dev_kw[h]["hints"])
                    for (_, i, a), j, h in zip(self.dev[:n], order, hints_from)]

        feeds = {"loss_true": slots, "loss_zeroed": torch.zeros_like(slots), "loss_shuffled": (slots[torch.from_numpy(order)], prompts(order))}
        if m.config.prompt_config.hints:
            feeds["loss_shuffled_slots"] = (slots[torch.from_numpy(order)], prompts(range(n)))
        return feeds

    def write_artifact(self, path: Path) -> None:
        self.model.config.run_key = self.key
        if self.mixture is not None:
            self.model.config.mixture = {**(self.model.config.mixture or {}), "stage_b": self.mixture}
        if self.languages is not None:
            self.model.config.languages = {**(self.model.config.languages or {}), "stage_b": self.languages}
        self.model.save_pretrained(path)


def span_rows(model, texts: list[str], ks: list[int], show: bool) -> list:
    """Each text's encoder span means [k_i, D] as float32 tensors (cached on disk)."""
    import numpy as np
    import torch

    from llink.encoders import encode_spans_cached

    return [torch.from_numpy(np.asarray(r, dtype=np.float32)) for r in encode_spans_cached(model.encoder, texts, ks, progress=show)]


def project_spans(model, rows: list, chunk: int = 1024):
    """Span rows -> projected [N, K_max, H] (zero past a text's k), in chunks (the projector's
    hidden layer over every span at once would take GBs)."""
    import torch

    from llink.slots import pad_slots

    out = []
    for s in range(0, len(rows), chunk):
        part = pad_slots(rows[s : s + chunk])
        out.append(model.project(part.reshape(-1, part.shape[-1])).view(part.shape[0], part.shape[1], -1))
    width = max(o.shape[1] for o in out)
    return torch.cat([torch.nn.functional.pad(o, (0, 0, 0, width - o.shape[1])) for o in out])


def teacher_prompts(builder, examples, student: list) -> list:
    """The self-distillation teacher's prompts: each example's English text as the passage, the same
    instruction and answer. Its answer tokens must be the student's, token for token (answer_logits
    pairs the two up by them)."""
    from llink.prompts import IGNORE

    enc = [builder.chat(e.instruction, passage=e.en, answer=e.answer) for e in examples]
    for e, t, s in zip(examples, enc, student):
        if [x for x in t.labels if x != IGNORE] != [x for x in s.labels if x != IGNORE]:
            raise LlinkError(f"the answer {e.answer!r} tokenises differently behind the English passage and behind the slots: "
                             "--distill kl cannot pair up its tokens")
    return enc


def _resampler(cfg) -> bool:
    return cfg.slot_source == "resampler"


@dataclass
class SlotsArgs:
    from_stage_a: Path | None = opt(None, "the Stage A artifact directory (`--from` works too), e.g. runs/align/llink.", run_only=True)
    out: Path = opt(Path("runs/slots"), "run directory (checkpoint, metrics.jsonl, curve.png, usage.json, artifact in out/llink).",
                    run_only=True)
    lr_expander: float = opt(1e-3, "peak learning rate of the expander and slot scaler.")
    lr_projector: float = opt(1e-4, "peak learning rate of the Stage A projector (kept near its target by the aux loss).")
    expander_init: str = opt("regress", "'regress' (closed-form fit to the English words' embeddings) or 'identity'.")
    expander_ridge: float = opt(1.0, "ridge strength of the regress initialisation.")
    usage_every: int = opt(3, "every N-th step adds the usage contrast relu(L_slots - L_zeroed) (zeroed pass without gradient).")
    usage_weight: float = opt(1.0, "weight of the usage contrast.")
    aux_weight: float = opt(0.1, "weight of the auxiliary cosine + InfoNCE terms towards the Stage A teacher.")
    aux_temperature: float = opt(0.05, "temperature of the auxiliary InfoNCE.")
    distill: str = opt("sequence", "'sequence' (cross-entropy on the answer tokens) or 'kl' (token-level self-distillation, as xRAG: adds "
                                   "kl_weight x KL(teacher || student) over the answer tokens, the teacher being the frozen decoder without "
                                   "LoRA reading the English text where the student reads the slots).")
    kl_weight: float = opt(1.0, "weight of the token-level KL term (--distill kl).")
    kl_temperature: float = opt(1.0, "softmax temperature of the token-level KL (--distill kl); the term is scaled by T^2.")
    slot_source: str = opt("pooled", "where slots come from: 'pooled' (the paper's: one mean-pooled vector expanded to K slots), "
                                     "'segments' (the encoder's token states split into K contiguous spans, each span's mean through the "
                                     "Stage A projector) or 'resampler' (K learned queries cross-attending over the projected token "
                                     "states, slot 0 starting as the pooled vector); the last two need encoder_layers or a Hugging Face "
                                     "encoder.")
    resampler_layers: int = opt(1, "cross-attention blocks of the 'resampler' slot source.", keyed_when=_resampler)
    resampler_positions: int = opt(32, "token states the 'resampler' reads at most (a longer text is read as that many span means).",
                                   keyed_when=_resampler)
    k: int | None = opt(None, "slots per text (default: the Stage A artifact's K).")
    k_rule: str | None = opt(None, "K per text, 'ratio,min,max': K = clamp(ceil(n / ratio), min, max) for a text of n encoder tokens "
                                   "(e.g. 8,2,16); trained with the mixed K this gives. Default: a fixed K.")
    hints: bool = opt(False, "the verbatim pathway: each text's digits, Latin-script words, URLs, file names and placeables follow its "
                             "slots as ordinary tokens (llink.hints).")


slots, SlotsConfig = command(
    "slots", lambda cfg: SlotsRecipe(cfg).run(),
    "Stage B: train the slot expander, scaler and LoRA so the decoder reads K injected slots.",
    SlotsArgs, CorpusArgs, EnglishArgs, ExamplesArgs, EvalArgs, TrainArgs, LoRAArgs, MemoryArgs, RunArgs)

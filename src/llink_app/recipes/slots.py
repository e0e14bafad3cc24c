"""Stage B recipe (`llink slots`): encoder -> Stage A projector -> expander -> K slots injected
into the chat prompt, trained with LoRA on the frozen decoder (recipes/lora.py holds the loop)."""

from __future__ import annotations


from dataclasses import dataclass
from pathlib import Path

from llink.errors import LlinkError

from ..args import CorpusArgs, EvalArgs, ExamplesArgs, LoRAArgs, MemoryArgs, RunArgs, TrainArgs, command, opt
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
        a = LLINK.from_pretrained(cfg.from_stage_a, encoder=encoder, decoder=decoder)
        if a.config.stage != "A":
            raise LlinkError(f"{cfg.from_stage_a} is a Stage {a.config.stage} artifact; --from needs a Stage A one")
        dec = a.decoder
        config = replace(a.config, stage="B", expander={"target_norm": median_embedding_norm(dec.embeddings)}, lora=lora_config(cfg))
        model = LLINK(config)
        model.load_state_dict(a.state_dict(), strict=False)  # projector + teacher statistics
        self.model = model.attach(encoder=a.encoder, decoder=dec)
        self.decoder, self.builder = self.model.decoder, self.model.builder

    def passage(self, src: str) -> None:
        return None

    def models_and_upstream(self) -> tuple[dict, str]:
        from llink.model import upstream_key

        # The Stage A artifact names the models; its run key stands for everything that made it.
        return {"decoder": self.decoder.id, "encoder": self.model.encoder.id}, upstream_key(self.cfg.from_stage_a)

    def prepare_inputs(self, show: bool) -> None:
        import torch

        from llink.data.sampling import duplicate_groups
        from llink.encoders import encode_cached
        from llink.slots import chunk_targets, fit_expander
        from llink.teacher import cached_states, normalise

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
        if cfg.expander_init == "regress" and self.saved is None:
            tok = m.decoder.tokenizer
            first = {}
            for i, t in enumerate(en):  # one row per distinct English sentence
                first.setdefault(t, i)
            ids = [tok(t, add_special_tokens=False)["input_ids"][:64] or [tok.eos_token_id] for t in first]
            targets = chunk_targets(ids, m.decoder.embeddings, m.config.prompt_config.k)
            aligned = m.project(self.train_x[list(first.values())])
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
        slots = self.model.expand(aligned)
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
        """The sentence's own slots, zeroed slots, and another sentence's (the shuffled control)."""
        import torch

        from llink.eval.controls import shuffled_order

        slots = self.model.expand(self.model.projector(self.dev_x[:n].to(self.acc.device)))
        return {"loss_true": slots, "loss_zeroed": torch.zeros_like(slots), "loss_shuffled": slots[torch.from_numpy(shuffled_order(n, self.cfg.seed))]}

    def write_artifact(self, path: Path) -> None:
        self.model.config.run_key = self.key
        self.model.save_pretrained(path)


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


slots, SlotsConfig = command(
    "slots", lambda cfg: SlotsRecipe(cfg).run(),
    "Stage B: train the slot expander, scaler and LoRA so the decoder reads K injected slots.",
    SlotsArgs, CorpusArgs, ExamplesArgs, EvalArgs, TrainArgs, LoRAArgs, MemoryArgs, RunArgs)

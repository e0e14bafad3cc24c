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
        from llink.losses import direction_loss, info_nce, usage_contrast
        import torch

        cfg, dev = self.cfg, self.acc.device
        aligned = self.model.projector(self.train_x[idx].to(dev))
        slots = self.model.expand(aligned)
        sft = self.answer_losses(batch, slots).mean()
        y, g = self.train_y[idx].to(dev), self.train_g[idx].to(dev)
        aux = direction_loss(aligned, y) + info_nce(aligned, y, cfg.aux_temperature, q_ids=g, k_ids=g, hard_k=None)
        loss = sft + cfg.aux_weight * aux
        row.update(sft=sft.item(), aux=aux.item())
        if (self.step + 1) % cfg.usage_every == 0:
            # The zeroed pass is a reference, not a target: no gradient pushes the decoder to get
            # worse without slots, and it costs a forward only.
            with torch.no_grad():
                zeroed = self.answer_losses(batch, torch.zeros_like(slots)).mean()
            use = usage_contrast(sft, zeroed)
            loss = loss + cfg.usage_weight * use
            row.update(zeroed=zeroed.item(), usage=use.item())
        return loss

    def dev_inputs(self, n: int) -> dict:
        """The sentence's own slots, zeroed slots, and another sentence's (the shuffled control)."""
        import torch

        from llink.eval.controls import shuffled_order

        slots = self.model.expand(self.model.projector(self.dev_x[:n].to(self.acc.device)))
        return {"loss_true": slots, "loss_zeroed": torch.zeros_like(slots), "loss_shuffled": slots[torch.from_numpy(shuffled_order(n, self.cfg.seed))]}

    def write_artifact(self, path: Path) -> None:
        self.model.config.run_key = self.key
        self.model.save_pretrained(path)


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


slots, SlotsConfig = command(
    "slots", lambda cfg: SlotsRecipe(cfg).run(),
    "Stage B: train the slot expander, scaler and LoRA so the decoder reads K injected slots.",
    SlotsArgs, CorpusArgs, ExamplesArgs, EvalArgs, TrainArgs, LoRAArgs, MemoryArgs, RunArgs)

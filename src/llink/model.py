"""LLINK: the assembled model and its one artifact format.

An artifact is a directory: `config.json` (encoder, decoder, teacher, prompt/K, versions) and
`model.safetensors` (projector, teacher statistics, ...). Nothing else reads or writes it.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import __version__
from .cache import atomic_write
from .errors import LlinkError
from .projector import Projector
from .prompts import PromptConfig
from .teacher import TeacherSpec, TeacherStats, parse_teacher

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
FORMAT = 1


def versions() -> dict:
    import transformers

    return {"llink": __version__, "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version()}


@dataclass
class LLINKConfig:
    encoder: str
    encoder_id: str
    encoder_dim: int
    decoder: str
    decoder_id: str
    hidden_size: int
    teacher: dict
    prompt: dict = field(default_factory=lambda: PromptConfig().to_dict())
    pooling: str = "mean"  # encoder pooling
    projector: dict = field(default_factory=lambda: {"hidden_mult": 4, "dropout": 0.1})
    stage: str = "A"
    template: str | None = None  # the decoder's chat template, verbatim
    versions: dict = field(default_factory=versions)
    format: int = FORMAT

    @property
    def teacher_spec(self) -> TeacherSpec:
        return parse_teacher(self.teacher)

    @property
    def prompt_config(self) -> PromptConfig:
        return PromptConfig(**self.prompt)


class LLINK(nn.Module):
    def __init__(self, config: LLINKConfig):
        super().__init__()
        self.config = config
        self.projector = Projector(config.encoder_dim, config.hidden_size, **config.projector)
        self.register_buffer("teacher_mean", torch.zeros(config.hidden_size))
        self.register_buffer("teacher_std", torch.ones(config.hidden_size))
        self._encoder = None
        self._decoder = None

    # -- pieces -----------------------------------------------------------------------------
    @property
    def teacher_stats(self) -> TeacherStats | None:
        if self.config.teacher_spec.norm == "none":
            return None
        return TeacherStats(self.teacher_mean.cpu().numpy(), self.teacher_std.cpu().numpy())

    def set_teacher_stats(self, stats: TeacherStats | None) -> None:
        if stats is not None:
            self.teacher_mean.copy_(torch.from_numpy(stats.mean))
            self.teacher_std.copy_(torch.from_numpy(stats.std))

    @property
    def encoder(self):
        if self._encoder is None:
            from .encoders import load_encoder

            self.attach(encoder=load_encoder(self.config.encoder))
        return self._encoder

    @property
    def decoder(self):
        if self._decoder is None:
            from .decoders import load_decoder

            self.attach(decoder=load_decoder(self.config.decoder))
        return self._decoder

    def attach(self, encoder=None, decoder=None) -> "LLINK":
        """Use already-loaded models, refusing ones that do not match this artifact."""
        c = self.config
        if encoder is not None:
            if encoder.dim != c.encoder_dim or encoder.id != c.encoder_id:
                raise LlinkError(f"encoder mismatch: artifact was trained with {c.encoder_id} (dim {c.encoder_dim}), got {encoder.id} (dim {encoder.dim})")
            self._encoder = encoder
        if decoder is not None:
            if decoder.hidden_size != c.hidden_size or decoder.id != c.decoder_id:
                raise LlinkError(f"decoder mismatch: artifact was trained with {c.decoder_id} (hidden {c.hidden_size}), got {decoder.id} (hidden {decoder.hidden_size})")
            if c.template is not None and decoder.chat_template != c.template:
                raise LlinkError("decoder chat template differs from the one this artifact was trained with")
            self._decoder = decoder
        return self

    # -- compute ----------------------------------------------------------------------------
    @torch.no_grad()
    def project(self, vectors: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Encoder vectors -> aligned vectors in the teacher's space."""
        was = self.training
        self.eval()
        x = torch.as_tensor(np.asarray(vectors), dtype=torch.float32)
        out = self.projector(x)
        self.train(was)
        return out

    def embed(self, texts, progress: bool = False) -> torch.Tensor:
        from .encoders import encode_cached

        return self.project(encode_cached(self.encoder, texts, progress=progress))

    # -- artifact ---------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        atomic_write(path / WEIGHTS, lambda t: save_file(state, t, metadata={"format": "pt", "llink": __version__}))
        atomic_write(path / CONFIG, lambda t: Path(t).write_text(json.dumps(asdict(self.config), indent=2, ensure_ascii=False)))
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path, encoder=None, decoder=None) -> "LLINK":
        from safetensors.torch import load_file

        path = Path(path)
        if not (path / CONFIG).is_file():
            raise LlinkError(f"{path} is not an LLINK artifact (no {CONFIG})")
        if not (path / WEIGHTS).is_file():
            raise LlinkError(f"{path} is not an LLINK artifact (no {WEIGHTS})")
        try:
            raw = json.loads((path / CONFIG).read_text())
            config = LLINKConfig(**raw)
        except (json.JSONDecodeError, TypeError) as e:
            raise LlinkError(f"{path / CONFIG} is not a valid LLINK config: {e}") from None
        if config.format > FORMAT:
            raise LlinkError(f"{path} was written by a newer llink (format {config.format}); upgrade llink")
        model = cls(config)
        try:
            state = load_file(str(path / WEIGHTS))
            missing, unexpected = model.load_state_dict(state, strict=False)
        except (RuntimeError, OSError) as e:  # size mismatch or an unreadable file
            raise LlinkError(f"{path / WEIGHTS} does not match its config: {str(e).splitlines()[0]}") from None
        if missing or unexpected:
            raise LlinkError(f"{path / WEIGHTS} does not match its config: missing {missing[:3]}, unexpected {unexpected[:3]}")
        model.eval()
        return model.attach(encoder=encoder, decoder=decoder)

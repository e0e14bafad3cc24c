"""LLINK: the assembled model and its one artifact format.

An artifact is a directory: `config.json` (encoder, decoder, teacher, prompt/K, versions) and
`model.safetensors` (projector, teacher statistics, ...). Nothing else reads or writes it.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
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
from .slots import SOURCES, Injection, Resampler, SegmentExpander, SlotExpander, pad_states
from .teacher import TeacherSpec, TeacherStats, check_stats, parse_teacher

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
FORMAT = 1


def versions() -> dict:
    import transformers

    return {"llink": __version__, "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version()}


def _read_config(file: Path) -> dict:
    """An artifact's config.json as a dict, or an error naming the file (never a JSON traceback)."""
    try:
        raw = json.loads(file.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LlinkError(f"{file} is corrupt (not valid JSON: {e}); the artifact was truncated or edited: "
                         "restore it, or re-save / re-train the model") from None
    if not isinstance(raw, dict):
        raise LlinkError(f"{file} is corrupt (a JSON {type(raw).__name__}, not an object): restore it, or re-save / re-train the model")
    return raw


def _read_weights(file: Path) -> dict[str, torch.Tensor]:
    """An artifact's tensors, or an error naming the file when it is truncated or not safetensors."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(file))
    except (SafetensorError, OSError) as e:
        raise LlinkError(f"{file} is truncated or corrupt ({e}): an interrupted copy or save? "
                         "Copy the artifact again, or re-save / re-train the model") from None


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
    encoder_layers: list[int] | None = None  # None: the final layer; else these layers, concatenated
    projector: dict = field(default_factory=lambda: {"hidden_mult": 4, "dropout": 0.1})
    stage: str = "A"
    expander: dict | None = None  # Stage B: {"target_norm": ...}; K is prompt["k"]
    slot_source: str = "pooled"  # llink.slots: "pooled" (one vector -> K slots), "segments" (K spans), "resampler" (K queries over the tokens)
    lora: dict | None = None  # Stage B: {"r", "alpha", "dropout", "targets"}
    template: str | None = None  # the decoder's chat template, verbatim
    versions: dict = field(default_factory=versions)
    format: int = FORMAT
    run_key: str | None = None  # the key of the run that made it (llink.lineage); None before keys existed
    mixture: dict | None = None  # per stage, its parallel pairs and English-only texts (llink.data.mixture); None before issue 26
    languages: dict | None = None  # per stage, the pairs each language gave ({"stage_a": {"km": n, "hi": n}}); None before issue 27

    @classmethod
    def for_models(cls, encoder_name: str, encoder, decoder_name: str, decoder, **fields) -> "LLINKConfig":
        """A config for loaded models: their ids, dimensions and chat template filled in."""
        return cls(encoder=encoder_name, encoder_id=encoder.id, encoder_dim=encoder.dim, encoder_layers=getattr(encoder, "layers", None),
                   decoder=decoder_name, decoder_id=decoder.id, hidden_size=decoder.hidden_size, template=decoder.chat_template, **fields)

    def trained_languages(self) -> list[str] | None:
        """The languages any stage trained on, in order; None when the artifact does not say
        (made before issue 27, or from a user's file whose language it never named)."""
        if not self.languages:
            return None
        return list(dict.fromkeys(lang for stage in self.languages.values() for lang, n in stage.items() if n > 0))

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
        if config.teacher_spec.norm == "zscore_length":  # only then: older artifacts keep their exact weights file
            self.register_buffer("teacher_slope", torch.zeros(config.hidden_size))
        self.expander = None
        if config.slot_source not in SOURCES:
            raise LlinkError(f"slot_source must be one of {', '.join(SOURCES)}, got {config.slot_source!r}")
        if config.expander is not None:
            cls = {"pooled": SlotExpander, "segments": SegmentExpander, "resampler": Resampler}[config.slot_source]
            self.expander = cls(config.hidden_size, config.prompt_config.k, **config.expander)
        self._encoder = None
        self._decoder = None
        self.adapter_name: str | None = None  # the decoder adapter holding this model's LoRA
        self._fixed_k: int | None = None  # with_k
        self._lora_state: dict[str, torch.Tensor] | None = None  # loaded, waiting for a decoder

    # -- pieces -----------------------------------------------------------------------------
    @property
    def teacher_stats(self) -> TeacherStats | None:
        if self.config.teacher_spec.norm == "none":
            return None
        slope = self.teacher_slope.cpu().numpy() if hasattr(self, "teacher_slope") else None
        return TeacherStats(self.teacher_mean.cpu().numpy(), self.teacher_std.cpu().numpy(), slope)

    def set_teacher_stats(self, stats: TeacherStats | None) -> None:
        if stats is not None:
            self.teacher_mean.copy_(torch.from_numpy(stats.mean))
            self.teacher_std.copy_(torch.from_numpy(stats.std))
            check_stats(self.config.teacher_spec, stats)
            if stats.slope is not None:
                self.teacher_slope.copy_(torch.from_numpy(stats.slope))

    @property
    def encoder(self):
        if self._encoder is None:
            from .encoders import load_encoder

            self.attach(encoder=load_encoder(self.config.encoder, layers=self.config.encoder_layers))
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
            if c.lora is not None and self.adapter_name is None:
                self.adapter_name = decoder.new_lora("llink", **c.lora)
                if self._lora_state is not None:
                    decoder.load_lora(self.adapter_name, self._lora_state)
        return self

    @property
    def builder(self):
        from .prompts import PromptBuilder

        return PromptBuilder(self.decoder.tokenizer, self.config.prompt_config)

    def using_adapter(self):
        """Context in which the decoder runs with this model's LoRA (a no-op without one)."""
        return self.decoder.adapter(self.adapter_name)

    def fold_lora(self) -> "LLINK":
        """Add this model's LoRA into its decoder's weights: the same answers without the
        adapter's extra matmuls (serving one model). The decoder then runs this model only."""
        decoder = self.decoder  # loads it: the adapter exists only once a decoder is attached
        if self.adapter_name is not None:
            decoder.fold(self.adapter_name)
        return self

    # -- compute ----------------------------------------------------------------------------
    @torch.no_grad()
    def project(self, vectors: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Encoder vectors -> aligned vectors in the teacher's space."""
        was = self.training
        self.eval()
        x = torch.as_tensor(np.asarray(vectors), dtype=torch.float32).to(self.teacher_mean.device)
        out = self.projector(x)
        self.train(was)
        return out

    def embed(self, texts, progress: bool = False, cache: bool = True) -> torch.Tensor:
        """Foreign texts -> aligned vectors. cache=False keeps the texts off disk (a server
        should not store what its users send) and reads each text once: the short-batch repeat
        (llink.batching) only makes cached rows bit-identical across batches, and nothing is cached."""
        from .encoders import check_texts, encode_cached

        if not cache:
            return self.project(self.encoder.encode(check_texts(list(texts)), progress=progress, repeat_short=False))
        return self.project(encode_cached(self.encoder, texts, progress=progress))

    def expand(self, aligned: torch.Tensor, spans: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Aligned vectors [B, H] -> slot vectors [B, K, H] (Stage B artifacts only). `segments`
        also takes the projected spans [B, K, H]; `resampler` the projected token states [B, N, H]
        and their mask [B, N] (LLINK.detail)."""
        if self.expander is None:
            raise LlinkError("this is a Stage A artifact (projector only): train Stage B with `llink slots --from` it to get slots")
        source = self.config.slot_source
        if source != "pooled" and spans is None:
            raise LlinkError(f"a {source} model needs the text's projected token states (LLINK.detail)")
        if source == "segments":
            return self.expander(spans, aligned)
        if source == "resampler":
            if mask is None:
                raise LlinkError("a resampler model needs the mask of its token states (LLINK.detail)")
            return self.expander(spans, mask, aligned)
        return self.expander(aligned)

    def with_k(self, k: int | None) -> "LLINK":
        """Read every text with k slots instead of the model's K (or K rule): the quality-against-K
        curve of a model trained with mixed K (benchmarks/k_curve.py). k is at most the K the
        expander was built for; None gives the model's own K back. Never saved."""
        if k is not None and not 1 <= int(k) <= self.config.prompt_config.k:
            raise LlinkError(f"k={k}: this model's expander has {self.config.prompt_config.k} slots; choose 1 to {self.config.prompt_config.k}")
        self._fixed_k = None if k is None else int(k)
        return self

    def slot_counts(self, texts) -> list[int]:
        """K of each text: the config's K, or its K rule applied to the encoder's token count."""
        cfg = self.config.prompt_config
        if self._fixed_k is not None:
            return [self._fixed_k] * len(texts)
        if cfg.k_rule is None:
            return [cfg.k] * len(texts)
        count = getattr(self.encoder, "span_token_count", None) or self.encoder.token_count
        return [cfg.k_for(count(t)) for t in texts]

    def hints(self, texts, english: Sequence[bool] | None = None) -> list[list[str] | None]:
        """Per text, its verbatim hints (None when the model takes none). `english` marks the texts
        that are English standing in for a foreign text (English-only training examples): they
        get the hints a translation of them would carry (`english_hints`), not their words."""
        from .hints import english_hints, extract_hints

        if not self.config.prompt_config.hints:
            return [None] * len(texts)
        english = [False] * len(texts) if english is None else list(english)
        if len(english) != len(texts):
            raise ValueError(f"hints: {len(texts)} texts but {len(english)} english flags")
        return [english_hints(t) if e else extract_hints(t) for t, e in zip(texts, english)]

    def detail_counts(self, texts, ks: list[int]) -> list[int]:
        """Rows of encoder detail per text: its K spans (`segments`), or its token states, at most
        the resampler's `positions` (a longer text is read as that many span means)."""
        if self.config.slot_source != "resampler":
            return list(ks)
        count = self.encoder.span_token_count
        return [min(count(t), self.expander.positions) for t in texts]

    def detail(self, texts, ks: list[int], progress: bool = False, cache: bool = True) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """What `expand` reads besides the pooled vector: (projected spans or token states
        [N, rows, H], mask [N, rows]), or (None, None) for `pooled`."""
        if self.config.slot_source == "pooled":
            return None, None
        from .encoders import check_texts, encode_spans_cached

        texts = check_texts(list(texts))
        counts = self.detail_counts(texts, ks)
        rows = encode_spans_cached(self.encoder, texts, counts, progress=progress) if cache else self.encoder.encode_spans(texts, counts, progress=progress)
        return self._project_detail(rows)

    def _project_detail(self, rows) -> tuple[torch.Tensor, torch.Tensor]:
        states, mask = pad_states([torch.as_tensor(np.asarray(r), dtype=torch.float32) for r in rows])
        dev = self.teacher_mean.device
        return self.projector(states.to(dev)), mask.to(dev)

    @torch.no_grad()
    def read(self, texts, progress: bool = False, cache: bool = True, english: Sequence[bool] | None = None) -> Injection:
        """Foreign texts -> what each prompt gets in their place: slots (encode, project,
        expand), each text's K and its verbatim hints. cache=False keeps the texts off disk.
        `english` marks texts that are English read in a foreign text's place: they get
        `english_hints` (see `hints`)."""
        was = self.training
        self.eval()
        texts = [texts] if isinstance(texts, str) else list(texts)
        ks = self.slot_counts(texts)
        if cache or self.config.slot_source == "pooled":
            aligned = self.embed(texts, progress=progress, cache=cache)
            detail = self.detail(texts, ks, progress=progress, cache=cache)
        else:  # uncached (a server): one encoder pass gives the spans and the pooled vector
            from .encoders import check_texts

            texts = check_texts(texts)
            rows, pooled = self.encoder.encode_spans(texts, self.detail_counts(texts, ks), progress=progress, with_pooled=True)
            aligned, detail = self.project(pooled), self._project_detail(rows)
        slots = self.expand(aligned, *detail)
        self.train(was)
        return Injection(slots, ks, self.hints(texts, english))

    def slots(self, texts, progress: bool = False, cache: bool = True) -> torch.Tensor:
        """Foreign texts -> the slot vectors injected for each [N, K, H] (padded to the largest K)."""
        return self.read(texts, progress=progress, cache=cache).slots

    def generate(self, texts, instruction: str = "Translate to English.", **kwargs) -> list[str]:
        """Answer `instruction` about each foreign text, reading it through its slots (and hints)."""
        from .generate import generate

        texts = [texts] if isinstance(texts, str) else list(texts)
        inj = self.read(texts)
        with self.using_adapter():
            return generate(self.decoder, inj.prompts(self.builder, instruction), inj.slots, **kwargs)

    # -- artifact ---------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        if self.config.lora is not None:
            if self._decoder is None or self.adapter_name is None:
                if self._lora_state is None:
                    raise LlinkError("cannot save a Stage B model whose LoRA weights were never attached")
                lora = self._lora_state
            else:
                lora = self._decoder.lora_state(self.adapter_name)
            state.update({f"lora.{k}": v for k, v in lora.items()})
        atomic_write(path / WEIGHTS, lambda t: save_file(state, t, metadata={"format": "pt", "llink": __version__}))
        atomic_write(path / CONFIG, lambda t: Path(t).write_text(json.dumps(asdict(self.config), indent=2, ensure_ascii=False)))
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path, encoder=None, decoder=None) -> "LLINK":
        path = Path(path)
        if not (path / CONFIG).is_file():
            raise LlinkError(f"{path} is not an LLINK artifact (no {CONFIG})")
        if not (path / WEIGHTS).is_file():
            raise LlinkError(f"{path} is not an LLINK artifact: {path / WEIGHTS} is missing "
                             "(an incomplete copy? copy the whole directory again, or re-save / re-train the model)")
        raw = _read_config(path / CONFIG)
        try:
            if raw.get("stage") == "direct":
                raise LlinkError(f"{path} is a direct-finetune baseline, not an LLINK model (load it with DirectModel.from_pretrained)")
            config = LLINKConfig(**raw)
        except (json.JSONDecodeError, TypeError) as e:
            raise LlinkError(f"{path / CONFIG} is not a valid LLINK config: {e}") from None
        if config.format > FORMAT:
            raise LlinkError(f"{path} was written by a newer llink (format {config.format}); upgrade llink")
        model = cls(config)
        try:
            state = _read_weights(path / WEIGHTS)
            lora = {k[len("lora."):]: state.pop(k) for k in list(state) if k.startswith("lora.")}
            missing, unexpected = model.load_state_dict(state, strict=False)
        except (RuntimeError, OSError) as e:  # size mismatch or an unreadable file
            raise LlinkError(f"{path / WEIGHTS} does not match its config: {str(e).splitlines()[0]}") from None
        if missing or unexpected:
            raise LlinkError(f"{path / WEIGHTS} does not match its config: missing {missing[:3]}, unexpected {unexpected[:3]}")
        if (config.lora is None) != (not lora):
            raise LlinkError(f"{path / WEIGHTS} does not match its config: LoRA weights {'missing' if config.lora else 'present without a lora config'}")
        model._lora_state = lora or None
        model.eval()
        return model.attach(encoder=encoder, decoder=decoder)


def artifact_key(path: str | Path) -> str | None:
    """The run key an artifact records in its config.json, or None (no artifact, or one made
    before run keys)."""
    try:
        return json.loads((Path(path) / CONFIG).read_text()).get("run_key")
    except (OSError, ValueError, AttributeError):
        return None


def upstream_key(path: str | Path) -> str:
    """What a downstream stage keys on for this artifact: its run key, or for an artifact made
    before run keys, the content hash of its files (never re-saved, so stable)."""
    from .cache import file_fingerprint

    path = Path(path)
    return artifact_key(path) or "files-" + "-".join(file_fingerprint(path / f) for f in (CONFIG, WEIGHTS))


def inference_dtype(dtype: str, device: str) -> torch.dtype:
    """`auto` is bf16 on CUDA and fp32 elsewhere: bf16 is fast on a CPU only with AVX512-BF16 or
    AMX (there it halves a single prompt's prefill, benchmarks/prefill.py --dtype bf16)."""
    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if dtype == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    if dtype not in table:
        raise LlinkError(f"--dtype must be auto, fp32, bf16 or fp16, got {dtype!r}")
    if dtype == "fp16" and torch.device(device).type == "cpu":
        raise LlinkError("--dtype fp16 needs a GPU; use bf16 or fp32 on a CPU")
    return table[dtype]


def check_device(device: str) -> str:
    """A torch device string that exists on this machine, or a clear error."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise LlinkError(f"--device {device!r} is not a device (cpu, cuda, cuda:1, mps)") from None
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise LlinkError(f"--device {device}: no such CUDA device here ({torch.cuda.device_count()} visible)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise LlinkError("--device mps: MPS is not available here")
    return device


def load_for_inference(path: str | Path, device: str = "cpu", dtype: str = "auto", fold: bool = True,
                       need_slots: bool = False) -> LLINK:
    """An artifact ready to answer: models on `device`, the LoRA folded into the decoder in fp32
    (fold=False keeps the base decoder usable, for evaluations beside the baselines), then the
    decoder cast to `dtype`. Projector and expander stay fp32: slots are cast on injection.
    need_slots refuses a Stage A artifact before any model is loaded."""
    from .decoders import load_decoder
    from .encoders import load_encoder

    device = check_device(device)
    dt = inference_dtype(dtype, device)
    m = LLINK.from_pretrained(path)
    if need_slots and m.expander is None:
        raise LlinkError(f"{path} is a Stage A artifact (projector only): train Stage B with `llink slots --from {path}`")
    m.attach(encoder=load_encoder(m.config.encoder, device=device, layers=m.config.encoder_layers), decoder=load_decoder(m.config.decoder, device=device))
    if fold:
        m.fold_lora()
    m.decoder.model.to(dt)
    return m.to(device)


class DirectModel:
    """The direct-finetune baseline: the decoder + a LoRA adapter, reading raw foreign text.

    Same on-disk layout as LLINK (config.json with stage "direct", model.safetensors of LoRA
    tensors) so the evaluation loads every system the same way.
    """

    def __init__(self, config: dict, lora: dict[str, torch.Tensor], decoder=None):
        self.config, self._lora, self._decoder, self.adapter_name = config, lora, None, None
        if decoder is not None:
            self.attach(decoder)

    @staticmethod
    def save(path: str | Path, decoder, adapter: str, prompt: PromptConfig, lora: dict, run_key: str | None = None,
             mixture: dict | None = None, languages: dict | None = None) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        config = {"stage": "direct", "decoder_id": decoder.id, "hidden_size": decoder.hidden_size, "prompt": prompt.to_dict(),
                  "lora": lora, "template": decoder.chat_template, "versions": versions(), "format": FORMAT, "run_key": run_key,
                  "mixture": mixture, "languages": languages}
        state = {f"lora.{k}": v for k, v in decoder.lora_state(adapter).items()}
        atomic_write(path / WEIGHTS, lambda t: save_file(state, t, metadata={"format": "pt", "llink": __version__}))
        atomic_write(path / CONFIG, lambda t: Path(t).write_text(json.dumps(config, indent=2, ensure_ascii=False)))
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path, decoder=None) -> "DirectModel":
        path = Path(path)
        if not (path / CONFIG).is_file() or not (path / WEIGHTS).is_file():
            missing = " and ".join(str(path / f) for f in (CONFIG, WEIGHTS) if not (path / f).is_file())
            raise LlinkError(f"{path} is not a direct-finetune artifact: {missing} missing "
                             "(an incomplete copy? copy the whole directory again, or re-train the baseline)")
        config = _read_config(path / CONFIG)
        if config.get("stage") != "direct":
            raise LlinkError(f"{path} is not a direct-finetune artifact (stage {config.get('stage')!r})")
        state = _read_weights(path / WEIGHTS)
        return cls(config, {k[len("lora."):]: v for k, v in state.items()}, decoder)

    def attach(self, decoder) -> "DirectModel":
        if decoder.id != self.config["decoder_id"]:
            raise LlinkError(f"decoder mismatch: direct finetune was trained on {self.config['decoder_id']}, got {decoder.id}")
        self._decoder = decoder
        self.adapter_name = decoder.new_lora("direct", **self.config["lora"])
        decoder.load_lora(self.adapter_name, self._lora)
        return self

    @property
    def decoder(self):
        return self._decoder

    @property
    def builder(self):
        from .prompts import PromptBuilder

        return PromptBuilder(self._decoder.tokenizer, PromptConfig(**self.config["prompt"]))

    def using_adapter(self):
        return self._decoder.adapter(self.adapter_name)

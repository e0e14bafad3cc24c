"""Option groups shared by the training commands (litgpt's TrainArgs / EvalArgs), and `command()`,
which builds a command's flat signature, docstring and config dataclass from its groups.

Each option is declared once, with its default, its help and whether it is run-only (where a run
writes, how it reports or how it saves memory: it may differ between two runs of the same
computation, so it stays out of the run key). The marker is the option's own field metadata, so it
cannot drift from a list kept elsewhere.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import MISSING, dataclass, field, fields, make_dataclass
from pathlib import Path


def opt(default, doc: str, run_only: bool = False, keyed_when=None):
    """A field of an option group: its default, its --help line, and whether it is run-only.
    `keyed_when(cfg)`: the option enters the run key only when this holds (an option that means
    nothing unless another is set, such as the resampler's depth for a pooled run), so adding it
    to llink leaves every earlier run's key, and what it may reuse, as it was."""
    return field(default=default, metadata={"doc": doc, "run_only": run_only, "keyed_when": keyed_when})


@dataclass
class CorpusArgs:
    lang: str = opt("km", "language of the committed corpus (data/en-<lang>), or several (km,hi,si): one bridge for all, each language "
                          "giving the same number of pairs, dev scored per language.")
    train_data: Path | None = opt(None, "any TSV/JSONL of (source, english) pairs instead of the train split.", run_only=True)
    dev_data: Path | None = opt(None, "any TSV/JSONL of pairs instead of the dev split (dev scores only; never trained on).", run_only=True)


@dataclass
class EnglishArgs:
    """English-only examples mixed into the parallel pairs (issue 26): the encoder reads the English
    text itself and the target (Stage A's teacher, Stage B's answer) comes from the same text, so
    the bridge learns to carry English of every kind, which the multilingual encoder already aligns
    with the foreign language."""

    english_share: float = opt(0.0, "share of English-only examples in the training set: 0 parallel pairs only; 0 < s < 1 keeps every "
                                    "parallel pair and adds s/(1-s) English texts per pair; 1 English only, as many texts as there are "
                                    "parallel pairs. A seeded sample of --english_data; recorded in config.json as `mixture`.",
                               keyed_when=lambda cfg: cfg.english_share > 0)
    english_data: Path | None = opt(None, "English texts: a JSONL(.gz) with an `en` field per line, or a .txt(.gz) with one text per "
                                          "line (default: data/en/english.jsonl.gz from `llink data english`), or `pairs`: the English sides of "
                                          "the train pairs themselves (in-domain English, the same register as the pairs).", run_only=True)


@dataclass
class ExamplesArgs:
    """The instruction examples Stage B and the direct finetune both train on."""

    data: Path | None = opt(None, "instruction data from `llink synth` (a directory holding train.jsonl, or a .jsonl file); without it "
                                  "the examples are synthesised here (cached) from the train split.", run_only=True)
    tasks: str = opt("translate,summarise,bullets,qa", "comma-separated task families: translate, summarise, bullets, qa.")
    per_task: int = opt(200, "examples per generated (non-translation) task.")
    max_translate: int | None = opt(None, "at most this many translation examples (default: every eligible pair).")
    passages: int = opt(0, "train passages (2-6 consecutive sentences of one help file, built like test_passages) added whole "
                           "to every task: translation targets their English, the other tasks answers self-distilled from it.",
                        keyed_when=lambda cfg: cfg.passages > 0)
    synth_max_new_tokens: int = opt(48, "answer length cap when self-distilling targets.")
    max_answer_tokens: int | None = opt(48, "drop training examples whose answer is longer (None keeps all).")
    passage_answer_tokens: int | None = opt(None, "the answer cap for examples whose foreign text is one of the --passages "
                                                  "(default: --max_answer_tokens). A passage's English is ~5 sentences (median 71 "
                                                  "tokens of the bundled decoder): raising only its cap keeps the sentence examples, "
                                                  "and the step time, as they are.",
                                            keyed_when=lambda cfg: cfg.passages > 0 and cfg.passage_answer_tokens is not None)
    english_answer_tokens: int | None = opt(None, "the answer cap for English-only examples (--english_share; default: "
                                                  "--max_answer_tokens). A sentence cap keeps only short English; a paragraph's "
                                                  "cap lets the decoder see English of every length and register through the slots.",
                                            keyed_when=lambda cfg: cfg.english_share > 0 and cfg.english_answer_tokens is not None)


@dataclass
class EvalArgs:
    max_dev: int = opt(200, "dev translation examples scored in usage.json.", run_only=True)
    eval_examples: int = opt(64, "dev examples scored at each periodic evaluation.", run_only=True)
    eval_every: int = opt(50, "steps between dev evaluations.", run_only=True)


@dataclass
class TrainArgs:
    steps: int = opt(300, "optimiser steps (give the baseline Stage B's, for the same budget).")
    batch_size: int = opt(16, "examples per step and process.")
    lr_lora: float = opt(2e-4, "peak learning rate of the LoRA weights.")
    lr_min_ratio: float = opt(0.1, "final learning rate as a fraction of the peak (cosine).")
    warmup_steps: int = opt(20, "linear warmup steps.")
    weight_decay: float = opt(0.0, "AdamW weight decay.")
    clip: float = opt(1.0, "gradient-norm clipping.")
    precision: str = opt("auto", "auto (bf16 autocast where the device runs it natively: CUDA, CPUs with AVX512-BF16 or AMX; fp32 "
                                 "elsewhere, where bf16 is emulated and slower), fp32 or bf16.")
    seed: int = opt(17, "seed for sampling, initialisation and batch order.")


@dataclass
class LoRAArgs:
    lora_r: int = opt(16, "LoRA rank.")
    lora_alpha: int = opt(16, "LoRA alpha.")
    lora_dropout: float = opt(0.05, "LoRA dropout.")
    lora_targets: str = opt("q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", "comma-separated decoder module names that get LoRA.")


@dataclass
class MemoryArgs:
    gradient_checkpointing: bool = opt(False, "recompute every batch's decoder activations in the backward pass instead of keeping "
                                              "them: less memory for ~40% more time, the same weights.", run_only=True)
    checkpoint_above_tokens: int | None = opt(None, "recompute activations only for batches of more than this many tokens (rows x "
                                                    "length: the long ones that set the peak memory); the same weights.", run_only=True)


@dataclass
class RunArgs:
    checkpoint_every: int = opt(50, "steps between atomic checkpoints.", run_only=True)
    resume: bool = opt(False, "continue from out/checkpoint.safetensors if present (refused if it was written under another run key).",
                       run_only=True)
    cpu: bool = opt(False, "force CPU even when a GPU is present.", run_only=True)
    progress: bool = opt(True, "show progress bars.", run_only=True)


def command(name: str, run, summary: str, *groups):
    """(fn, Config): `fn(**options)` runs `run(Config(**options))`; its signature and docstring are
    the groups' fields in order, so jsonargparse shows them as flat options (`--steps`, `--lora_r`)
    and a recipe YAML fills them by the same names. The first group to declare a name wins, so a
    command's own group (first) can give a shared option another default."""
    merged: dict[str, tuple] = {}
    for group in groups:
        hints = typing.get_type_hints(group)  # the annotations are strings (postponed): resolve them
        for f in fields(group):
            merged.setdefault(f.name, (f.name, hints[f.name], f))
    params, docs, specs = [], [], []
    for fname, ann, f in merged.values():
        default = f.default if f.default is not MISSING else f.default_factory()
        params.append(inspect.Parameter(fname, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann))
        docs.append(f"        {fname}: {f.metadata.get('doc', '')}")
        specs.append((fname, ann, field(default=default, metadata=dict(f.metadata))))
    config = make_dataclass(f"{name.title().replace('-', '').replace('_', '')}Config", specs)

    def fn(**options):
        return run(config(**options))

    fn.__name__ = fn.__qualname__ = name.replace("-", "_")
    fn.__signature__ = inspect.Signature(params)
    fn.__doc__ = summary.strip() + "\n\n    Args:\n" + "\n".join(docs) + "\n"
    fn.__module__ = run.__module__
    return fn, config

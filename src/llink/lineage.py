"""Run keys: the one way llink decides that earlier work can be reused.

A stage's run key hashes what it was *asked* to compute, never what it computed:
- its resolved settings (those that change the result; where a run writes and how often it
  reports are not part of it),
- the content of its inputs (the pairs or examples it reads, hashed as text),
- the models it reads (ids, readout),
- a version tag per computation (`VERSIONS`), bumped by hand when that computation changes,
- the run key of the stage upstream.
Checkpoints, artifacts, cached rows and scored results carry their key; a later run reuses them
when, and only when, its own key is the same. Floating-point results differ between CPUs and batch
shapes by ~1e-7, so the bits of a computed tensor never enter a key.

`TRACKED` names the functions each tag covers. tests/unit/test_lineage.py records a hash of their
source (comments and docstrings excluded) per tag and fails when one changes while its tag stays
the same: bump the tag there and here together.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

# A tag is part of every key its computation feeds: bumping it recomputes that and what follows.
VERSIONS = {
    "readout": "windows-v1",  # encoder vectors (texts past the position limit read in windows)
    "batching": "same-length-v1",  # how cached rows are batched when computed
    "teacher": "teacher-v1",  # teacher-state extraction and normalisation
    "stage_a": "stage-a-v1",
    "spans": "spans-v1",  # encoder span means (the `segments` slot source)
    "stage_b": "stage-b-v4",  # v2: --distill kl (token-level self-distillation); v3: slot sources, K per text, hints; v4: English-only examples get english_hints
    "direct": "direct-v2",  # v2: the prompt builder's K per prompt and hints (no change for raw-text prompts)
    "sweep": "sweep-v2",  # v2: result keys src2en / en2src (were km2en / en2km)
    "usage": "usage-v2",  # dev answer losses with own / shuffled / zeroed slots (v2: shuffled brings its K and hints)
    "generation": "generation-v3",  # prompts and decoding of every evaluated system (v2: the oracle `english`; v3: K per text, hints)
    "comprehend": "comprehend-v2",  # meaning-choice items and option log-likelihoods (v2: K per text, hints)
    "synth": "synth-v1",  # self-distilled instruction targets (the task instructions and the generator's prompt)
}

# "module:qualname" of what each tag covers (read by the test; the library never imports these).
TRACKED = {
    "readout": ["llink.encoders:_encode_windows", "llink.encoders:_pool_windows", "llink.encoders:_means", "llink.encoders:masked_mean", "llink.encoders:split_windows",
                "llink.e5:load_bert"],
    "batching": ["llink.batching:same_length_batches"],
    "spans": ["llink.encoders:_encode_spans", "llink.encoders:_token_states", "llink.encoders:span_bounds"],
    "teacher": ["llink.teacher:extract", "llink.teacher:normalise", "llink.teacher:TeacherStats.fit", "llink.teacher:TeacherStats.apply",
                "llink.teacher:fit_stats", "llink.teacher:pooled_lengths", "llink.teacher:lengths_for", "llink.teacher:check_stats", "llink.prompts:PromptBuilder.teacher"],
    "stage_a": ["llink.alignment:stage_a_tensors", "llink.alignment:stage_a_loss", "llink.losses:info_nce", "llink.losses:TeacherQueue.enqueue",
                "llink.losses:direction_loss", "llink.losses:log_norm_loss", "llink.losses:temperature_at", "llink.projector:Projector.forward",
                "llink.projector:Projector.fit_centre", "llink.schedules:lr_at", "llink_app.recipes.align:AlignRecipe.train"],
    "stage_b": ["llink.slots:SlotExpander.forward", "llink.slots:SegmentExpander.forward", "llink.slots:Resampler", "llink.slots:_CrossBlock",
                "llink.slots:fit_resampler", "llink.model:LLINK.detail", "llink.model:LLINK.detail_counts", "llink.slots:inject", "llink.slots:fit_expander",
                "llink.slots:fit_segment_expander", "llink.slots:chunk_targets", "llink.hints:extract_hints", "llink.hints:english_hints",
                "llink.hints:_take", "llink.hints:_kept_in_translation", "llink.model:LLINK.hints", "llink.prompts:PromptConfig.k_for",
                "llink.prompts:format_hints", "llink.model:LLINK.read", "llink_app.recipes.slots:SlotsRecipe.batch_spans",
                "llink.losses:answer_loss", "llink.losses:answer_logits", "llink.losses:answer_ce", "llink.losses:token_kl",
                "llink.losses:usage_contrast", "llink.prompts:PromptBuilder.chat", "llink.schedules:lr_at",
                "llink_app.recipes.slots:SlotsRecipe.step_loss", "llink_app.recipes.slots:SlotsRecipe.prepare_inputs",
                "llink_app.recipes.slots:SlotsRecipe.answer_logits", "llink_app.recipes.slots:SlotsRecipe.teacher_logits",
                "llink_app.recipes.slots:teacher_prompts",
                "llink_app.recipes.lora:LoRARecipe.train", "llink_app.recipes.lora:epoch_batches"],
    "direct": ["llink.losses:answer_loss", "llink.losses:answer_logits", "llink.losses:answer_ce", "llink.prompts:PromptBuilder.chat", "llink.schedules:lr_at",
               "llink_app.recipes.direct:DirectRecipe.step_loss", "llink_app.recipes.lora:LoRARecipe.train", "llink_app.recipes.lora:epoch_batches"],
    "sweep": ["llink.sweep:probe", "llink.sweep:run_sweep"],
    "usage": ["llink_app.recipes.lora:LoRARecipe.usage", "llink_app.recipes.slots:SlotsRecipe.dev_inputs",
              "llink_app.recipes.direct:DirectRecipe.dev_inputs", "llink.eval.controls:shuffled_order"],
    "comprehend": ["llink.eval.comprehend:meaning_items", "llink.eval.comprehend:option_logprobs", "llink.eval.comprehend:score_options",
                   "llink.eval.comprehend:comprehension_systems", "llink.prompts:PromptBuilder.chat"],
    "generation": ["llink.generate:generate", "llink.eval.generate:llink_systems", "llink.prompts:PromptBuilder.chat", "llink.model:LLINK.read",
                   "llink.hints:extract_hints", "llink.hints:_take", "llink.model:LLINK.hints", "llink.prompts:format_hints"],
    "synth": ["llink.data.synth:synthesize", "llink.data.synth:LocalGenerator.__call__", "llink.data.synth:TASKS"],
}


def version(*tags: str) -> dict[str, str]:
    """The version tags of these computations, as they enter a key."""
    unknown = [t for t in tags if t not in VERSIONS]
    if unknown:
        raise KeyError(f"no version tag {unknown}; known: {sorted(VERSIONS)}")
    return {t: VERSIONS[t] for t in tags}


def digest(obj: Any) -> str:
    """A short stable hash of a JSON-serialisable object (dict key order ignored)."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:20]


def content_key(rows) -> str:
    """The content hash of an input: a list of texts or of tuples of texts."""
    return digest([list(r) if isinstance(r, tuple) else r for r in rows])


def run_key(stage: str, settings: dict, inputs: dict, models: dict, upstream: str | None = None, tags: tuple[str, ...] = ()) -> tuple[str, dict]:
    """(key, parts) of one stage's run. `parts` is what the key hashes, kept beside it in a
    checkpoint so a refused resume can say which part changed."""
    parts = {"stage": stage, "settings": settings, "inputs": inputs, "models": models, "upstream": upstream,
             "versions": version(stage, *tags) if stage in VERSIONS else version(*tags)}
    parts = json.loads(json.dumps(parts, sort_keys=True, default=str))
    return digest(parts), parts


def changed(old: dict | None, new: dict) -> list[str]:
    """What differs between two key part maps, one line per setting or input."""
    old = old or {}
    out = []
    for section in ("settings", "inputs", "models", "versions"):
        a, b = old.get(section) or {}, new.get(section) or {}
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                # an input is a content hash: that it changed is what a user can act on
                out.append(f"{section}.{k} changed" if section == "inputs" else f"{section}.{k}: {a.get(k)!r} -> {b.get(k)!r}")
    for k in ("stage", "upstream"):
        if old.get(k) != new.get(k):
            out.append(f"{k}: {old.get(k)!r} -> {new.get(k)!r}")
    return out

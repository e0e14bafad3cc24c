"""THE prompt builder: the only place a prompt is turned into token ids.

Training, evaluation, inference and serving all call it, so the K slot positions, the chat
template and the label mask can never drift apart (the authors used three formats and a label
mask that searched for a marker that never occurred).

A prompt is the decoder's own chat template rendered around a sentinel; the sentinel is then
replaced by K placeholder positions whose input embeddings the model overwrites with slots.
No token is added to the vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch

from .errors import LlinkError

IGNORE = -100
_SENTINEL = "\ue000LLINK\ue001"  # private-use characters: cannot come out of a real passage's NFC text


@dataclass(frozen=True)
class PromptConfig:
    """How a prompt looks. Saved in every artifact and checked on load."""

    k: int = 8
    # A short system prompt: the template's default one costs ~20 tokens per example for nothing.
    # None keeps the template's default.
    system: str | None = "You are a helpful assistant."
    joiner: str = "\n\n"
    teacher_max_tokens: int = 127
    # K per text: {"ratio": r, "min": a, "max": b} gives K = clamp(ceil(n / r), a, b) for a text of
    # n encoder tokens (`k` is then b, the width of a slot tensor). None: every text gets `k`.
    k_rule: dict | None = None
    # The verbatim pathway: a text's digits, Latin-script words, URLs, file names and placeables
    # (llink.hints) follow its slots as ordinary tokens, for what a pooled embedding loses.
    hints: bool = False

    def __post_init__(self):
        if self.k_rule is not None:
            r = self.k_rule
            if set(r) != {"ratio", "min", "max"} or not (r["ratio"] > 0 and 1 <= r["min"] <= r["max"]):
                raise LlinkError(f"k_rule must be {{ratio > 0, 1 <= min <= max}}, got {r!r}")
            if self.k != r["max"]:
                raise LlinkError(f"with a k_rule, k is the rule's max ({r['max']}), got k={self.k}")

    def k_for(self, n_tokens: int) -> int:
        """How many slots a text of n_tokens encoder tokens gets."""
        if self.k_rule is None:
            return self.k
        r = self.k_rule
        return int(min(max(math.ceil(n_tokens / r["ratio"]), r["min"]), r["max"]))

    def to_dict(self) -> dict:
        return asdict(self)


def parse_k_rule(text: str | None) -> dict | None:
    """`ratio,min,max` (e.g. "8,2,16") -> a k_rule; None or "" for a fixed K."""
    if not text:
        return None
    try:
        ratio, lo, hi = (float(x) for x in str(text).split(","))
    except ValueError:
        raise LlinkError(f"--k_rule must be 'ratio,min,max' (e.g. 8,2,16: one slot per 8 encoder tokens, 2 to 16 slots), got {text!r}") from None
    if not lo.is_integer() or not hi.is_integer():
        raise LlinkError(f"--k_rule: min and max are slot counts (integers), got {text!r}")
    return {"ratio": ratio, "min": int(lo), "max": int(hi)}


def format_hints(hints) -> str:
    """The hint segment as the decoder reads it, right after the slots."""
    return "Verbatim: " + " | ".join(hints)


@dataclass
class Encoded:
    input_ids: list[int]
    slot_positions: list[int] = field(default_factory=list)
    labels: list[int] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


class PromptBuilder:
    def __init__(self, tokenizer, config: PromptConfig | None = None):
        self.tok = tokenizer
        self.cfg = config or PromptConfig()
        if self.cfg.k < 1:
            raise LlinkError(f"K (number of slots) must be >= 1, got {self.cfg.k}")
        self.placeholder_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.has_template = bool(getattr(tokenizer, "chat_template", None))

    # -- text rendering ---------------------------------------------------------------------
    def _messages(self, user: str) -> list[dict]:
        msgs = []
        if self.cfg.system is not None:
            msgs.append({"role": "system", "content": self.cfg.system})
        msgs.append({"role": "user", "content": user})
        return msgs

    def _render(self, messages: list[dict], generation_prompt: bool) -> str:
        if self.has_template:
            return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
        # Plain LMs without a template: a minimal, still-deterministic layout.
        text = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages)
        return text + ("Assistant:" if generation_prompt else "")

    def _ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"] if text else []

    def user_content(self, instruction: str, passage: str | None, hints=None) -> str:
        """The first user turn: the passage (raw text or the slot sentinel, then any hints), then
        the instruction.

        The passage comes first so that everything before it is the same for every task (one
        prefix to cache) and a follow-up question can reuse the passage's keys and values.
        """
        if not instruction or not instruction.strip():
            raise LlinkError("the instruction is empty")
        if passage is not None and not passage.strip():
            raise LlinkError("the passage is empty or whitespace-only")
        body = _SENTINEL if passage is None else passage
        if hints:
            body += "\n" + format_hints(hints)
        return f"{body}{self.cfg.joiner}{instruction.strip()}"

    # -- chat prompts -----------------------------------------------------------------------
    def chat(self, instruction: str, passage: str | None = None, answer: str | None = None,
             history: Sequence[tuple[str, str]] = (), close: bool = True, k: int | None = None,
             hints: Sequence[str] | None = None) -> Encoded:
        """Token ids of one chat prompt.

        passage=None puts k slot positions (default: the config's K) where the passage goes
        (LLINK), followed by the text's verbatim `hints` when the config has the hint pathway; a
        string puts the raw text there (the base and direct-finetune baselines). With an answer, labels are IGNORE
        everywhere except the answer tokens and the end-of-turn token that closes them;
        close=False leaves that end-of-turn out (the answer as a continuation to score).
        history: earlier (question, answer) turns about the same passage; the passage sits in the
        first of them, and `instruction` is the newest question.
        """
        if passage is not None and _SENTINEL in passage:
            raise LlinkError("the passage contains the reserved slot sentinel characters U+E000/U+E001")
        k = self.cfg.k if k is None else int(k)
        if passage is None and not 1 <= k <= self.cfg.k:
            raise LlinkError(f"a prompt reserves 1 to {self.cfg.k} slots (the config's K), asked for {k}")
        if hints is not None and (passage is not None or not self.cfg.hints):
            raise LlinkError("hints go with slots, and only for a model trained with the hint pathway (hints: true)")
        turns = list(history) + [(instruction, None)]
        messages = self._messages(self.user_content(turns[0][0], passage, hints))
        if history:
            messages.append({"role": "assistant", "content": turns[0][1]})
            for q, a in turns[1:]:
                if not q or not q.strip():
                    raise LlinkError("a follow-up question is empty")
                messages.append({"role": "user", "content": q.strip()})
                if a is not None:
                    messages.append({"role": "assistant", "content": a})
        prompt = self._render(messages, generation_prompt=True)
        if passage is None:
            pre, post = prompt.split(_SENTINEL)
            pre_ids, post_ids = self._ids(pre), self._ids(post)
            ids = pre_ids + [self.placeholder_id] * k + post_ids
            slots = list(range(len(pre_ids), len(pre_ids) + k))
        else:
            ids, slots = self._ids(prompt), []
        if answer is None:
            return Encoded(ids, slots)
        ans_ids = self._answer_ids(messages, prompt, answer, close)
        return Encoded(ids + ans_ids, slots, [IGNORE] * len(ids) + ans_ids)

    def _answer_ids(self, messages: list[dict], prompt: str, answer: str, close: bool = True) -> list[int]:
        if not answer.strip():
            raise LlinkError("the answer (training target) is empty")
        full = self._render(messages + [{"role": "assistant", "content": answer}], generation_prompt=False)
        if self.has_template and full.startswith(prompt):
            # What the template puts after the prompt: the answer and its end-of-turn marker.
            # Trailing whitespace after end-of-turn is never generated, so it is not trained on.
            tail = full[len(prompt) :]
            if close:
                return self._ids(tail.rstrip())
            # Cut right after the answer as the template wrote it: what a template puts before it
            # stays, the end-of-turn marker (whatever its spelling) goes.
            return self._ids(tail[: tail.index(answer) + len(answer)] if answer in tail else answer)
        return self._ids(answer) + ([self.tok.eos_token_id] if close else [])

    # -- teacher prompts --------------------------------------------------------------------
    def teacher(self, text: str) -> tuple[list[int], list[int], int]:
        """(ids, sentence positions, placeholder position) for a sentence with the placeholder
        appended after it — the paper's teacher input (BOS, <=127 tokens, placeholder)."""
        if not text or not text.strip():
            raise LlinkError("empty sentence given to the teacher")
        bos = [self.tok.bos_token_id] if self.tok.bos_token_id is not None else []
        body = self._ids(text)[: self.cfg.teacher_max_tokens]
        ids = bos + body + [self.placeholder_id]
        return ids, list(range(len(bos), len(bos) + len(body))), len(ids) - 1


def pad_batch(batch: list[Encoded], pad_id: int, left: bool = False, multiple: int = 1) -> dict[str, torch.Tensor]:
    """Pad a list of Encoded to tensors. Left padding for generation, right for training
    (with right padding causal attention never lets a real token see a pad). `multiple` rounds
    the width up: fewer distinct shapes let the CPU allocator reuse memory between steps."""
    n, width = len(batch), max(len(e) for e in batch)
    width = -(-width // multiple) * multiple
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    labels = torch.full((n, width), IGNORE, dtype=torch.long)
    slot_mask = torch.zeros((n, width), dtype=torch.bool)
    for i, e in enumerate(batch):
        off = width - len(e) if left else 0
        ids[i, off : off + len(e)] = torch.tensor(e.input_ids)
        mask[i, off : off + len(e)] = 1
        if e.labels is not None:
            labels[i, off : off + len(e)] = torch.tensor(e.labels)
        for p in e.slot_positions:
            slot_mask[i, off + p] = True
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "slot_mask": slot_mask}

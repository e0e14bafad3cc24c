"""Pairwise preference between two systems' outputs (the paper's LLM-as-judge protocol).

Each item is judged twice, once in each order, with the systems anonymised as "Answer 1/2"; an
item is a win only when both orders prefer the same system, otherwise a tie. Judges: any
OpenAI-compatible endpoint, a local Hugging Face causal LM, or the offline reference-based judge
(encoder cosine + chrF++ to the reference), which runs anywhere and is labelled as such.

Each saved row names its reference's kind: "human" (the English sentence: translation) or "oracle"
(the answer the frozen decoder gave reading the English text: the free-form tasks). A judge sees
the reference of each item's kind, and the result says which kinds it used, per task.
"""

from __future__ import annotations

import math
from importlib import resources
from typing import Sequence

import numpy as np

from ..errors import LlinkError

PROMPT_VERSION = "judge_v1"  # prompts/judge_v1.txt: a human reference translation
ORACLE_PROMPT_VERSION = "judge_oracle_v1"  # prompts/judge_oracle_v1.txt: the decoder's answer from the English
REFERENCE_KINDS = ("human", "oracle")

def prompt_version(reference_kind: str = "human") -> str:
    if reference_kind not in REFERENCE_KINDS:
        raise LlinkError(f"unknown reference kind {reference_kind!r}; expected one of {REFERENCE_KINDS}")
    return ORACLE_PROMPT_VERSION if reference_kind == "oracle" else PROMPT_VERSION


def judge_prompt(instruction: str, reference: str, answer_1: str, answer_2: str, version: str | None = None,
                 reference_kind: str = "human") -> str:
    """The judge's prompt; `version` defaults to the one for `reference_kind`."""
    version = version or prompt_version(reference_kind)
    template = resources.files("llink.eval").joinpath(f"prompts/{version}.txt").read_text(encoding="utf-8")
    return template.format(instruction=instruction, reference=reference, answer_1=answer_1 or "(empty)", answer_2=answer_2 or "(empty)")


def parse_verdict(text: str) -> int:
    """1, 2, or 0 for a tie / anything unparseable (counted as a tie, never as a win)."""
    t = text.strip().lower().strip(".:*\"' ")
    if t.startswith("tie"):
        return 0
    if t[:1] in ("1", "2"):
        return int(t[:1])
    return 0


class ReferenceJudge:
    """Offline, reference-based: the answer closer to the item's reference (mean of encoder cosine
    and chrF++/100) wins; closer than `margin` is a tie. Not an LLM judge, and reported as such.
    The reference is whatever the item carries: the human translation or the oracle's answer
    (`pairwise` reports which)."""

    name = "reference (encoder cosine + chrF++ to each item's reference; offline)"

    def __init__(self, encoder, margin: float = 0.02):
        self.encoder, self.margin = encoder, margin
        self._answers: dict[str, np.ndarray] = {}

    def _answer_vectors(self, answers: list[str]) -> np.ndarray:
        # A system's answers meet every opponent in both orders: encode each text once per judge.
        # They stay out of the on-disk cache, which holds references and corpus texts only.
        new = [a for a in dict.fromkeys(answers) if a not in self._answers]
        if new:
            self._answers.update(zip(new, self.encoder.encode(new, progress=False)))
        return np.stack([self._answers[a] for a in answers])

    def _scores(self, answers: list[str], references: list[str]) -> np.ndarray:
        import sacrebleu

        from ..encoders import encode_cached
        from ..eval.generate import is_english

        a = self._answer_vectors([a if a.strip() else "-" for a in answers])
        r = encode_cached(self.encoder, [x if x.strip() else "-" for x in references], progress=False)  # an oracle may answer nothing
        cos = (a * r).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(r, axis=1)).clip(1e-8)
        chrf = np.array([sacrebleu.sentence_chrf(x, [y], word_order=2).score / 100 for x, y in zip(answers, references)])
        english = np.array([is_english(x) for x in answers], dtype=float)
        return english * (0.5 * cos + 0.5 * chrf)

    def __call__(self, items: list[dict]) -> list[int]:
        s1 = self._scores([i["answer_1"] for i in items], [i["reference"] for i in items])
        s2 = self._scores([i["answer_2"] for i in items], [i["reference"] for i in items])
        return [0 if abs(a - b) < self.margin else (1 if a > b else 2) for a, b in zip(s1, s2)]


class EndpointJudge:
    """Any OpenAI-compatible chat endpoint; the key comes from $LLINK_JUDGE_API_KEY or $OPENAI_API_KEY."""

    def __init__(self, url: str, model: str, timeout: float = 120.0):
        from ..endpoint import ChatEndpoint

        self.endpoint = ChatEndpoint(url, model, ("LLINK_JUDGE_API_KEY", "OPENAI_API_KEY"), timeout)
        self.name = f"endpoint {self.endpoint.url} model {model}"

    def __call__(self, items: list[dict]) -> list[int]:
        from tqdm.auto import tqdm

        return [parse_verdict(self.endpoint.complete(judge_prompt(**i), max_tokens=4)) for i in tqdm(items, desc="judge", unit="item")]


class LocalJudge:
    """A local Hugging Face causal LM (or the bundled decoder) answering the judge prompt greedily."""

    def __init__(self, name: str):
        from ..decoders import load_decoder
        from ..prompts import PromptBuilder, PromptConfig

        self.decoder = load_decoder(name)
        self.builder = PromptBuilder(self.decoder.tokenizer, PromptConfig(system=None))
        self.name = f"local {self.decoder.id}"

    def __call__(self, items: list[dict]) -> list[int]:
        from ..generate import generate

        # The one prompt builder puts a passage first and the instruction after it: the judge's
        # material is the passage, its last line ("Reply with ...") the instruction.
        prompts = [self.builder.chat(ask, passage=body) for body, ask in (judge_prompt(**i).rsplit("\n\n", 1) for i in items)]
        return [parse_verdict(t) for t in generate(self.decoder, prompts, max_new_tokens=4, progress=True)]


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion (ties count half a success)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, centre - half), min(1.0, centre + half))


def pairwise(rows: Sequence[dict], a: str, b: str, judge) -> dict:
    """Judge system a against system b on every (task, src) both answered, in both orders, each
    against its row's reference: the human English for translation, the oracle's answer for the
    free-form tasks (a row's `reference_kind`; rows without one are "human")."""
    by = {}
    for r in rows:
        by.setdefault((r["task"], r["src"]), {})[r["system"]] = r
    keys = [k for k, v in by.items() if a in v and b in v]
    if not keys:
        raise LlinkError(f"no item was answered by both {a!r} and {b!r}")
    items_ab, items_ba = [], []
    kinds: dict[str, set[str]] = {}
    for k in keys:
        ra, rb = by[k][a], by[k][b]
        instr = ra.get("instruction", "Translate to English.")
        kind = ra.get("reference_kind", "human")
        prompt_version(kind)  # an unknown kind is an error, not a silently human reference
        if (rb.get("reference_kind", "human"), rb["reference"]) != (kind, ra["reference"]):
            raise LlinkError(f"{a!r} and {b!r} have different references for the {k[0]} item {k[1][:40]!r}: "
                             "their rows come from different runs")
        kinds.setdefault(k[0], set()).add(kind)
        common = {"instruction": instr, "reference": ra["reference"], "reference_kind": kind}
        items_ab.append({**common, "answer_1": ra["output"], "answer_2": rb["output"]})
        items_ba.append({**common, "answer_1": rb["output"], "answer_2": ra["output"]})
    v_ab, v_ba = judge(items_ab), judge(items_ba)
    wins = ties = losses = 0
    per_task: dict[str, list[int]] = {}
    for k, x, y in zip(keys, v_ab, v_ba):
        a_first = {1: "a", 2: "b", 0: "tie"}[x]
        a_second = {1: "b", 2: "a", 0: "tie"}[y]
        outcome = a_first if a_first == a_second else "tie"  # disagreeing orders are position bias: a tie
        wins += outcome == "a"
        losses += outcome == "b"
        ties += outcome == "tie"
        per_task.setdefault(k[0], [0, 0, 0])[("a", "tie", "b").index(outcome)] += 1
    n = len(keys)
    lo, hi = wilson(wins + 0.5 * ties, n)
    used = sorted({x for v in kinds.values() for x in v})
    return {"a": a, "b": b, "judge": judge.name, "prompt": "+".join(prompt_version(x) for x in used), "n": n,
            "wins": wins, "ties": ties, "losses": losses,
            "win_rate": round((wins + 0.5 * ties) / n, 4), "win_rate_ci95": [round(lo, 4), round(hi, 4)],
            "order_agreement": round(float(np.mean([(x == 0 and y == 0) or (x != 0 and y != 0 and x != y) for x, y in zip(v_ab, v_ba)])), 4),
            "per_task": {t: dict(zip(("wins", "ties", "losses"), v)) for t, v in per_task.items()},
            "reference_kinds": used, "reference_kind_per_task": {t: "+".join(sorted(v)) for t, v in kinds.items()}}

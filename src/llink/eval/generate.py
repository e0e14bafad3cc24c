"""Generation evaluation with content-transfer controls.

Fluent English scores chrF++ ~10 against any reference, so a score against a decoder that cannot
read the input proves nothing (SPEC §6). Every system is therefore compared with the control
`llink_shuffled` (the same model fed another sentence's slots) and with `fidelity`: the fraction
of outputs whose encoder embedding is closer to their own reference than to every other
reference in the sample.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import LlinkError

TRANSLATE = "Translate to English."
OTHER_TASKS = {
    "summarise": "Summarise this text in one short English sentence.",
    "bullets": "List the key points of this text as short English bullet points.",
    "qa": "What is this text about? Answer in English.",
}
SYSTEMS = ("base", "direct_finetune", "llink", "llink_shuffled")


def is_english(text: str, min_share: float = 0.8) -> bool:
    """At least min_share of the letters are ASCII: broken Khmer or another script is a miss."""
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(c.isascii() for c in letters) / len(letters) >= min_share


def fidelity(encoder, outputs: Sequence[str], references: Sequence[str]) -> float:
    """Fraction of outputs whose cosine to their own reference beats every other reference
    (ties count as misses; non-English outputs are misses)."""
    from ..encoders import encode_cached
    from .retrieval import ranks

    if len(outputs) != len(references) or len(outputs) < 2:
        raise LlinkError("fidelity needs >= 2 outputs, one per reference")
    ok = np.array([is_english(o) for o in outputs])
    texts = [o if good else "-" for o, good in zip(outputs, ok)]
    out = encoder.encode(texts, progress=False)
    ref = encode_cached(encoder, list(references), progress=False)
    # retrieval's rank counts ties against the output, so rank 1 means strictly closest
    return float(((ranks(out, ref) == 1) & ok).mean())


def translation_scores(encoder, outputs: Sequence[str], references: Sequence[str]) -> dict:
    import sacrebleu

    chrf = sacrebleu.corpus_chrf(list(outputs), [list(references)], word_order=2).score
    bleu = sacrebleu.corpus_bleu(list(outputs), [list(references)]).score
    return {
        "chrf": round(chrf, 2),
        "bleu": round(bleu, 2),
        "fidelity": round(fidelity(encoder, outputs, references), 4),
        "distinct_outputs": len(set(outputs)),
        "english": round(float(np.mean([is_english(o) for o in outputs])), 4),
    }


NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_KHMER_DIGITS = str.maketrans("០១២៣៤៥៦៧៨៩", "0123456789")


def source_numbers(text: str) -> list[str]:
    """The numbers a source text contains, Khmer digits mapped to ASCII."""
    return NUMBER.findall(text.translate(_KHMER_DIGITS))


def numeric_fidelity(sources: Sequence[str], outputs: Sequence[str], references: Sequence[str] | None = None) -> dict:
    """Numbers in the source (Khmer digits mapped to ASCII) that appear in the answer. With
    references, only the numbers the reference also has count: "page ១" may rightly become "first page"."""
    total = kept = texts = 0
    for i, (s, o) in enumerate(zip(sources, outputs)):
        nums = source_numbers(s)
        if references is not None:
            in_ref = set(NUMBER.findall(references[i]))
            nums = [n for n in nums if n in in_ref]
        if not nums:
            continue
        texts += 1
        found = set(NUMBER.findall(o))
        total += len(nums)
        kept += sum(n in found for n in nums)
    return {"texts_with_numbers": texts, "numbers": total, "kept": kept, "rate": round(kept / total, 4) if total else None}


@dataclass
class System:
    """A named way of answering: a callable (sources, instruction) -> outputs."""

    name: str
    answer: Callable[[Sequence[str], str], list[str]]


def llink_systems(model, direct=None, max_new_tokens: int = 32, batch_size: int = 16, seed: int = 17) -> list[System]:
    """base / direct_finetune / llink / llink_shuffled, decoded identically (greedy)."""
    from ..generate import generate
    from .controls import shuffled_order

    dec = model.decoder
    builder = model.builder
    kw = dict(max_new_tokens=max_new_tokens, batch_size=batch_size)

    def base(srcs, instr):
        with dec.adapter(None):
            return generate(dec, [builder.chat(instr, passage=s) for s in srcs], **kw)

    def slots_run(srcs, instr, shuffle: bool):
        slots = model.slots(list(srcs))
        if shuffle:
            import torch

            slots = slots[torch.from_numpy(shuffled_order(len(srcs), seed))]
        with model.using_adapter():
            return generate(dec, [builder.chat(instr) for _ in srcs], slots, **kw)

    systems = [System("base", base)]
    if direct is not None:
        dbuild = direct.builder

        def direct_run(srcs, instr):
            with direct.using_adapter():
                return generate(dec, [dbuild.chat(instr, passage=s) for s in srcs], **kw)

        systems.append(System("direct_finetune", direct_run))
    systems += [System("llink", lambda s, i: slots_run(s, i, False)), System("llink_shuffled", lambda s, i: slots_run(s, i, True))]
    return systems


def cached_system(system: System, **namespace) -> System:
    """`system` with its answers kept in the on-disk cache, keyed by `namespace` (what determines
    them: model fingerprints, decoding settings, versions) plus the texts and the instruction.

    A call is stored whole, not per text: in a left-padded batch an answer depends slightly on its
    batch-mates, so only the same call may reuse it, and a rerun repeats the first run exactly."""
    from ..cache import TextStore

    store = TextStore("generations", system=system.name, **namespace)

    def answer(srcs, instruction):
        call = json.dumps([instruction, list(srcs)], ensure_ascii=False)
        fresh = lambda calls: [json.dumps(system.answer(srcs, instruction), ensure_ascii=False)]  # noqa: E731
        return json.loads(store.get([call], fresh)[0])

    return System(system.name, answer)


def evaluate_generation(systems: Sequence[System], encoder, pairs, other_tasks: Sequence[str] = (), n_other: int = 20,
                        progress: bool = True) -> tuple[dict, list[dict]]:
    """Translate every pair with every system (chrF++, BLEU, fidelity, distinct outputs, numeric
    fidelity), then answer the other task prompts on the first n_other pairs (outputs saved)."""
    import time

    from tqdm.auto import tqdm

    srcs, refs = [p.src for p in pairs], [p.en for p in pairs]
    other_tasks = other_tasks if n_other > 0 else ()
    results, rows = {}, []
    bar = tqdm(total=len(systems) * (1 + len(other_tasks)), desc="generate", unit="run", disable=not progress)
    for sys_ in systems:
        t0 = time.time()
        outs = sys_.answer(srcs, TRANSLATE)
        res = translation_scores(encoder, outs, refs)
        res["numeric"] = numeric_fidelity(srcs, outs)
        res["seconds"] = round(time.time() - t0, 1)
        results[sys_.name] = res
        rows += [{"system": sys_.name, "task": "translate", "src": s, "reference": r, "output": o} for s, r, o in zip(srcs, refs, outs)]
        bar.update(1)
        for task in other_tasks:
            instr = OTHER_TASKS[task]
            outs = sys_.answer(srcs[:n_other], instr)
            rows += [{"system": sys_.name, "task": task, "instruction": instr, "src": s, "reference": r, "output": o}
                     for s, r, o in zip(srcs[:n_other], refs[:n_other], outs)]
            bar.update(1)
    bar.close()
    return results, rows

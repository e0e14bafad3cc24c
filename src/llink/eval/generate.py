"""Generation evaluation with content-transfer controls.

Fluent English scores chrF++ ~10 against any reference, so a score against a decoder that cannot
read the input proves nothing (SPEC §6). Every system is therefore compared with the control
`llink_shuffled` (the same model fed another sentence's slots) and with `fidelity`: the fraction
of outputs whose encoder embedding is closer to their own reference than to every other
reference in the sample.

The other tasks (summarise, bullets, qa) have no human answer. Their reference is the oracle: the
frozen decoder answering the same instruction from the item's English text (the system `english`,
decoded like every other). Each system's free-form answers are scored against it (chrF++, encoder
cosine, oracle fidelity): how close reading the foreign text gets to reading the English.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import LlinkError
from ..hints import ascii_digits

TRANSLATE = "Translate to English."
OTHER_TASKS = {
    "summarise": "Summarise this text in one short English sentence.",
    "bullets": "List the key points of this text as short English bullet points.",
    "qa": "What is this text about? Answer in English.",
}
# The perfect-reader controls: the bridge reading each pair's *English* through the encoder. For a
# bridge trained on unmoved English (no `english_offset`), what they lose is lost by the bridge and
# decoder, not by reading the foreign language (issue 26).
ENGLISH_IN = ("llink_english_in", "llink_english_in_shuffled")
SYSTEMS = ("base", "direct_finetune", "llink", "llink_shuffled", "llink_shuffled_slots", "english", *ENGLISH_IN)
READS = ("src", "en")  # what a System reads: the foreign text of each pair, or its English


def is_english(text: str, min_share: float = 0.8) -> bool:
    """At least min_share of the letters are ASCII: broken Khmer or another script is a miss."""
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(c.isascii() for c in letters) / len(letters) >= min_share


def own_closest(outputs, references, ok=None) -> float:
    """Fraction of rows i whose output vector is strictly closer (cosine) to reference vector i
    than to every other reference vector; rows where `ok` is False are misses. A reference that
    another row's reference equals (or ties in cosine) is never strictly closest: a miss."""
    from .retrieval import ranks

    out, ref = np.asarray(outputs, dtype=np.float32), np.asarray(references, dtype=np.float32)
    if out.ndim != 2 or out.shape != ref.shape or len(out) < 2:
        raise LlinkError(f"fidelity needs >= 2 outputs, one per reference (got {out.shape} and {ref.shape})")
    ok = np.ones(len(out), bool) if ok is None else np.asarray(ok, bool)
    # retrieval's rank counts ties against the output, so rank 1 means strictly closest
    return float(((ranks(out, ref) == 1) & ok).mean())


def _vectors(encoder, outputs: Sequence[str], references: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(output vectors, reference vectors, English mask): a non-English output is encoded as "-"
    (it scores as a miss anyway), an empty reference (a decoder that answered nothing) as "-"."""
    from ..encoders import encode_cached

    if len(outputs) != len(references):
        raise LlinkError(f"{len(outputs)} outputs for {len(references)} references")
    ok = np.array([is_english(o) for o in outputs])
    out = encoder.encode([o if good else "-" for o, good in zip(outputs, ok)], progress=False)
    ref = encode_cached(encoder, [r if r.strip() else "-" for r in references], progress=False)
    return out, ref, ok


def fidelity(encoder, outputs: Sequence[str], references: Sequence[str]) -> float:
    """Fraction of outputs whose cosine to their own reference beats every other reference
    (ties count as misses; non-English outputs are misses). The references are the human English
    for translation, the oracle answers for the other tasks (`oracle_fidelity`)."""
    if len(outputs) != len(references) or len(outputs) < 2:
        raise LlinkError("fidelity needs >= 2 outputs, one per reference")
    return own_closest(*_vectors(encoder, outputs, references))


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


def cosines(a, b) -> np.ndarray:
    """Row-wise cosine of two [n, d] matrices."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)).clip(1e-8)


def understanding_scores(encoder, answers: Sequence[str], oracle: Sequence[str]) -> dict:
    """One task's free-form answers against the oracle answers (item i's answer vs item i's oracle):
    chrF++ (corpus, word order 2), mean encoder cosine (a non-English answer counts 0), oracle
    fidelity (`fidelity` with the oracle answers as references; None under 2 items) and the
    share of English answers."""
    import sacrebleu

    answers, oracle = list(answers), list(oracle)
    if len(answers) != len(oracle) or not answers:
        raise LlinkError(f"understanding scores need one answer per oracle answer (got {len(answers)} and {len(oracle)})")
    chrf = sacrebleu.corpus_chrf(answers, [oracle], word_order=2).score
    out, ref, ok = _vectors(encoder, answers, oracle)
    fid = round(own_closest(out, ref, ok), 4) if len(answers) >= 2 else None
    return {"chrf": round(chrf, 2), "cosine": round(float((cosines(out, ref) * ok).mean()), 4), "oracle_fidelity": fid,
            "english": round(float(ok.mean()), 4)}


def mean_over_tasks(per_task: dict) -> dict:
    """The aggregate of per-task scores: each metric's mean over the tasks that have it."""
    out = {}
    for k in ("chrf", "cosine", "oracle_fidelity"):
        vals = [t[k] for t in per_task.values() if t.get(k) is not None]
        out[k] = round(float(np.mean(vals)), 2 if k == "chrf" else 4) if vals else None
    return out


def oracle_summary(encoder, rows: Sequence[dict]) -> dict:
    """The oracle answers of saved rows (`evaluate_generation`'s), per task: items, distinct
    answers, and the oracle scored against itself: chrF++ 100, cosine its share of English answers,
    oracle fidelity its share of English answers no other item repeats (a repeated oracle answer
    is a miss for every system: no answer is strictly closer to one copy than to the other)."""
    by: dict[str, tuple[str, list[str]]] = {}
    for r in rows:
        if r.get("reference_kind") == "oracle":
            system, refs = by.setdefault(r["task"], (r["system"], []))
            if r["system"] == system:
                refs.append(r["reference"])
    return {task: {"n": len(refs), "distinct_outputs": len(set(refs)), **understanding_scores(encoder, refs, refs)}
            for task, (_, refs) in by.items()}


NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


def source_numbers(text: str) -> list[str]:
    """The numbers a source text contains, the digits of every script (Khmer, Thai, ...) mapped to ASCII."""
    return NUMBER.findall(ascii_digits(text))


def numeric_fidelity(sources: Sequence[str], outputs: Sequence[str], references: Sequence[str] | None = None) -> dict:
    """Numbers in the source (any script's digits mapped to ASCII, in the answer too) that appear in the
    answer. With references, only the numbers the reference also has count: "page ១" may rightly
    become "first page"."""
    total = kept = texts = 0
    for i, (s, o) in enumerate(zip(sources, outputs)):
        nums = source_numbers(s)
        if references is not None:
            in_ref = set(NUMBER.findall(ascii_digits(references[i])))
            nums = [n for n in nums if n in in_ref]
        if not nums:
            continue
        texts += 1
        found = set(NUMBER.findall(ascii_digits(o)))
        total += len(nums)
        kept += sum(n in found for n in nums)
    return {"texts_with_numbers": texts, "numbers": total, "kept": kept, "rate": round(kept / total, 4) if total else None}


_LAT = r"A-Za-z\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u024F0-9_"  # Latin letters, digits, _
_LATIN_TOKEN = re.compile(rf"[{_LAT}]+(?:[-+.'’][{_LAT}]+)*")
_SENTENCE_END = re.compile(r"[.!?:…]\s+$")
_NOT_NAMES = frozenset(
    "A An The This That These Those It Its If In On At To For Of And Or But Not No Yes You Your We Our Us I My Me "
    "He She They Their Them There Here When Where What Which Who Whom Whose Why How With Without From By As Is Are "
    "Be Was Were Has Have Do Does Can Could Will Would Should May Must Please Then So Also Each Every Some Any".split())
_NOT_NAMES_LOWER = frozenset(w.lower() for w in _NOT_NAMES)


def reference_names(source: str, reference: str) -> list[str]:
    """The names a translation must keep: the reference's capitalised words that do not begin it or a
    sentence and are not a common function word (none from a Title Case reference, a UI label whose
    every word is capitalised), then the source's Latin-script tokens ("Firefox" inside Khmer) that
    the reference also has as a whole word."""
    names = {}
    words = list(_LATIN_TOKEN.finditer(reference))
    content = [w for m in words if len(w := m.group()) >= 3 and w[0].isalpha() and w.lower() not in _NOT_NAMES_LOWER]
    if not (len(content) >= 2 and all(w[0].isupper() for w in content)):  # Title Case: a label, no names told
        for i, m in enumerate(words):
            w = m.group()
            if i and w[0].isupper() and w not in _NOT_NAMES and not _SENTENCE_END.search(reference, 0, m.start()):
                names[w] = None
    for m in _LATIN_TOKEN.finditer(ascii_digits(source)):
        w = m.group()
        if any(c.isalpha() for c in w) and w.lower() not in _NOT_NAMES_LOWER and _has_word(reference, w):
            names[w] = None
    return list(names)


def _has_word(text: str, word: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text) is not None


def names_kept(sources: Sequence[str], outputs: Sequence[str], references: Sequence[str]) -> dict:
    """The names measure, beside `numeric_fidelity`: of each reference's names (`reference_names`),
    the fraction the answer has as whole words, case-sensitive."""
    total = kept = texts = 0
    for s, o, r in zip(sources, outputs, references):
        names = reference_names(s, r)
        if not names:
            continue
        texts += 1
        total += len(names)
        kept += sum(_has_word(ascii_digits(o), n) for n in names)
    return {"texts_with_names": texts, "names": total, "kept": kept, "rate": round(kept / total, 4) if total else None}


@dataclass
class System:
    """A named way of answering: `answer(texts, instruction) -> outputs`, one per text.

    `reads` says which side of each pair `texts` is: "src", the foreign text, or "en", the English
    text. Callers pass that side; `evaluate_generation` does. `oracle` marks the system whose
    answers are the other tasks' reference (`english`); it is scored against nothing. A system
    that reads the English and is no oracle (`llink_english_in`) competes like any other."""

    name: str
    answer: Callable[[Sequence[str], str], list[str]]
    reads: str = "src"
    oracle: bool = False

    def __post_init__(self):
        if self.reads not in READS:
            raise LlinkError(f"System {self.name!r}: reads must be one of {READS}, got {self.reads!r}")


def llink_systems(model, direct=None, max_new_tokens: int = 32, batch_size: int = 16, seed: int = 17,
                  english: bool = False, english_in: bool = False) -> list[System]:
    """base / direct_finetune / llink / llink_shuffled, decoded identically (greedy); with
    `english`, also the oracle `english`: the frozen decoder (no adapter, exactly `base`) reading
    the English text, whose answers are the reference of the other tasks; with `english_in`, also
    `llink_english_in` and its shuffled control: llink reading the English text through the
    encoder and slots, with the hints a translation of it would carry (`english_hints`), as
    English-only training examples are read."""
    from ..generate import generate
    from .controls import shuffled_order

    dec = model.decoder
    builder = model.builder
    kw = dict(max_new_tokens=max_new_tokens, batch_size=batch_size)

    def base(texts, instr):
        with dec.adapter(None):
            return generate(dec, [builder.chat(instr, passage=t) for t in texts], **kw)

    def slots_run(srcs, instr, shuffle: str | None, english: bool = False):
        inj = model.read(list(srcs), english=[english] * len(srcs))
        if shuffle == "all":  # another text's slots, K and hints
            inj = inj.take(shuffled_order(len(srcs), seed))
        elif shuffle == "slots":  # another text's slots and K beside the text's own hints
            inj = inj.take(shuffled_order(len(srcs), seed), hints_of=inj)
        with model.using_adapter():
            return generate(dec, inj.prompts(builder, instr), inj.slots, **kw)

    systems = [System("base", base)]
    if direct is not None:
        dbuild = direct.builder

        def direct_run(srcs, instr):
            with direct.using_adapter():
                return generate(dec, [dbuild.chat(instr, passage=s) for s in srcs], **kw)

        systems.append(System("direct_finetune", direct_run))
    systems += [System("llink", lambda s, i: slots_run(s, i, None)), System("llink_shuffled", lambda s, i: slots_run(s, i, "all"))]
    if model.config.prompt_config.hints:  # what the slots carry beyond the hints
        systems.append(System("llink_shuffled_slots", lambda s, i: slots_run(s, i, "slots")))
    if english_in:
        systems += [System("llink_english_in", lambda s, i: slots_run(s, i, None, english=True), reads="en"),
                    System("llink_english_in_shuffled", lambda s, i: slots_run(s, i, "all", english=True), reads="en")]
    if english:
        systems.append(System("english", base, reads="en", oracle=True))
    return systems


def cached_system(system: System, **namespace) -> System:
    """`system` with its answers kept in the on-disk cache, keyed by `namespace` (what determines
    them: model fingerprints, decoding settings, versions), the system's name and the side of the
    pairs it reads, plus the texts and the instruction.

    A call is stored whole, not per text: in a left-padded batch an answer depends slightly on its
    batch-mates, so only the same call may reuse it, and a rerun repeats the first run exactly."""
    from ..cache import TextStore

    store = TextStore("generations", system=system.name, reads=system.reads, **namespace)  # oracle: same answers either way

    def answer(texts, instruction):
        call = json.dumps([instruction, list(texts)], ensure_ascii=False)
        fresh = lambda calls: [json.dumps(system.answer(texts, instruction), ensure_ascii=False)]  # noqa: E731
        return json.loads(store.get([call], fresh)[0])

    return System(system.name, answer, system.reads, system.oracle)


def evaluate_generation(systems: Sequence[System], encoder, pairs, other_tasks: Sequence[str] = (), n_other: int = 20,
                        progress: bool = True, oracle: System | None = None, translate: bool = True) -> tuple[dict, list[dict]]:
    """Translate every pair with every system reading the foreign text (chrF++, BLEU, fidelity,
    distinct outputs, numeric fidelity against the human English), then answer the other task
    prompts on the first n_other pairs and score them against the oracle answers.

    The oracle is `oracle`, else the one system in `systems` marked as one (`english`).
    It answers each other task from the English texts; every other system's answers to that task
    are scored against its answers (`understanding_scores`), per task and as the mean over tasks.
    It does not translate (the human English is translation's reference), and it is no competitor:
    it gets no entry in the results. Its rows are saved when it is one of `systems`.

    Returns (results, rows). results[system] = the translation scores, "numeric", "seconds", and,
    when other tasks ran, "understanding": {"reference": the oracle's name, "n": items per task,
    "tasks": {task: {chrf, cosine, oracle_fidelity, english}}, "mean": {chrf, cosine,
    oracle_fidelity}}. rows: one per (system, task, item) with system, task, src, reference,
    reference_kind ("human": the English sentence, for translation; "oracle": the oracle's answer)
    and output; other-task rows also carry instruction and english (the item's English text).

    Without an oracle, the other tasks' answers are saved unscored with the English sentence as
    their reference (reference_kind "human") and there is no "understanding".

    translate=False skips translation (multi-sentence passages would be cut at max_new_tokens);
    results[system] then holds "understanding" and "seconds" only."""
    import time

    from tqdm.auto import tqdm

    srcs, refs = [p.src for p in pairs], [p.en for p in pairs]
    other_tasks = list(other_tasks) if n_other > 0 else []
    oracles = [s_ for s_ in systems if s_.oracle]
    if oracle is None:
        if len(oracles) > 1:
            raise LlinkError(f"more than one oracle among the systems: {[s_.name for s_ in oracles]}; give one")
        oracle = oracles[0] if oracles else None
    elif any(s_ is not oracle for s_ in oracles):
        raise LlinkError(f"the oracle {oracle.name!r} must be the one oracle among the systems, not {[s_.name for s_ in oracles]}")
    if oracle is not None and not (oracle.oracle and oracle.reads == "en"):
        raise LlinkError(f"the oracle {oracle.name!r} must be marked oracle=True and read the English (it reads {oracle.reads!r})")
    competing = [s_ for s_ in systems if not s_.oracle]
    m = min(n_other, len(pairs))
    results, rows = {}, []
    if not translate and not (other_tasks and oracle is not None):
        raise LlinkError("translate=False needs other tasks and an oracle: nothing would be scored")
    bar = tqdm(total=len(competing) * (int(translate) + len(other_tasks)) + (len(other_tasks) if oracle else 0), desc="generate", unit="run",
               disable=not progress)
    answers = {}
    if oracle is not None:
        for task in other_tasks:
            answers[task] = oracle.answer(refs[:m], OTHER_TASKS[task])
            bar.update(1)
    for sys_ in systems:
        if sys_.oracle:  # its answers are the references
            for task in other_tasks:
                rows += [{"system": sys_.name, "task": task, "instruction": OTHER_TASKS[task], "src": s, "english": e,
                          "reference": o, "reference_kind": "oracle", "output": o} for s, e, o in zip(srcs[:m], refs[:m], answers[task])]
            continue
        t0 = time.time()
        res = results[sys_.name] = {}
        reads = srcs if sys_.reads == "src" else refs
        if translate:
            outs = sys_.answer(reads, TRANSLATE)
            res.update(translation_scores(encoder, outs, refs))
            res["numeric"] = numeric_fidelity(srcs, outs, refs)
            res["names"] = names_kept(srcs, outs, refs)
            rows += [{"system": sys_.name, "task": "translate", "src": s, "reference": r, "reference_kind": "human", "output": o}
                     for s, r, o in zip(srcs, refs, outs)]
            bar.update(1)
        per_task = {}
        for task in other_tasks:
            instr = OTHER_TASKS[task]
            outs = sys_.answer(reads[:m], instr)
            ref, kind = (answers[task], "oracle") if oracle is not None else (refs[:m], "human")
            rows += [{"system": sys_.name, "task": task, "instruction": instr, "src": s, "english": e, "reference": r,
                      "reference_kind": kind, "output": o} for s, e, r, o in zip(srcs[:m], refs[:m], ref, outs)]
            if oracle is not None:
                per_task[task] = understanding_scores(encoder, outs, answers[task])
            bar.update(1)
        if per_task:
            res["understanding"] = {"reference": oracle.name, "n": m, "tasks": per_task, "mean": mean_over_tasks(per_task)}
        res["seconds"] = round(time.time() - t0, 1)
    bar.close()
    return results, rows

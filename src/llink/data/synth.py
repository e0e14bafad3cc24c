"""Stage B instruction data: the paper's task families, built from parallel pairs.

Translation targets are the English references themselves. For the other tasks the target is a
generator's answer when it reads the *English* reference (self-distillation: by default the
frozen decoder itself), so a student reading the Khmer through slots learns to answer as the
decoder would had it understood the text. Generated answers are cached per prompt.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import LlinkError
from .io import Pair

TASKS = {
    "translate": ["Translate to English."],
    "summarise": ["Summarise this text in one short English sentence."],
    "bullets": ["List the key points of this text as short English bullet points."],
    "qa": [
        "What is this text about? Answer in English.",
        "What does this text ask the user to do? Answer in English.",
        "Which feature or object does this text mention? Answer in English.",
    ],
}


@dataclass
class Example:
    src: str
    en: str
    task: str
    instruction: str
    answer: str

    def to_dict(self) -> dict:
        return asdict(self)


def parse_tasks(tasks: str | Sequence[str]) -> list[str]:
    names = [t.strip() for t in (tasks.split(",") if isinstance(tasks, str) else tasks) if t.strip()]
    bad = [t for t in names if t not in TASKS]
    if bad or not names:
        raise LlinkError(f"unknown task(s) {bad or tasks!r}; choose from {', '.join(TASKS)}")
    return names


def eligible(pairs: Sequence[Pair], min_chars: int = 12, max_chars: int = 256) -> list[Pair]:
    """Pairs whose foreign side has min_chars..max_chars characters (the paper's filter)."""
    return [p for p in pairs if min_chars <= len(p.src) <= max_chars]


class LocalGenerator:
    """A local causal LM (the bundled decoder, or any HF model) answering from the English text."""

    def __init__(self, decoder, max_new_tokens: int = 48, batch_size: int = 32):
        from ..prompts import PromptBuilder

        self.decoder, self.max_new_tokens, self.batch_size = decoder, max_new_tokens, batch_size
        self.builder = PromptBuilder(decoder.tokenizer)
        self.id = f"local:{decoder.id}:{max_new_tokens}"

    def __call__(self, requests: list[tuple[str, str]]) -> list[str]:
        from ..generate import generate

        prompts = [self.builder.chat(instr, passage=en) for instr, en in requests]
        return generate(self.decoder, prompts, max_new_tokens=self.max_new_tokens, batch_size=self.batch_size)


class EndpointGenerator:
    """Any OpenAI-compatible /v1/chat/completions endpoint (key from $LLINK_GENERATOR_API_KEY)."""

    def __init__(self, url: str, model: str, max_new_tokens: int = 96, timeout: float = 120.0):
        from ..endpoint import ChatEndpoint

        self.endpoint = ChatEndpoint(url, model, ("LLINK_GENERATOR_API_KEY", "OPENAI_API_KEY"), timeout)
        self.max_new_tokens = max_new_tokens
        self.id = f"endpoint:{self.endpoint.url}:{model}:{max_new_tokens}"

    def __call__(self, requests: list[tuple[str, str]]) -> list[str]:
        # the same layout as the one prompt builder: passage first, then the instruction
        return [self.endpoint.complete(f"{en}\n\n{instr}", self.max_new_tokens) for instr, en in requests]


def synthesize(
    pairs: Sequence[Pair],
    generator,
    tasks: Sequence[str] = tuple(TASKS),
    per_task: int = 200,
    max_translate: int | None = None,
    min_chars: int = 12,
    max_chars: int = 256,
    seed: int = 17,
    progress: bool = True,
    passages: Sequence[Pair] = (),
) -> list[Example]:
    """Examples for every task: all eligible pairs (or max_translate) for translation, a seeded
    sample of per_task pairs for each generated task. Generated answers are cached.

    `passages` (multi-sentence pairs, llink.data.passages.split_passages) join every task whole,
    past the character filter: a bridge trained only on sentences has never had to carry a
    paragraph, and the comprehension test asks exactly that."""
    from tqdm.auto import tqdm

    from ..cache import TextStore
    from ..lineage import version

    tasks = parse_tasks(tasks)
    pool = eligible(pairs, min_chars, max_chars)
    if not pool:
        raise LlinkError(f"no pair has {min_chars}-{max_chars} characters on the foreign side")
    rng = np.random.default_rng(seed)
    out: list[Example] = []
    for t_i, task in enumerate(tasks):
        instructions = TASKS[task]
        if task == "translate":
            chosen = pool if max_translate is None else [pool[i] for i in sorted(rng.permutation(len(pool))[:max_translate])]
            out += [Example(p.src, p.en, task, instructions[0], p.en) for p in list(chosen) + list(passages)]
            continue
        idx = sorted(np.random.default_rng(seed + 101 * (t_i + 1)).permutation(len(pool))[:per_task])
        chosen = [pool[i] for i in idx] + list(passages)
        instr = [instructions[j % len(instructions)] for j in range(len(chosen))]
        requests = [(i, p.en) for i, p in zip(instr, chosen)]
        store = TextStore("synth", generator=generator.id, tags=version("synth"))  # llink.lineage
        keys = [json.dumps(r, ensure_ascii=False) for r in requests]
        bar = tqdm(total=len(keys), desc=f"synth {task}", unit="ex", disable=not progress)

        def compute(missing: list[str]) -> list[str]:
            answers = generator([tuple(json.loads(m)) for m in missing])
            bar.update(len(missing))
            return answers

        answers = store.get(keys, compute, chunk=generator.batch_size if hasattr(generator, "batch_size") else 16)
        bar.close()
        out += [Example(p.src, p.en, task, i, a) for p, i, a in zip(chosen, instr, answers) if a.strip()]
    return out


def write_examples(path, examples: Sequence[Example]) -> None:
    from ..cache import atomic_write

    body = "".join(json.dumps(e.to_dict(), ensure_ascii=False) + "\n" for e in examples)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda t: Path(t).write_text(body, encoding="utf-8"))


def read_examples(path) -> list[Example]:
    path = Path(path)
    if not path.is_file():
        raise LlinkError(f"instruction data {path} does not exist (build it with `llink synth --out {path.parent}`)")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            ex = Example(**{k: row[k] for k in ("src", "en", "task", "instruction", "answer")})
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise LlinkError(f"{path}:{n}: not an instruction example ({e})") from None
        if not ex.src.strip() or not ex.answer.strip() or not ex.instruction.strip():
            raise LlinkError(f"{path}:{n}: empty src, instruction or answer")
        out.append(ex)
    if not out:
        raise LlinkError(f"{path} holds no examples")
    return out

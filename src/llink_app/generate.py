"""`llink generate` (one text, or a file of them) and `llink chat` (one passage, many questions)."""

from __future__ import annotations

import json as jsonlib
import sys
from pathlib import Path

from llink.errors import LlinkError


def _load(model: Path | None, device: str = "cpu", dtype: str = "auto", fold: bool = True):
    from llink.model import load_for_inference

    if model is None:
        raise LlinkError("--model is required: a Stage B LLINK artifact directory (e.g. runs/slots/llink)")
    # generate and chat run one model per process: its LoRA is folded into the decoder weights
    # (same answers, faster); eval generate passes fold=False to run the baselines beside it
    return load_for_inference(model, device=device, dtype=dtype, fold=fold, need_slots=True)


def _read_inputs(path: Path, instruction: str) -> list[tuple[str, str]]:
    """A .jsonl of {"text", "instruction"?} objects, or plain text with one passage per line."""
    if not path.is_file():
        raise LlinkError(f"input file {path} does not exist")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            try:
                obj = jsonlib.loads(line)
                text, instr = obj["text"], obj.get("instruction", instruction)
            except (jsonlib.JSONDecodeError, KeyError, TypeError, AttributeError):
                raise LlinkError(f"{path}:{n}: expected a JSON object with a \"text\" field") from None
            if not isinstance(text, str) or not isinstance(instr, str):
                raise LlinkError(f"{path}:{n}: \"text\" and \"instruction\" must be strings")
        else:
            text, instr = line, instruction
        if not text.strip():
            raise LlinkError(f"{path}:{n}: empty text")
        rows.append((text.strip(), instr))
    if not rows:
        raise LlinkError(f"{path} holds no texts")
    return rows


def generate(
    model: Path | None = None,
    text: str | None = None,
    instruction: str = "Translate to English.",
    file: Path | None = None,
    out: Path | None = None,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_p: float = 1.0,
    top_k: int = 0,
    repetition_penalty: float = 1.0,
    seed: int = 0,
    batch_size: int = 16,
    json: bool = False,
    device: str = "cpu",
    dtype: str = "auto",
) -> None:
    """Answer an instruction about foreign text read through K slots (greedy unless --temperature).

    Args:
        model: a Stage B LLINK artifact directory.
        text: the foreign passage (e.g. Khmer).
        instruction: what to do with it, in English.
        file: many passages instead of --text: .jsonl of {"text", "instruction"?} or one passage per line.
        out: write JSONL results here (with --file; default: stdout).
        max_new_tokens: answer length cap.
        temperature: 0 is greedy; > 0 samples.
        top_p: nucleus sampling mass (with --temperature).
        top_k: top-k sampling (0: off).
        repetition_penalty: > 1 discourages repeats.
        seed: sampling seed.
        batch_size: passages per generation batch (with --file).
        json: print {"output": ...} instead of streaming text.
        device: where the models run (cpu, cuda, cuda:1, mps).
        dtype: decoder weights: auto (bf16 on CUDA, fp32 elsewhere), fp32, bf16 (fast on CPUs with AVX512-BF16 or AMX), fp16 (GPU).
    """
    from llink.generate import generate as run

    if (text is None) == (file is None):
        raise LlinkError("give exactly one of --text or --file")
    m = _load(model, device, dtype)
    kw = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k, repetition_penalty=repetition_penalty, seed=seed)
    if text is not None:
        inj = m.read([text])
        slots, prompt = inj.slots, inj.prompts(m.builder, instruction)
        with m.using_adapter():
            if json:
                print(jsonlib.dumps({"output": run(m.decoder, prompt, slots, **kw)[0]}, ensure_ascii=False))
            else:
                run(m.decoder, prompt, slots, stream=lambda piece: print(piece, end="", flush=True), **kw)
                print()
        return
    rows = _read_inputs(file, instruction)
    inj = m.read([t for t, _ in rows], progress=True)
    slots, prompts = inj.slots, [inj.prompt(m.builder, j, i) for j, (_, i) in enumerate(rows)]
    with m.using_adapter():
        outputs = run(m.decoder, prompts, slots, batch_size=batch_size, progress=True, **kw)
    lines = "".join(jsonlib.dumps({"text": t, "instruction": i, "output": o}, ensure_ascii=False) + "\n" for (t, i), o in zip(rows, outputs))
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(lines, encoding="utf-8")
        print(f"wrote {len(rows)} answers to {out}", file=sys.stderr)
    else:
        sys.stdout.write(lines)


def chat(model: Path | None = None, text: str | None = None, max_new_tokens: int = 128, temperature: float = 0.0, top_p: float = 1.0,
         device: str = "cpu", dtype: str = "auto") -> None:
    """Talk about one foreign passage: it is encoded once, every question reuses its slots.

    Reads from stdin: first the passage (unless --text), then one question per line.
    `/new` starts over with a new passage, `/quit` (or end of input) leaves.

    Args:
        model: a Stage B LLINK artifact directory.
        text: the foreign passage (otherwise asked for first).
        max_new_tokens: answer length cap.
        temperature: 0 is greedy; > 0 samples.
        top_p: nucleus sampling mass (with --temperature).
        device: where the models run (cpu, cuda, cuda:1, mps).
        dtype: decoder weights: auto (bf16 on CUDA, fp32 elsewhere), fp32, bf16, fp16 (GPU).
    """
    from llink.generate import generate as run

    m = _load(model, device, dtype)
    interactive = sys.stdin.isatty()

    def ask(prompt: str) -> str | None:
        if interactive:
            print(prompt, end="", flush=True)
        line = sys.stdin.readline()
        return None if not line else line.rstrip("\n")

    passage = text
    while True:
        while not passage or not passage.strip():
            passage = ask("passage> ")
            if passage is None or passage.strip() == "/quit":
                return
        inj = m.read([passage.strip()])  # encoded once for every question below
        slots = inj.slots
        history: list[tuple[str, str]] = []
        print(f"[{len(m.decoder.tokenizer(passage, add_special_tokens=False)['input_ids'])} raw tokens -> {inj.k[0]} slots"
              f"{' + ' + str(len(inj.hints[0])) + ' verbatim hints' if inj.hints[0] else ''}]", flush=True)
        while True:
            q = ask("you> ")
            if q is None or q.strip() == "/quit":
                return
            if q.strip() == "/new":
                passage = None
                break
            if not q.strip():
                continue
            prompt = [inj.prompt(m.builder, 0, q, history=history)]
            pieces: list[str] = []
            print("llink> ", end="", flush=True)
            with m.using_adapter():
                run(m.decoder, prompt, slots, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                    stream=lambda s: (pieces.append(s), print(s, end="", flush=True)))
            print(flush=True)
            history.append((q.strip(), "".join(pieces).strip()))

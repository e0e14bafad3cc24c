"""Multiple-choice comprehension, scored like lm-evaluation-harness scores Belebele and SIB-200.

Each item is a foreign text and n English options: its own English and the English of other items
from the same document (so a distractor shares the topic and vocabulary, and only the meaning
tells them apart). A system reads the text, and the decoder's log-likelihood of each option as the
assistant's answer picks one: no generation, no judge. `acc` takes the highest summed
log-probability, `acc_norm` the highest per UTF-8 byte (long options are not penalised for
their length). `english` reads the true English: the ceiling for any bridge into this decoder.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from ..decoders import cache_kwarg
from ..errors import LlinkError
from ..prompts import Encoded, pad_batch
from ..slots import inject

MEANING_INSTRUCTION = "What does this text say in English?"
SYSTEMS = ("chance", "base", "direct_finetune", "llink", "llink_shuffled", "english")
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Item:
    src: str
    en: str
    source: str
    options: tuple[str, ...]
    answer: int  # index of `en` in options


def document_group(source: str) -> str:
    """The document a pair comes from: its provenance up to the first '#'."""
    return source.split("#", 1)[0]


def meaning_items(pairs, n_options: int = 4, seed: int = 17, limit: int | None = None, where: str = "the data") -> list[Item]:
    """Meaning-choice items: each pair's English among n_options-1 distinct English texts of
    other pairs from its document, in a seeded order. Pairs whose document has fewer than
    n_options distinct English texts are skipped; `limit` keeps a seeded sample of the rest."""
    if n_options < 2:
        raise LlinkError(f"n_options must be >= 2, got {n_options}")
    need = (f"a `source` column/field whose part before '#' names the document (e.g. help:text/scalc/01/x.xhp#par_id1), "
            f"with >= {n_options} items of distinct English per document")
    if not any(p.source for p in pairs):
        raise LlinkError(f"{where} has no provenance: meaning-choice items need {need}")
    groups: dict[str, dict[str, None]] = {}  # document -> its distinct English texts, in data order
    for p in pairs:
        if p.source:
            groups.setdefault(document_group(p.source), {})[p.en] = None
    usable = [p for p in pairs if p.source and len(groups[document_group(p.source)]) >= n_options]
    if len(usable) < 2:
        raise LlinkError(f"{where}: {len(usable)} usable meaning-choice item(s), at least 2 needed: the items need {need}")
    rng = random.Random(seed)
    if limit is not None:
        if limit < 2:
            raise LlinkError(f"the item limit must be >= 2, got {limit}")
        if limit < len(usable):
            usable = [usable[i] for i in sorted(rng.sample(range(len(usable)), limit))]
    items = []
    for p in usable:
        options = rng.sample([e for e in groups[document_group(p.source)] if e != p.en], n_options - 1) + [p.en]
        rng.shuffle(options)
        items.append(Item(p.src, p.en, p.source, tuple(options), options.index(p.en)))
    return items


# -- scoring ----------------------------------------------------------------------------------
_cache_kwarg = cache_kwarg  # option_logprobs's name for it (a tracked function: its source stays as recorded)


@torch.no_grad()
def option_logprobs(decoder, prompts: Sequence[Encoded], options: Sequence[Sequence[Sequence[int]]],
                    slots: torch.Tensor | None = None, rows: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed log-probabilities [B, n], token counts [B, n]) of each prompt's n option
    continuations (token ids), slots [B, K, H] filling the prompts' placeholder positions.

    Each prompt runs once; its keys and values are repeated for its n options, which then run
    together, right-padded. The prompt is most of the tokens (raw Khmer: up to ~1000), so this
    is about n times cheaper than a forward pass per option. Vocabulary rows are computed only
    where an option token is predicted, `rows` at a time.
    """
    n = len(options[0])
    if any(len(o) != n for o in options) or any(len(t) == 0 for o in options for t in o):
        raise LlinkError("every prompt needs the same number of options, each at least one token")
    dev, pad = decoder.device, decoder.tokenizer.pad_token_id
    body, head = decoder.model.get_decoder(), decoder.model.get_output_embeddings()
    kw = _cache_kwarg(body)
    # Left padding: every prompt ends in the last column, where the options start. Positions come
    # from the mask, so a padded prompt is read exactly as it would be alone.
    batch = pad_batch(list(prompts), pad, left=True)
    mask = batch["attention_mask"].to(dev)
    emb = decoder.embeddings(batch["input_ids"].to(dev))
    if bool(batch["slot_mask"].any()):
        if slots is None or len(slots) != len(prompts):
            raise LlinkError(f"{len(prompts)} prompts reserve slots but {0 if slots is None else len(slots)} slot sets were given")
        emb = inject(emb, batch["slot_mask"].to(dev), slots.to(dev))
    out = body(inputs_embeds=emb, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp_min(0), use_cache=True)
    cache = getattr(out, kw)

    flat = [list(t) for o in options for t in o]
    lengths = torch.tensor([len(t) for t in flat], device=dev)
    width = int(lengths.max())
    ids = torch.full((len(flat), width), pad, dtype=torch.long, device=dev)
    for i, t in enumerate(flat):
        ids[i, : len(t)] = torch.tensor(t, device=dev)
    first = head(out.last_hidden_state[:, -1]).float().log_softmax(-1)  # [B, V]: each option's first token
    total = first.gather(1, ids[:, 0].view(-1, n))
    if width > 1:
        cache.batch_repeat_interleave(n)
        x = ids[:, :-1]  # the last token of the longest option predicts nothing
        cols = torch.arange(width - 1, device=dev)
        used = cols[None] < (lengths - 1)[:, None]  # inputs whose next token is an option token
        full_mask = torch.cat([mask.repeat_interleave(n, 0), used.long()], 1)
        start = mask.sum(1).repeat_interleave(n)
        h = body(input_ids=x, attention_mask=full_mask, position_ids=start[:, None] + cols[None], use_cache=True,
                 **{kw: cache}).last_hidden_state[used]
        target = ids[:, 1:][used]
        lp = torch.cat([head(h[s : s + rows]).float().log_softmax(-1).gather(1, target[s : s + rows, None])[:, 0]
                        for s in range(0, len(target), rows)])
        rest = torch.zeros(len(flat), dtype=lp.dtype, device=dev).index_add(0, used.nonzero()[:, 0], lp)
        total = total + rest.view(-1, n)
    return total.double().cpu(), lengths.view(-1, n).cpu()


def score_options(decoder, builder, items: Sequence[Item], passages: Sequence[str | None], slots: torch.Tensor | None = None,
                  instruction: str = MEANING_INSTRUCTION, batch_size: int = 8,
                  update: Callable[[int], object] | None = None, prompt_kwargs: Sequence[dict] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(summed log-probabilities [N, n], token counts [N, n]) of every item's options as the
    answer to `instruction` about its passage (None: the prompt's slot positions, filled by
    slots [N, K, H]; prompt_kwargs: per item, the K and hints its slot prompt takes, see
    llink.slots.Injection). `update(k)` is called after each batch of k items."""
    if batch_size < 1:
        raise LlinkError(f"batch_size must be >= 1, got {batch_size}")
    prompts, options = [], []
    kws = list(prompt_kwargs) if prompt_kwargs is not None else [{}] * len(items)
    for item, passage, kw in zip(items, passages, kws):
        prompt = builder.chat(instruction, passage=passage, **kw)
        prompts.append(prompt)
        options.append([builder.chat(instruction, passage=passage, answer=o, close=False, **kw).input_ids[len(prompt):]
                        for o in item.options])
    # Prompts of similar length together: less left padding to run for nothing.
    order = sorted(range(len(items)), key=lambda i: len(prompts[i]))
    logp = np.zeros((len(items), len(items[0].options)))
    ntok = np.zeros(logp.shape, dtype=np.int64)
    model = decoder.model
    was = model.training
    model.eval()
    try:
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            lp, nt = option_logprobs(decoder, [prompts[i] for i in idx], [options[i] for i in idx],
                                     None if slots is None else slots[idx])
            logp[idx], ntok[idx] = lp.numpy(), nt.numpy()
            if update is not None:
                update(len(idx))
    finally:
        model.train(was)
    return logp, ntok


# -- systems ----------------------------------------------------------------------------------
@dataclass
class System:
    """A named reader: `score(items, update) -> (log-probabilities, token counts)`, each [N, n];
    None for `chance`, which is analytic."""

    name: str
    score: Callable[..., tuple[np.ndarray, np.ndarray]] | None


def comprehension_systems(model, direct=None, seed: int = 17, batch_size: int = 8,
                          instruction: str = MEANING_INSTRUCTION) -> list[System]:
    """chance, base, direct_finetune (with `direct`), llink, llink_shuffled, english: one
    decoder, one prompt builder, adapters switched as in generation (llink_systems)."""
    from .controls import shuffled_order

    dec, builder = model.decoder, model.builder

    def raw(build, adapter, side: str):
        def score(items, update=None):
            with adapter():
                return score_options(dec, build, items, [getattr(it, side) for it in items], None, instruction, batch_size, update)
        return score

    def slots_run(shuffle: bool):
        def score(items, update=None):
            inj = model.read([it.src for it in items])
            if shuffle:  # another passage's slots, K and hints, together
                inj = inj.take(shuffled_order(len(items), seed))
            with model.using_adapter():
                return score_options(dec, builder, items, [None] * len(items), inj.slots, instruction, batch_size, update,
                                     inj.prompt_kwargs())
        return score

    frozen = lambda: dec.adapter(None)  # noqa: E731
    systems = [System("chance", None), System("base", raw(builder, frozen, "src"))]
    if direct is not None:
        systems.append(System("direct_finetune", raw(direct.builder, direct.using_adapter, "src")))
    return systems + [System("llink", slots_run(False)), System("llink_shuffled", slots_run(True)),
                      System("english", raw(builder, frozen, "en"))]


# -- metrics ----------------------------------------------------------------------------------
def wilson_ci(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of k successes in n trials (95% by default); (0, 1) for n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _correct(scores: np.ndarray, answers: np.ndarray) -> np.ndarray:
    """Rows whose answer scores strictly above every other option (a tie is wrong)."""
    own = scores[np.arange(len(answers)), answers]
    others = scores.copy()
    others[np.arange(len(answers)), answers] = -np.inf
    return own > others.max(1)


def choice_metrics(logprobs, nbytes, answers) -> dict:
    """acc (highest summed log-probability), acc_norm (highest per UTF-8 byte, lm-eval's
    acc_norm), n, and the 95% Wilson interval of each."""
    logprobs, nbytes, answers = np.asarray(logprobs, float), np.asarray(nbytes, float), np.asarray(answers, int)
    n = len(answers)
    out: dict = {"n": n}
    for name, scores in (("acc", logprobs), ("acc_norm", logprobs / nbytes)):
        k = int(_correct(scores, answers).sum())
        out[name] = round(k / n, 4) if n else None
        out[f"{name}_ci95"] = [round(x, 4) for x in wilson_ci(k, n)]
    return out


def evaluate_comprehension(systems: Sequence[System], items: Sequence[Item], progress: bool = True) -> dict:
    """Every system's acc, acc_norm, n and their 95% intervals on `items` (chance: 1/n_options,
    no interval), plus its mean option length in tokens and its time."""
    from tqdm.auto import tqdm

    answers = [it.answer for it in items]
    nbytes = [[len(o.encode("utf-8")) for o in it.options] for it in items]
    n_options = len(items[0].options)
    results = {}
    bar = tqdm(total=len(items) * sum(s.score is not None for s in systems), desc="comprehend", unit="item", disable=not progress)
    try:
        for s in systems:
            t0 = time.time()
            if s.score is None:
                p = round(1 / n_options, 4)
                results[s.name] = {"n": len(items), "acc": p, "acc_ci95": None, "acc_norm": p, "acc_norm_ci95": None}
                continue
            logp, ntok = s.score(items, bar.update)
            results[s.name] = {**choice_metrics(logp, nbytes, answers), "option_tokens": round(float(ntok.mean()), 1),
                               "seconds": round(time.time() - t0, 1)}
    finally:
        bar.close()
    return results


def gap_closed(results: dict, metric: str = "acc_norm") -> float | None:
    """(llink - base) / (english - base): the share of the way from reading the raw foreign text
    to reading the English that llink goes. None without all three, or when english = base."""
    if not all(k in results for k in ("llink", "base", "english")):
        return None
    span = results["english"][metric] - results["base"][metric]
    return round((results["llink"][metric] - results["base"][metric]) / span, 4) if span else None

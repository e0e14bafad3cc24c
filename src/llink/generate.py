"""Generation from prompts whose placeholder positions hold slots (or from raw-text prompts).

One function serves LLINK, the base decoder and the direct finetune, so every system is decoded
the same way: left-padded batches, `inputs_embeds` with slots injected, the chat template's
end-of-turn as the stop token, greedy unless a temperature is given.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm
from transformers import StoppingCriteria, StoppingCriteriaList

from .decoders import cache_kwarg, output_cache
from .errors import LlinkError
from .prompts import Encoded, pad_batch
from .slots import inject


class _Callback:
    """A transformers streamer that hands each decoded piece of a single answer to `fn`."""

    def __init__(self, tokenizer, fn: Callable[[str], None]):
        self.tok, self.fn, self.ids, self.sent, self.first = tokenizer, fn, [], "", True

    def put(self, value: torch.Tensor) -> None:
        if self.first:  # transformers first passes the prompt (empty for inputs_embeds)
            self.first = False
            return
        self.ids.extend(value.reshape(-1).tolist())
        text = self.tok.decode(self.ids, skip_special_tokens=True)
        if not text.endswith("\ufffd"):  # wait for a multi-byte character to complete
            self.fn(text[len(self.sent) :])
            self.sent = text

    def end(self) -> None:
        text = self.tok.decode(self.ids, skip_special_tokens=True)
        if len(text) > len(self.sent):
            self.fn(text[len(self.sent) :])


class _Stop(StoppingCriteria):
    def __init__(self, fn: Callable[[], bool]):
        self.fn = fn

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), bool(self.fn()), dtype=torch.bool, device=input_ids.device)


@dataclass
class PrefixKV:
    """Keys and values of the prompt head every request shares (system turn, user header).

    A server computes them once; a request whose prompt starts with `ids` then prefills only its
    own tokens (slots, question, assistant header). Compute it with the weights that will
    generate (adapter on, or folded): the LoRA changes the head's keys and values too.
    """

    ids: list[int]
    kv: object  # a transformers Cache

    @classmethod
    @torch.no_grad()
    def compute(cls, decoder, ids: Sequence[int]) -> "PrefixKV":
        if not ids:
            raise LlinkError("a prefix cache needs at least one token")
        out = decoder.model(input_ids=torch.tensor([list(ids)], device=decoder.device), use_cache=True, logits_to_keep=1)
        return cls(list(ids), output_cache(out))

    def fresh(self):
        """A copy of the cache for one request to extend (a forward pass grows the cache it is
        given). New containers around cloned tensors: copy.deepcopy walks every attribute of all
        layers in Python, ~15x slower (3.7 vs 0.2 ms for the bundled decoder's 14-token head).
        Caches without per-layer objects (transformers < 4.56) are deep-copied."""
        layers = getattr(self.kv, "layers", None)
        if not isinstance(layers, list) or not all(hasattr(layer, "keys") and hasattr(layer, "values") for layer in layers):
            return copy.deepcopy(self.kv)
        out = copy.copy(self.kv)
        out.layers = []
        for layer in layers:
            new = copy.copy(layer)
            for name, value in vars(layer).items():
                if isinstance(value, torch.Tensor):
                    setattr(new, name, value.clone())
            out.layers.append(new)
        return out

    def fits(self, prompt: Encoded) -> bool:
        """Whether the prompt starts with the head and has tokens of its own after it."""
        n = len(self.ids)
        return len(prompt.input_ids) > n and prompt.input_ids[:n] == self.ids


@torch.no_grad()
def generate(
    decoder,
    prompts: Sequence[Encoded],
    slots: torch.Tensor | None = None,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_p: float = 1.0,
    top_k: int = 0,
    repetition_penalty: float = 1.0,
    seed: int = 0,
    batch_size: int = 16,
    stream: Callable[[str], None] | None = None,
    progress: bool = False,
    prefix: PrefixKV | None = None,
    stop: Callable[[], bool] | None = None,
    counts: list[int] | None = None,
) -> list[str]:
    """Answers (text after the prompt, up to the end-of-turn) for each prompt.

    slots [N, K, H] fill the prompts' placeholder positions; None for raw-text prompts.
    stream receives the answer piece by piece (one prompt only); progress shows a bar over batches.
    prefix: a cached prompt head, used for batches of one prompt that start with it (a batch of
    left-padded prompts would put the head at different positions).
    stop: polled after every new token; when it returns True the batch ends there (a server whose
    clients all went away).
    counts: if a list is given, it receives each answer's generated-token count (up to, not
    including, the end-of-turn token): what a server reports as completion tokens.
    """
    if max_new_tokens < 1:
        raise LlinkError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if batch_size < 1:
        raise LlinkError(f"batch_size must be >= 1, got {batch_size}")
    if temperature < 0 or not (0 < top_p <= 1) or top_k < 0 or repetition_penalty <= 0:
        raise LlinkError("sampling needs temperature >= 0, 0 < top_p <= 1, top_k >= 0, repetition_penalty > 0")
    if stream is not None and len(prompts) != 1:
        raise LlinkError("streaming prints one answer: give one prompt")
    has_slots = any(p.slot_positions for p in prompts)
    if has_slots and (slots is None or len(slots) != len(prompts)):
        raise LlinkError(f"{len(prompts)} prompts reserve slots but {0 if slots is None else len(slots)} slot sets were given")
    tok, model = decoder.tokenizer, decoder.model
    outputs: list[str] = []
    sampling = temperature > 0
    kwargs = dict(
        max_new_tokens=max_new_tokens,
        do_sample=sampling,
        eos_token_id=decoder.stop_ids,
        pad_token_id=tok.pad_token_id,
        repetition_penalty=repetition_penalty,
    )
    if sampling:
        kwargs.update(temperature=temperature, top_p=top_p, top_k=top_k or None)
    else:  # the model's generation_config may carry sampling defaults; greedy means greedy
        kwargs.update(temperature=None, top_p=None, top_k=None)
    was = model.training
    model.eval()
    bar = tqdm(total=len(prompts), desc="generate", unit="answer", disable=not progress or len(prompts) <= batch_size)
    try:
        for s in range(0, len(prompts), batch_size):
            chunk = list(prompts[s : s + batch_size])
            batch = pad_batch(chunk, tok.pad_token_id, left=True)
            ids, mask = batch["input_ids"].to(decoder.device), batch["attention_mask"].to(decoder.device)
            emb = decoder.embeddings(ids)
            if has_slots:
                emb = inject(emb, batch["slot_mask"].to(decoder.device), slots[s : s + batch_size].to(decoder.device))
            if sampling:
                torch.manual_seed(seed + s)
            streamer = _Callback(tok, stream) if stream is not None else None
            # generate() copies nothing: the cache it is given grows, so it gets a copy
            kv = prefix.fresh() if prefix is not None and len(chunk) == 1 and prefix.fits(chunk[0]) else None
            criteria = StoppingCriteriaList([_Stop(stop)]) if stop is not None else None
            cache = {} if kv is None else {cache_kwarg(model): kv}
            out = model.generate(inputs_embeds=emb, attention_mask=mask, streamer=streamer, stopping_criteria=criteria, **cache, **kwargs)
            outputs.extend(tok.batch_decode(out, skip_special_tokens=True))
            if counts is not None:
                stops = torch.isin(out, torch.tensor(list(decoder.stop_ids), device=out.device))
                counts.extend(int(row.nonzero()[0, 0]) if row.any() else len(row) for row in stops)
            bar.update(len(chunk))
    finally:
        bar.close()
        model.train(was)
    return [o.strip() for o in outputs]

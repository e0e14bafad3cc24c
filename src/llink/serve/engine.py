"""The model behind the server: one worker thread owns it, an LRU keeps each passage's slots.

The decoder, its LoRA switch and the tokenizer are not thread-safe, so every use of the model
(prompt building included) runs as a job on a single-thread executor: requests queue in arrival
order and never overlap. A job that has not started yet can be cancelled (timeouts); a running
generation stops at its next streamed piece once its cancel event is set.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..generate import PrefixKV, generate
from ..prompts import Encoded


class Cancelled(Exception):
    """Raised inside a job whose request timed out or whose client went away."""


@dataclass
class Prepared:
    prompt: Encoded
    slots: torch.Tensor  # [1, K, H]
    cache_hit: bool


class Engine:
    def __init__(self, model, cache_size: int = 256, prefix_cache: bool = True):
        self.model = model
        self.k = model.config.prompt_config.k
        self.cache_size = cache_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()  # touched by the worker only
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llink-model")
        # The encoder and decoder load lazily; load them now so the first request does not pay.
        self.encoder, self.decoder = model.encoder, model.decoder
        self.builder = model.builder
        self.max_positions = getattr(self.decoder.model.config, "max_position_embeddings", None)
        # Every prompt starts with the same template head (system turn, user header) because the
        # passage comes first in the first user turn: its keys and values are computed once, here,
        # with the weights that generate, and each request prefills only its own tokens.
        self._prefix: PrefixKV | None = None
        if prefix_cache:
            probe = self.builder.chat("?")
            with model.using_adapter():
                self._prefix = PrefixKV.compute(self.decoder, probe.input_ids[: probe.slot_positions[0]])

    def submit(self, fn: Callable, *args, **kwargs) -> Future:
        return self._pool.submit(fn, *args, **kwargs)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- jobs: these run on the worker thread only ---------------------------------------
    @torch.no_grad()
    def _aligned(self, texts: Sequence[str]) -> torch.Tensor:
        # cache=False: the on-disk vector cache would keep every text anyone ever sent. The
        # in-memory LRU replaces it.
        return self.model.embed(list(texts), cache=False)

    @torch.no_grad()
    def slots(self, passage: str) -> tuple[torch.Tensor, bool]:
        key = hashlib.sha256(passage.encode("utf-8")).hexdigest()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key], True
        slots = self.model.slots([passage], cache=False)
        if self.cache_size > 0:
            self._cache[key] = slots
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return slots, False

    def prepare(self, passage: str, instruction: str, history: list[tuple[str, str]], cancel: threading.Event) -> Prepared:
        if cancel.is_set():
            raise Cancelled
        prompt = self.builder.chat(instruction, history=history)  # validates the turns before encoding
        slots, hit = self.slots(passage)
        return Prepared(prompt, slots, hit)

    def generate(self, prep: Prepared, max_tokens: int, temperature: float, top_p: float, seed: int,
                 cancel: threading.Event, on_text: Callable[[str], None] | None = None) -> tuple[str, int]:
        """(answer, completion tokens). generate() returns text only, so the count re-tokenises
        the raw streamed text (capped at max_tokens: garbage bytes can re-tokenise longer)."""
        raw: list[str] = []

        def piece(text: str) -> None:
            if cancel.is_set():  # raising inside the streamer is the only way to stop generate()
                raise Cancelled
            raw.append(text)
            if on_text is not None:
                on_text(text)

        if cancel.is_set():
            raise Cancelled
        with self.model.using_adapter():
            answer = generate(self.decoder, [prep.prompt], prep.slots, max_new_tokens=max_tokens,
                              temperature=temperature, top_p=top_p, seed=seed, stream=piece, prefix=self._prefix)[0]
        return answer, min(self.count_tokens("".join(raw)), max_tokens)

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        return self._aligned(texts)

    def count_tokens(self, text: str) -> int:
        return len(self.decoder.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0

"""The model behind the server: one worker thread owns it, an LRU keeps each passage's slots.

The decoder, its LoRA switch and the tokenizer are not thread-safe, so every use of the model
(prompt building included) runs as a job on a single-thread executor: jobs queue in arrival
order and never overlap. A job that has not started yet can be cancelled (timeouts); a running
generation stops at its next streamed piece once its cancel event is set.

Greedy, non-streamed answers are batched: each one waits in a list, and the first worker job to
reach it answers every waiting request with the same max_tokens as one left-padded batch. Requests
that arrive while the worker is busy therefore share its next pass instead of queueing one by
one; decoding a few sequences at once costs about what one costs while a small decoder is bound
by reading its weights. Sampled (seeded) and streamed answers still run alone: a batch would tie
a request's random draws, or its stream, to its neighbours.
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
from ..slots import Injection, pad_slots


class Cancelled(Exception):
    """Raised inside a job whose request timed out or whose client went away."""


@dataclass
class Prepared:
    prompt: Encoded
    slots: torch.Tensor  # [1, K, H]: this passage's K (a K rule gives each passage its own)
    cache_hit: bool


@dataclass
class _Waiting:
    passage: str
    instruction: str
    history: list
    max_tokens: int
    cancel: threading.Event
    check: Callable[[Prepared], None] | None
    future: Future  # -> (Prepared, answer, completion tokens, batch size)


class Engine:
    def __init__(self, model, cache_size: int = 256, prefix_cache: bool = True, max_batch: int = 8):
        self.model = model
        self.k = model.config.prompt_config.k
        self.cache_size = cache_size
        self.max_batch = max_batch
        self._waiting: list[_Waiting] = []
        self._lock = threading.Lock()  # guards _waiting, which request threads append to
        self._cache: OrderedDict[str, Injection] = OrderedDict()  # touched by the worker only
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
        with self._lock:  # their jobs were just cancelled: nothing would ever answer them
            waiting, self._waiting = self._waiting, []
        for w in waiting:
            w.future.cancel()

    # -- jobs: these run on the worker thread only ---------------------------------------
    @torch.no_grad()
    def _aligned(self, texts: Sequence[str]) -> torch.Tensor:
        # cache=False: the on-disk vector cache would keep every text anyone ever sent (the
        # in-memory LRU replaces it), and each text is read once, without the short-batch repeat.
        return self.model.embed(list(texts), cache=False)

    @torch.no_grad()
    def read(self, passage: str) -> tuple[Injection, bool]:
        """The passage's slots, K and hints (LLINK.read), from the LRU when it was read before."""
        key = hashlib.sha256(passage.encode("utf-8")).hexdigest()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key], True
        inj = self.model.read([passage], cache=False)  # read once, as _aligned
        if self.cache_size > 0:
            self._cache[key] = inj
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return inj, False

    def prepare(self, passage: str, instruction: str, history: list[tuple[str, str]], cancel: threading.Event) -> Prepared:
        if cancel.is_set():
            raise Cancelled
        self.builder.chat(instruction, history=history)  # validates the turns before the passage is encoded
        inj, hit = self.read(passage)
        return Prepared(inj.prompt(self.builder, 0, instruction, history=history), inj.slots, hit)

    def generate(self, prep: Prepared, max_tokens: int, temperature: float, top_p: float, seed: int,
                 cancel: threading.Event, on_text: Callable[[str], None] | None = None) -> tuple[str, int]:
        """(answer, completion tokens)."""

        def piece(text: str) -> None:
            if cancel.is_set():  # raising inside the streamer is the only way to stop generate()
                raise Cancelled
            if on_text is not None:
                on_text(text)

        if cancel.is_set():
            raise Cancelled
        counts: list[int] = []
        with self.model.using_adapter():
            answer = generate(self.decoder, [prep.prompt], prep.slots, max_new_tokens=max_tokens, temperature=temperature,
                              top_p=top_p, seed=seed, stream=piece, prefix=self._prefix, counts=counts)[0]
        return answer, counts[0]

    def answer(self, passage: str, instruction: str, history: list[tuple[str, str]], max_tokens: int, cancel: threading.Event,
               check: Callable[[Prepared], None] | None = None) -> Future:
        """A greedy answer, batched with whatever else is waiting: a future of (Prepared, answer,
        completion tokens, size of the batch it was decoded in). The prompt is built inside the
        batch job, so every request queued behind a busy worker joins the same batch; `check`
        may refuse a prepared prompt (by raising) before anything is decoded."""
        waiting = _Waiting(passage, instruction, history, max_tokens, cancel, check, Future())
        with self._lock:
            self._waiting.append(waiting)
        self._pool.submit(self._answer_waiting)
        return waiting.future

    def _answer_waiting(self) -> None:
        """Worker job: answer the oldest waiting request together with every other waiting one
        that has the same max_tokens (up to max_batch). Each request submits one of these jobs,
        so a job that finds its request already answered by an earlier batch has nothing to do."""
        with self._lock:
            if not self._waiting:
                return
            n = self._waiting[0].max_tokens
            batch = [w for w in self._waiting if w.max_tokens == n][: self.max_batch]
            self._waiting = [w for w in self._waiting if not any(w is b for b in batch)]
        live: list[tuple[_Waiting, Prepared]] = []
        for w in batch:
            if not w.future.set_running_or_notify_cancel():  # its client timed out while it waited
                continue
            try:
                prep = self.prepare(w.passage, w.instruction, w.history, w.cancel)  # Cancelled if it went away
                if w.check is not None:
                    w.check(prep)
            except BaseException as e:  # noqa: BLE001 - this request's own error, handed to it
                w.future.set_exception(e)
                continue
            live.append((w, prep))
        if not live:
            return
        try:
            if len(live) == 1:  # alone: the single-prompt path, with the shared prefix KV
                w, prep = live[0]
                results = [self.generate(prep, n, 0.0, 1.0, 0, w.cancel)]
            else:
                counts: list[int] = []
                with self.model.using_adapter():
                    # passages of different K: slots padded to the largest, each prompt reads its own K
                    slots = pad_slots([p.slots[0] for _, p in live])
                    answers = generate(self.decoder, [p.prompt for _, p in live], slots, max_new_tokens=n,
                                       batch_size=len(live), stop=lambda: all(w.cancel.is_set() for w, _ in live), counts=counts)
                results = list(zip(answers, counts))
        except BaseException as e:  # noqa: BLE001 - every request in the batch gets the error
            for w, _ in live:
                w.future.set_exception(e)
            return
        for (w, prep), (text, count) in zip(live, results):
            if w.cancel.is_set():
                w.future.set_exception(Cancelled())
            else:
                w.future.set_result((prep, text, count, len(live)))

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        return self._aligned(texts)

    def count_tokens(self, text: str) -> int:
        return len(self.decoder.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0

    def count_tokens_and_slots(self, text: str) -> tuple[int, int]:
        """(the decoder's tokens for the raw text, the slots LLINK reads it as: K, or its K rule's)."""
        return self.count_tokens(text), (self.model.slot_counts([text])[0] if text else self.k)
